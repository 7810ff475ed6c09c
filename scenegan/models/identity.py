"""A generator that returns its input: the stylize pipeline with no model cost.

    image (B, 3, H, W) in [-1, 1] -> the same tensor

What it is for: measuring everything around inference (read, hash, decode, resize, pad,
encode, write, metadata) with nothing else in the way (`bench/stylize.py --stages`), and a
known-answer model: its output is its input, up to the JPEG/PNG round trip. It has no
weights; its MODEL's model_id is the hash of an empty state_dict (the same for every
identity MODEL, which is right: they all make the same images).
"""

from __future__ import annotations

import torch
from torch import nn

from scenegan.models.layers import constructor_arguments


class IdentityGenerator(nn.Module):
    kind = "image-to-image"
    trainable = False  # nothing to learn: not a --generator choice

    def __init__(self, in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        if in_channels != out_channels:
            raise ValueError(
                f"the identity maps images to themselves: in_channels ({in_channels}) must "
                f"equal out_channels ({out_channels})"
            )

    @property
    def stride(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
