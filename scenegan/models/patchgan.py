"""PatchGAN discriminator (pix2pix / CycleGAN): one logit per overlapping image patch.

With `num_layers=3` each output logit sees a 70x70 receptive field, so the discriminator
judges texture and local style rather than global layout, and works at any input size:
(B, C, H, W) -> (B, 1, ~H/8 - 2, ~W/8 - 2). Spectral norm on every conv is optional; it
bounds the discriminator's Lipschitz constant, which steadies small-data training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from scenegan.models.layers import NormKind, constructor_arguments, conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    kind = "discriminator"

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        norm: NormKind = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        bias = conv_bias(norm)

        def conv(c_in: int, c_out: int, stride: int, with_bias: bool = True) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, 4, stride, 1, bias=with_bias)
            return apply_spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = [conv(in_channels, base_channels, 2), nn.LeakyReLU(0.2, True)]
        channels = base_channels
        for layer in range(1, num_layers + 1):
            width = base_channels * min(2**layer, 8)
            stride = 2 if layer < num_layers else 1  # the last block keeps the resolution
            layers += [
                conv(channels, width, stride, bias),
                norm_layer(norm, width),
                nn.LeakyReLU(0.2, True),
            ]
            channels = width
        layers.append(conv(channels, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.net(x)  # (B, 1, h, w) patch logits
