"""Small building blocks shared by the generators and discriminators."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

NormKind = Literal["instance", "batch", "none"]


def norm_layer(kind: NormKind, channels: int) -> nn.Module:
    """Instance norm has no affine parameters and keeps no running statistics, as in
    CycleGAN: per-image statistics are what make style transfer batch-size independent."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose instance, batch or none")


def conv_bias(kind: NormKind) -> bool:
    """A conv followed by batch norm gets no bias: the norm's shift makes it redundant."""
    return kind != "batch"


def constructor_arguments(local_vars: dict[str, Any]) -> dict[str, Any]:
    """The constructor's own arguments, from its `locals()` at the top of `__init__`.

    Every scenegan model keeps them as `.config`: `type(model)(**model.config)` rebuilds it,
    and that dict (plain JSON values) is what checkpoints and `model.json` store.
    """
    return {k: v for k, v in local_vars.items() if k not in ("self", "__class__")}


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The N(0, 0.02) initialisation of DCGAN / pix2pix / CycleGAN."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)


def residual_output(x: torch.Tensor, head: torch.Tensor, residual: bool) -> torch.Tensor:
    """The generator's image in [-1, 1]: tanh(head), or with `residual` tanh(atanh(x) + head),
    a change applied to the input in tanh space. Near-zero initial weights then give an
    output near the input, so training starts from "keep the photo" rather than from grey
    noise, and the output can still reach every colour. Needs in_channels == out_channels."""
    if not residual:
        return torch.tanh(head)
    return torch.tanh(torch.atanh(x.clamp(-0.999, 0.999)) + head)
