"""Counting a model's multiply-accumulates for one forward pass.

Only convolutions, transposed convolutions and linear layers are counted: they are all
but a percent or two of the arithmetic in these networks. FLOPs = 2 x MACs.
"""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of `model(example)` (batch included)."""
    total = 0

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            per_output = (
                layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            )
            total += output.numel() * per_output
        elif isinstance(layer, nn.ConvTranspose2d):
            per_input = (
                layer.out_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            )
            total += inputs[0].numel() * per_input
        elif isinstance(layer, nn.Linear):
            total += output.numel() * layer.in_features

    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    return 2 * count_macs(model, example)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
