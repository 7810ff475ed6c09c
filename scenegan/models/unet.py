"""U-Net generator for paired translation (pix2pix, Isola et al. 2017).

`num_downs` stride-2 4x4 convs take (B, C, H, W) down to (B, 8*base, H/2^n, W/2^n); the
decoder mirrors them with transposed convs, concatenating each encoder level's features
(the skip connections that carry fine detail straight across). H and W must be multiples
of `stride` = 2^num_downs.
"""

from __future__ import annotations

import torch
from torch import nn

from scenegan.models.layers import NormKind, constructor_arguments, conv_bias, norm_layer


class UnetGenerator(nn.Module):
    kind = "image-to-image"

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_downs: int = 8,
        norm: NormKind = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        if num_downs < 2:
            raise ValueError(f"num_downs={num_downs}: a U-Net needs at least 2 levels")
        bias = conv_bias(norm)
        widths = [base_channels * min(2**level, 8) for level in range(num_downs)]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for level, width in enumerate(widths):
            outermost, innermost = level == 0, level == num_downs - 1
            layers: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2, inplace=False)]
            layers.append(nn.Conv2d(previous, width, 4, 2, 1, bias=bias))
            if not (outermost or innermost):
                layers.append(norm_layer(norm, width))
            self.encoder.append(nn.Sequential(*layers))
            previous = width
        self.decoder = nn.ModuleList()
        for level in reversed(range(num_downs)):
            innermost = level == num_downs - 1
            incoming = widths[level] * (1 if innermost else 2)  # concat of skip + upsampled
            if level == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(incoming, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                target = widths[level - 1]
                layers = [
                    nn.ReLU(),
                    nn.ConvTranspose2d(incoming, target, 4, 2, 1, bias=bias),
                    norm_layer(norm, target),
                ]
                if dropout > 0 and num_downs - 4 <= level < num_downs - 1:
                    layers.append(nn.Dropout(dropout))  # the three innermost decoder levels
            self.decoder.append(nn.Sequential(*layers))

    @property
    def stride(self) -> int:
        return 2 ** self.config["num_downs"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        skips = []
        for encode in self.encoder:
            x = encode(x)
            skips.append(x)  # level i: (B, widths[i], H / 2^(i+1), W / 2^(i+1))
        x = self.decoder[0](skips[-1])
        for decode, skip in zip(self.decoder[1:], reversed(skips[:-1]), strict=True):
            x = decode(torch.cat([skip, x], dim=1))
        return x  # (B, C_out, H, W)
