"""DCGAN noise-to-image generator and its discriminator (Radford et al. 2016).

Generator: z (B, latent_dim) -> 4x4 -> doubling transposed convs -> (B, 3, S, S) for
S = image_size (64 or 128; any power of two >= 16 works). The discriminator mirrors it
down to one logit per image. For WGAN-GP use `norm="none"` (or "instance") in the
critic: batch norm couples samples, which breaks the per-sample gradient penalty.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scenegan.models.layers import NormKind, constructor_arguments, conv_bias, norm_layer


def _num_doublings(image_size: int) -> int:
    doublings = math.log2(image_size) - 2
    if image_size < 16 or not doublings.is_integer():
        raise ValueError(f"image_size={image_size} must be a power of two, at least 16")
    return int(doublings)


class DCGANGenerator(nn.Module):
    kind = "noise-to-image"

    def __init__(
        self,
        latent_dim: int = 128,
        image_size: int = 64,
        base_channels: int = 64,
        out_channels: int = 3,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        doublings = _num_doublings(image_size)
        bias = conv_bias(norm)
        channels = base_channels * 2 ** (doublings - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, channels, 4, 1, 0, bias=bias),  # 1x1 -> 4x4
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
        ]
        for _ in range(doublings - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=bias),
                norm_layer(norm, channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, latent_dim)
        return self.net(z[:, :, None, None])  # (B, C, S, S)


class DCGANDiscriminator(nn.Module):
    kind = "discriminator"

    def __init__(
        self,
        image_size: int = 64,
        base_channels: int = 64,
        in_channels: int = 3,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        doublings = _num_doublings(image_size)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = base_channels
        for _ in range(doublings - 1):
            layers += [
                nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=bias),
                norm_layer(norm, channels * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels *= 2
        layers.append(nn.Conv2d(channels, 1, 4, 1, 0))  # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S)
        return self.net(x).flatten(1)  # (B, 1) logits
