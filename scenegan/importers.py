"""Import generators trained elsewhere as scenegan MODELs.

`cyclegan`: a `latest_net_G.pth`-style state_dict of the ResNet generator of the public
pytorch-CycleGAN-and-pix2pix project (e.g. its style_monet / style_vangogh / style_ukiyoe
models). Scope: ResNet generator with instance norm, no dropout, 6 or 9 blocks (any number
works), two downsamplings, transposed-conv upsampling.

That project keeps the whole generator in one `nn.Sequential` named `model`, so its keys
are `model.<index>.weight` for the stem, down, up and head convolutions and
`model.<index>.conv_block.<1|5>.weight` inside the residual blocks. Our `ResnetGenerator`
has the same convolutions in the same order (norms without parameters in between), so
the import is an order-preserving copy, checked shape by shape.
"""

from __future__ import annotations

import io
import re
from typing import Any

import torch

from scenegan import storage
from scenegan.artifact import ModelError, save_model
from scenegan.models import ResnetGenerator

_CONV_KEY = re.compile(r"^model\.(\d+)(?:\.conv_block\.(\d+))?\.(weight|bias)$")
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _conv_order(state: dict[str, torch.Tensor]) -> list[tuple[str, str]]:
    """(weight key, bias key) of every convolution, in network order."""
    convs: dict[tuple[int, int], dict[str, str]] = {}
    for key in state:
        if key.endswith(_NORM_STATS):
            continue  # instance-norm statistics saved by old PyTorch versions: unused
        match = _CONV_KEY.match(key)
        if match is None:
            raise ModelError(f"unexpected key {key!r}: not a CycleGAN ResnetGenerator state_dict")
        position = (int(match.group(1)), int(match.group(2) or -1))
        convs.setdefault(position, {})[match.group(3)] = key
    ordered = []
    for position in sorted(convs):
        entry = convs[position]
        if "weight" not in entry or "bias" not in entry:
            raise ModelError(
                f"layer model.{position[0]} lacks a weight or bias (norm != instance?)"
            )
        ordered.append((entry["weight"], entry["bias"]))
    return ordered


def _describe(state: dict[str, torch.Tensor]) -> dict[str, int]:
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    inner = {
        int(m.group(1))
        for k in state
        if (m := re.match(r"model\.\d+\.conv_block\.(\d+)\.weight", k))
    }
    if inner and inner != {1, 5}:
        raise ModelError(
            f"residual blocks hold convolutions at {sorted(inner)}, not [1, 5]: a generator with "
            "dropout or non-reflect padding, which this importer does not cover"
        )
    stem = state.get("model.1.weight")
    if stem is None or stem.dim() != 4 or stem.shape[-1] != 7:
        raise ModelError("no 7x7 stem convolution at model.1: not a CycleGAN ResnetGenerator")
    last = max(int(_CONV_KEY.match(k).group(1)) for k in state if _CONV_KEY.match(k))
    return {
        "in_channels": int(stem.shape[1]),
        "out_channels": int(state[f"model.{last}.weight"].shape[0]),
        "base_channels": int(stem.shape[0]),
        "num_blocks": len(blocks),
    }


def cyclegan_generator(state: dict[str, torch.Tensor]) -> ResnetGenerator:
    """A `ResnetGenerator` holding the weights of a CycleGAN-project generator state_dict."""
    arguments = _describe(state)
    generator = ResnetGenerator(**arguments, num_downsamples=2, norm="instance")
    targets = [
        m for m in generator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    sources = _conv_order(state)
    if len(sources) != len(targets):
        raise ModelError(f"{len(sources)} convolutions in the file, {len(targets)} expected")
    with torch.no_grad():
        for (weight_key, bias_key), layer in zip(sources, targets, strict=True):
            if state[weight_key].shape != layer.weight.shape:
                raise ModelError(
                    f"{weight_key} has shape {tuple(state[weight_key].shape)}, expected "
                    f"{tuple(layer.weight.shape)}"
                )
            layer.weight.copy_(state[weight_key])
            layer.bias.copy_(state[bias_key])
    return generator.eval()


def import_cyclegan(
    weights: str, output: str, *, source_domain: str | None = None, target_domain: str | None = None
) -> dict[str, Any]:
    """Write MODEL `output` from CycleGAN generator weights at `weights` (local or gs://)."""
    try:
        state = torch.load(
            io.BytesIO(storage.read_bytes(weights)), map_location="cpu", weights_only=True
        )
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ModelError(f"{weights} is not a readable state_dict: {error}") from error
    if not isinstance(state, dict):
        raise ModelError(f"{weights} holds a {type(state).__name__}, not a state_dict")
    return save_model(
        output,
        cyclegan_generator(state),
        task="unpaired",
        image_size=256,
        source_domain=source_domain,
        target_domain=target_domain,
        training={"imported_from": "pytorch-CycleGAN-and-pix2pix", "weights": weights},
        metrics={},
    )
