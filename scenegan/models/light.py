"""A light image-to-image generator for cheap batch stylization.

The ResNet generator's cost is in its nine residual blocks of dense 3x3 convs at 256
channels. Here the blocks are MobileNetV2-style inverted residuals (1x1 expand, depthwise
3x3, 1x1 project) at 128 channels, and upsampling is nearest-neighbour followed by a
depthwise-separable conv (cheaper than transposed convs and free of their checkerboard).
At 256x256 that is about 15x fewer FLOPs than ResNet-9 (`scenegan.models.count_flops`).

    (B, C, H, W) -> 7x7 stem -> 2 stride-2 convs -> N inverted residuals
                 -> 2 x (upsample, depthwise-separable conv) -> 7x7 head -> tanh
"""

from __future__ import annotations

import torch
from torch import nn

from scenegan.models.layers import (
    NormKind,
    constructor_arguments,
    encoder_features,
    nce_block_taps,
    norm_layer,
    output_logits,
    zero_init,
)


class InvertedResidual(nn.Module):
    def __init__(self, channels: int, expansion: int, norm: NormKind) -> None:
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            norm_layer(norm, hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="reflect", groups=hidden),
            norm_layer(norm, hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _separable_up(c_in: int, c_out: int, norm: NormKind) -> list[nn.Module]:
    return [
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_in, 3, padding=1, padding_mode="reflect", groups=c_in),
        nn.Conv2d(c_in, c_out, 1),
        norm_layer(norm, c_out),
        nn.ReLU(inplace=True),
    ]


class LightGenerator(nn.Module):
    kind = "image-to-image"

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 32,
        num_blocks: int = 6,
        expansion: int = 2,
        norm: NormKind = "instance",
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        c = base_channels
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, c, 7), norm_layer(norm, c), nn.ReLU(True)
        )
        self.down = nn.Sequential(
            nn.Conv2d(c, 2 * c, 3, 2, 1),
            norm_layer(norm, 2 * c),
            nn.ReLU(True),
            nn.Conv2d(2 * c, 4 * c, 3, 2, 1),
            norm_layer(norm, 4 * c),
            nn.ReLU(True),
        )
        self.blocks = nn.Sequential(
            *[InvertedResidual(4 * c, expansion, norm) for _ in range(num_blocks)]
        )
        self.up = nn.Sequential(*_separable_up(4 * c, 2 * c, norm), *_separable_up(2 * c, c, norm))
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels, 7))
        if residual:  # the untrained network is the identity (see layers.zero_init)
            zero_init(self.head[1])

    @property
    def stride(self) -> int:
        return 4

    @property
    def nce_channels(self) -> list[int]:
        """Channels of the `nce_features` maps."""
        c = self.config["base_channels"]
        return [
            self.config["in_channels"],
            c,
            2 * c,
            4 * c,
            *[4 * c] * len(nce_block_taps(self.config["num_blocks"])),
        ]

    def nce_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder layers PatchNCE compares (see `layers.encoder_features`)."""
        stages = [self.stem, self.down[:3], self.down[3:]]
        return encoder_features(x, stages, self.blocks, nce_block_taps(self.config["num_blocks"]))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before its tanh (`layers.output_logits`)."""
        features = self.blocks(self.down(self.stem(x)))  # (B, 4c, H/4, W/4)
        return output_logits(x, self.head(self.up(features)), self.config["residual"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1]
        return torch.tanh(self.logits(x))
