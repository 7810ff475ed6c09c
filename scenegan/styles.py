"""Known-answer style transforms: the "ground truth" stylizations of the demo data.

Each style is a deterministic pure function RGB image -> RGB image of the same size. Applied
to one stream of `scenegan.scenes`, it makes an unpaired style domain (the target a GAN
learns from); applied to a held-out photo, it gives the exact answer the trained generator
should approach, so stylization quality is measurable (e.g. PSNR of G(x) against
style(x), next to the identity baseline PSNR of x against style(x)).

* `cartoon`: edge-preserving smoothing, posterized colours, boosted saturation and dark
  outlines where the smoothed luminance changes sharply.
* `painting`: a Kuwahara filter (flat, brush-like patches that keep edges) under a warm
  "oil on canvas" colour grade with lifted violet shadows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def cartoon(image: Image.Image, *, levels: int = 6, edge_threshold: float = 0.16) -> Image.Image:
    """Posterize-plus-dark-edges look. `levels` colours per channel; edges darker than
    the threshold of the Sobel magnitude of luminance (0-1 scale) are inked."""
    rgb = image.convert("RGB")
    smooth = rgb.filter(ImageFilter.MedianFilter(5))
    smooth = ImageEnhance.Color(smooth).enhance(1.35)
    pixels = np.asarray(smooth, dtype=np.float32) / 255.0  # (H, W, 3)
    step = 1.0 / (levels - 1)
    poster = np.rint(pixels / step) * step
    luminance = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)
    edges = _sobel_magnitude(luminance) > edge_threshold
    inked = Image.fromarray((edges * 255).astype(np.uint8), "L").filter(ImageFilter.MaxFilter(3))
    mask = np.asarray(inked, dtype=np.float32)[..., None] / 255.0
    ink = np.array([0.08, 0.07, 0.07], dtype=np.float32)
    out = poster * (1 - mask) + ink * mask
    return Image.fromarray(_to_uint8(out), "RGB")


def painting(image: Image.Image, *, radius: int | None = None) -> Image.Image:
    """Kuwahara brush patches + warm oil colour grade. `radius` defaults to ~1/64 of the
    shorter side (4 px at 256), so the look scales with the image."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if radius is None:
        radius = max(2, round(min(rgb.shape[:2]) / 64))
    patches = _kuwahara(rgb, radius)
    grey = patches.mean(axis=-1, keepdims=True)
    saturated = grey + (patches - grey) * 1.5  # rich pigment
    grade = np.array(  # rows: output R, G, B from input R, G, B
        [[1.12, 0.16, -0.08], [0.04, 0.98, 0.0], [-0.14, 0.12, 0.74]], dtype=np.float32
    )
    graded = np.clip(saturated @ grade.T, 0.0, 1.0) ** np.float32(
        0.85
    )  # open the mid-tones like thinned paint
    shadow = np.clip(1.0 - graded.mean(axis=-1, keepdims=True) * 2.2, 0, 1)
    violet = np.array([0.22, 0.12, 0.30], dtype=np.float32)
    return Image.fromarray(_to_uint8(graded + shadow * violet * 0.35), "RGB")


STYLES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "cartoon": cartoon,
    "painting": painting,
}


def apply_style(name: str, image: Image.Image) -> Image.Image:
    """The named known-answer transform of `image`."""
    try:
        transform = STYLES[name]
    except KeyError:
        raise ValueError(f"unknown style {name!r}; choose one of {sorted(STYLES)}") from None
    return transform(image)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.nan_to_num(pixels) * 255.0), 0, 255).astype(np.uint8)


def _sobel_magnitude(luminance: np.ndarray) -> np.ndarray:
    padded = np.pad(luminance, 1, mode="edge")
    gx = (
        padded[:-2, 2:]
        + 2 * padded[1:-1, 2:]
        + padded[2:, 2:]
        - padded[:-2, :-2]
        - 2 * padded[1:-1, :-2]
        - padded[2:, :-2]
    )
    gy = (
        padded[2:, :-2]
        + 2 * padded[2:, 1:-1]
        + padded[2:, 2:]
        - padded[:-2, :-2]
        - 2 * padded[:-2, 1:-1]
        - padded[:-2, 2:]
    )
    return np.hypot(gx, gy) / 4.0  # / 4: a unit step between flat regions reads as 1


def _box_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum over every size x size window; window (i, j) starts at row i, column j."""
    integral = np.pad(values.cumsum(0).cumsum(1), ((1, 0), (1, 0)) + ((0, 0),) * (values.ndim - 2))
    return (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )


def _kuwahara(rgb: np.ndarray, radius: int) -> np.ndarray:
    """Classic Kuwahara: each pixel takes the mean colour of whichever of its four
    (radius+1)^2 corner windows has the lowest luminance variance."""
    height, width = rgb.shape[:2]
    size = radius + 1
    padded = np.pad(rgb.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), "reflect")
    luminance = padded @ np.array([0.299, 0.587, 0.114])
    count = float(size * size)
    means = _box_sums(padded, size) / count  # (H + r, W + r, 3)
    lum_mean = _box_sums(luminance, size) / count
    variance = _box_sums(luminance**2, size) / count - lum_mean**2
    offsets = [(0, 0), (0, radius), (radius, 0), (radius, radius)]  # the four corners
    stacked_var = np.stack([variance[dy : dy + height, dx : dx + width] for dy, dx in offsets])
    best = np.argmin(stacked_var, axis=0)  # (H, W)
    stacked_mean = np.stack([means[dy : dy + height, dx : dx + width] for dy, dx in offsets])
    chosen = np.take_along_axis(stacked_mean, best[None, ..., None], axis=0)[0]
    return chosen.astype(np.float32)
