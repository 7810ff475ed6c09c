"""ResNet image-to-image generator (Johnson et al. 2016, as used by CycleGAN).

    image (B, C, H, W) -> 7x7 stem -> `num_downsamples` stride-2 convs -> `num_blocks`
    residual blocks -> as many upsamplings -> 7x7 head -> tanh, (B, C_out, H, W)

H and W must be multiples of `stride` (4 with the default two downsamplings); stylize pads
to it. With `residual=True` the network predicts a change to its input (see
`layers.output_logits`) and its head starts at zero, so an untrained generator is the
identity. `upsample="nearest"` doubles with nearest-neighbour and a 3x3 conv instead of a
stride-2 transposed conv, whose uneven kernel overlap paints a checkerboard (Odena et al.
2016). The defaults (False, "transpose") are CycleGAN's exact architecture. Reflection
padding wherever a border is created, so no dark frame is learnt.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from scenegan.models.layers import (
    NormKind,
    constructor_arguments,
    conv_bias,
    encoder_features,
    nce_block_taps,
    norm_layer,
    output_logits,
    zero_init,
)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int, norm: NormKind, dropout: float) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    kind = "image-to-image"

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_blocks: int = 9,
        num_downsamples: int = 2,
        norm: NormKind = "instance",
        dropout: float = 0.0,
        residual: bool = False,
        upsample: Literal["transpose", "nearest"] = "transpose",
    ) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        if upsample not in ("transpose", "nearest"):
            raise ValueError(f"upsample={upsample!r}: choose transpose or nearest")
        bias = conv_bias(norm)
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, base_channels, 7, bias=bias),
            norm_layer(norm, base_channels),
            nn.ReLU(inplace=True),
        )
        down: list[nn.Module] = []
        channels = base_channels
        for _ in range(num_downsamples):
            down += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        self.down = nn.Sequential(*down)
        self.blocks = nn.Sequential(
            *[ResnetBlock(channels, norm, dropout) for _ in range(num_blocks)]
        )
        up: list[nn.Module] = []
        for _ in range(num_downsamples):
            if upsample == "transpose":
                up.append(
                    nn.ConvTranspose2d(
                        channels, channels // 2, 3, 2, 1, output_padding=1, bias=bias
                    )
                )
            else:
                up += [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.ReflectionPad2d(1),
                    nn.Conv2d(channels, channels // 2, 3, bias=bias),
                ]
            up += [
                norm_layer(norm, channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        self.up = nn.Sequential(*up)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7))
        if residual:
            zero_init(self.head[1])

    @property
    def stride(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** self.config["num_downsamples"]

    def _encoder_stages(self) -> list[nn.Module]:
        downs = [self.down[3 * i : 3 * i + 3] for i in range(self.config["num_downsamples"])]
        return [self.stem, *downs]

    @property
    def nce_channels(self) -> list[int]:
        """Channels of the `nce_features` maps."""
        base, downs = self.config["base_channels"], self.config["num_downsamples"]
        stages = [base * 2**i for i in range(downs + 1)]
        return [
            self.config["in_channels"],
            *stages,
            *[stages[-1]] * len(nce_block_taps(self.config["num_blocks"])),
        ]

    def nce_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder layers PatchNCE compares (see `layers.encoder_features`)."""
        return encoder_features(
            x, self._encoder_stages(), self.blocks, nce_block_taps(self.config["num_blocks"])
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before its tanh (`layers.output_logits`)."""
        features = self.down(self.stem(x))  # (B, base * 2^d, H / 2^d, W / 2^d)
        return output_logits(x, self.head(self.up(self.blocks(features))), self.config["residual"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1]
        return torch.tanh(self.logits(x))
