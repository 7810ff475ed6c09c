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
        if getattr(layer, "starts_at_zero", False):
            zero_init(layer)
        elif isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)


def zero_init(layer: nn.Module) -> None:
    """Zero a layer's weights and bias. On a residual generator's last conv this makes the
    untrained network exactly the identity (`output_logits` with head 0), so a short run
    starts from "keep the photo"; gradients still reach it, and through it the rest, from
    the first step on (ReZero / Fixup do the same for residual branches). The layer is
    marked, so `init_weights` keeps it at zero."""
    layer.starts_at_zero = True
    nn.init.zeros_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def nce_block_taps(num_blocks: int) -> tuple[int, ...]:
    """The residual blocks PatchNCE reads: the first and the middle one."""
    return (0, num_blocks // 2) if num_blocks >= 2 else tuple(range(num_blocks))


def encoder_features(
    x: torch.Tensor, stages: list[nn.Module], blocks: nn.Sequential, block_taps: tuple[int, ...]
) -> list[torch.Tensor]:
    """The input, each encoder stage's output and the outputs of residual blocks
    `block_taps`: the layers PatchNCE compares (CUT's choice for its ResNet generator:
    pixels, both downsamplings and two residual blocks)."""
    outputs = [x]
    for stage in stages:
        x = stage(x)
        outputs.append(x)
    for index, block in enumerate(blocks):
        if index > max(block_taps, default=-1):
            break
        x = block(x)
        if index in block_taps:
            outputs.append(x)
    return outputs


def output_logits(x: torch.Tensor, head: torch.Tensor, residual: bool) -> torch.Tensor:
    """The generator's image before its tanh: `head`, or with `residual` atanh(x) + head, a
    change applied to the input in tanh space. Near-zero initial weights then give an
    output near the input, so training starts from "keep the photo" rather than from grey
    noise, and the output can still reach every colour. Needs in_channels == out_channels.
    Training may penalise logits past atanh(0.99) (`losses.saturation_penalty`): further
    out tanh's gradient vanishes and a pixel pushed into pure colour cannot be pulled back."""
    if not residual:
        return head
    return torch.atanh(x.clamp(-0.999, 0.999)) + head
