"""Pixels <-> model tensors: the one place the generator's value range is spelt.

Images are uint8 with channels last, (..., H, W, 3), as PIL and numpy hold them; models
take float with channels first, (..., 3, H, W), in [-1, 1] (`artifact.NORMALIZATION`,
"tanh"): x = pixel / 127.5 - 1, and back pixel = round((clamp(x, -1, 1) + 1) * 127.5).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [-1, 1] (the default dtype: float32, or float64 in an
    `--amp fp64` run), same layout."""
    return pixels.to(torch.get_default_dtype()).div_(127.5).sub_(1.0)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Model output in [-1, 1] (clamped) -> uint8 pixels, same layout and device."""
    return x.float().clamp(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """`x` as the 8-bit image it becomes, back in [-1, 1] (how an output is scored)."""
    return normalize(denormalize(x))


def to_tensor(pixels: np.ndarray | Image.Image | list) -> torch.Tensor:
    """(..., H, W, 3) uint8 (an array, a PIL image or a list of them) -> (..., 3, H, W)
    float in [-1, 1]."""
    if isinstance(pixels, list):
        array = np.stack([np.asarray(p) for p in pixels])
    else:
        array = np.asarray(pixels)
    return normalize(torch.from_numpy(np.ascontiguousarray(array)).movedim(-1, -3))


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8 numpy array on the CPU."""
    return denormalize(x.detach()).movedim(-3, -1).cpu().numpy()
