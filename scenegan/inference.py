"""Running a MODEL's generator on images: batches of one shape, tiles for large images.

`Stylizer` wraps a loaded MODEL on a device. It takes uint8 (H, W, 3) arrays that are already
padded to the generator's stride and returns uint8 arrays of the same shape, on the CPU:

* `run_batch`: arrays are grouped by shape and each group is stacked and run together
  (`max_batch_size` at a time), in bf16 autocast and channels_last on CUDA;
* `run_tiled`: one large image as overlapping tiles whose outputs are blended with linear
  ramps, so no seam shows. Instance normalisation is the catch: per-tile statistics differ
  from the whole image's and each tile would come out in a slightly different tone. So the
  whole image is first run once shrunk to tile size, each InstanceNorm layer's per-channel
  mean and variance are recorded, and the tiles are normalised with those instead.

A forward pass whose output holds NaN or inf raises `BadOutput` instead of returning the
black image the conversion to uint8 would make of it; the caller decides what becomes of
the batch (the stylize handler retries it one image at a time).

Nothing here imports Beam: the pipelines' ModelHandler and plain loops use the same code.
"""

from __future__ import annotations

import math
import threading
import types
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from scenegan import imaging, pixels
from scenegan.artifact import LoadedModel


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def bucket_multiple(stride: int, bucket: int) -> int:
    """Pad sizes to a multiple of both the stride and the bucket: fewer distinct shapes."""
    return math.lcm(stride, max(1, bucket))


@dataclass(frozen=True)
class Prepared:
    pixels: np.ndarray  # (H, W, 3) uint8, padded
    box: imaging.PadBox  # where the image sits in `pixels`


def prepare(image: Image.Image, *, max_side: int | None, multiple: int) -> Prepared:
    pixels, box = imaging.fit_and_pad(image, multiple, max_side=max_side)
    return Prepared(np.ascontiguousarray(pixels), box)


def finish(
    output: np.ndarray, box: imaging.PadBox, resize_to: tuple[int, int] | None
) -> Image.Image:
    """Crop the padding away; optionally resize back to (width, height)."""
    image = Image.fromarray(imaging.crop_to_box(output, box))
    if resize_to is not None and image.size != resize_to:
        image = image.resize(resize_to, Image.Resampling.BICUBIC)
    return image


class BadOutput(ValueError):
    """The generator's output holds NaN or inf: there is no image to write."""


class Stylizer:
    """A MODEL's generator on a device, for uint8 images in and out."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: str = "auto",
        amp: bool | None = None,
        max_batch_size: int = 8,
        tile_size: int = 512,
        tile_overlap: int = 64,
    ) -> None:
        self.model, self.device = model, pick_device(device)
        self.generator = model.generator.to(self.device).eval()
        self.amp = self.device.type == "cuda" if amp is None else amp
        self.max_batch_size = max_batch_size
        self.stride = model.stride
        self.tile_size = max(self.stride, tile_size // self.stride * self.stride)
        self.tile_overlap = min(tile_overlap, self.tile_size // 2)
        if self.device.type == "cuda":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        _thread_aware_norms(self.generator)

    def _autocast(self):
        if not self.amp:
            return nullcontext()
        dtype = torch.bfloat16 if self.device.type == "cpu" or _bf16_ok() else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, H, W, 3) uint8 through the generator."""
        x = pixels.normalize(torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2))
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            y = self.generator(x)
        # NaN or inf anywhere makes an image's sum NaN or inf: the sums are the fast check
        # (30x cheaper than isfinite over every value); an image whose sum is not finite is
        # checked value by value, as huge finite values can overflow a sum.
        finite = torch.isfinite(y.sum(dim=(1, 2, 3)))  # (B,)
        for index in (~finite).nonzero().flatten().tolist():
            finite[index] = bool(torch.isfinite(y[index]).all())
        if not bool(finite.all()):
            bad = (~finite).nonzero().flatten().tolist()
            raise BadOutput(f"NaN or inf in the model's output (batch positions {bad})")
        return pixels.to_pixels(y)  # (B, H, W, 3) uint8

    def run_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for `images` (any shapes, each a multiple of the stride), in order."""
        outputs: list[np.ndarray | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            by_shape[image.shape].append(index)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.max_batch_size):
                chunk = indices[start : start + self.max_batch_size]
                result = self._forward(np.stack([images[i] for i in chunk]))
                for position, index in enumerate(chunk):
                    outputs[index] = result[position]
        return [out for out in outputs if out is not None]

    # --- tiles ------------------------------------------------------------------------

    def run_tiled(self, image: np.ndarray) -> np.ndarray:
        """One large (H, W, 3) uint8 image (a multiple of the stride) through overlapping
        tiles, blended; memory is bounded by the tile size, not the image size.

        Each tile runs with `tile_overlap` px of real context around it (what the convolutions
        at its edge need), keeps its own area, and cross-fades with its neighbours over the
        overlap."""
        height, width = image.shape[:2]
        statistics = self._norm_statistics(image)
        total = np.zeros((height, width, 3), np.float32)
        weights = np.zeros((height, width, 1), np.float32)
        with frozen_instance_norm(self.generator, statistics):
            for box in self._tiles(height, width):
                top, left, tile_height, tile_width = box
                (y0, x0, y1, x1), (cy, cx) = self._context(box, height, width)
                out = self._forward(image[y0:y1, x0:x1][None])[0].astype(np.float32)
                out = out[cy : cy + tile_height, cx : cx + tile_width]
                ramp = _ramp(tile_height, tile_width, self.tile_overlap, top, left, height, width)
                total[top : top + tile_height, left : left + tile_width] += out * ramp
                weights[top : top + tile_height, left : left + tile_width] += ramp
        return np.clip(np.round(total / np.maximum(weights, 1e-6)), 0, 255).astype(np.uint8)

    def _tiles(self, height: int, width: int) -> Iterator[tuple[int, int, int, int]]:
        step = self.tile_size - self.tile_overlap
        for top in _starts(height, self.tile_size, step, self.stride):
            for left in _starts(width, self.tile_size, step, self.stride):
                yield top, left, min(self.tile_size, height), min(self.tile_size, width)

    def _context(
        self, box: tuple[int, int, int, int], height: int, width: int
    ) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """The tile grown by the overlap on each side (within the image, on the stride grid):
        (y0, x0, y1, x1) and where the tile starts inside it."""
        top, left, tile_height, tile_width = box
        margin = -(-self.tile_overlap // self.stride) * self.stride
        y0, x0 = max(0, top - margin), max(0, left - margin)
        y1, x1 = min(height, top + tile_height + margin), min(width, left + tile_width + margin)
        return (y0, x0, y1, x1), (top - y0, left - x0)

    def _norm_statistics(
        self, image: np.ndarray, samples: int = 16
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Whole-image InstanceNorm (mean, var) per layer, estimated at full resolution.

        Layer by layer: with the layers before it already frozen to their statistics, the
        layer's input is gathered over up to `samples` non-overlapping tiles spread across
        the image (each with its context, counting only the tile's own area) and pooled.
        Exact up to edge effects when the image has at most `samples` tiles; an estimate
        from a spread-out sample above that."""
        height, width = image.shape[:2]
        size = self.tile_size  # a partition (no overlaps), so no pixel counts twice
        tiles = [
            (top, left, min(size, height - top), min(size, width - left))
            for top in range(0, height, size)
            for left in range(0, width, size)
        ]
        picks = np.linspace(0, len(tiles) - 1, min(samples, len(tiles)))
        chosen = [tiles[i] for i in sorted({round(p) for p in picks})]
        statistics: list[tuple[torch.Tensor, torch.Tensor]] = []
        for layer in _instance_norms(self.generator):
            total = total_sq = None
            count = 0
            for box in chosen:
                (y0, x0, y1, x1), (cy, cx) = self._context(box, height, width)
                x = self._layer_input(layer, statistics, image[y0:y1, x0:x1])
                scale_y, scale_x = x.shape[2] / (y1 - y0), x.shape[3] / (x1 - x0)
                rows = slice(int(cy * scale_y), int((cy + box[2]) * scale_y))
                cols = slice(int(cx * scale_x), int((cx + box[3]) * scale_x))
                core = x[:, :, rows, cols].double()
                sums, squares = core.sum(dim=(2, 3)), core.pow(2).sum(dim=(2, 3))
                total = sums if total is None else total + sums
                total_sq = squares if total_sq is None else total_sq + squares
                count += core.shape[2] * core.shape[3]
            mean = total / count
            var = (total_sq / count - mean.pow(2)).clamp_min(0)
            statistics.append((mean.float()[..., None, None], var.float()[..., None, None]))
        return statistics

    @torch.inference_mode()
    def _layer_input(self, layer: nn.Module, frozen: list, window: np.ndarray) -> torch.Tensor:
        """The input `layer` receives for `window`, with the first len(frozen) norms frozen;
        the forward pass stops there (on this thread only)."""
        _THREAD.stop_at, _THREAD.captured = layer, None
        try:
            with frozen_instance_norm(self.generator, frozen):
                self._forward(window[None])
        except _StopForward:
            pass
        finally:
            captured, _THREAD.stop_at, _THREAD.captured = _THREAD.captured, None, None
        return captured


class _StopForward(Exception):
    """Raised from a hook to end a forward pass early."""


def _bf16_ok() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _instance_norms(model: nn.Module) -> list[nn.InstanceNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]


# What tiling changes in a forward pass, per thread: harness threads share one generator,
# so a tiled image's statistics (and the early stop that measures them) must not reach a
# batch another thread runs through the same layers at the same time.
_THREAD = threading.local()


def _thread_aware_norms(model: nn.Module) -> None:
    """Give each InstanceNorm of `model` (once) a forward that follows the calling thread's
    frozen statistics and early stop, and behaves as usual when the thread has none. A
    bound method, so a deep copy of the model rebinds it to the copied layer."""
    for layer in _instance_norms(model):
        if "forward" not in vars(layer):  # an instance attribute shadows the class's forward
            layer.forward = types.MethodType(_thread_aware_forward, layer)


def _thread_aware_forward(layer: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
    if getattr(_THREAD, "stop_at", None) is layer:
        _THREAD.captured = x.float()
        raise _StopForward
    frozen = getattr(_THREAD, "frozen", None)
    if frozen is None or layer not in frozen:
        return type(layer).forward(layer, x)
    mean, var = frozen[layer]
    y = (x - mean.to(x.dtype)) * torch.rsqrt(var.to(x.dtype) + layer.eps)
    if layer.affine:
        y = y * layer.weight[None, :, None, None] + layer.bias[None, :, None, None]
    return y


@contextmanager
def frozen_instance_norm(model: nn.Module, statistics: list[tuple[torch.Tensor, torch.Tensor]]):
    """On this thread, the first len(statistics) InstanceNorm layers normalise with the
    given (mean, var) instead of their input's; the rest behave as usual."""
    _thread_aware_norms(model)
    layers = _instance_norms(model)[: len(statistics)]
    before = getattr(_THREAD, "frozen", None)
    _THREAD.frozen = dict(zip(layers, statistics, strict=True))
    try:
        yield
    finally:
        _THREAD.frozen = before


def _starts(length: int, tile: int, step: int, stride: int) -> list[int]:
    """Tile offsets covering [0, length): multiples of the stride, the last flush right."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, max(stride, step // stride * stride)))
    return [*starts, length - tile]


def _ramp(
    tile_height: int, tile_width: int, overlap: int, top: int, left: int, height: int, width: int
) -> np.ndarray:
    """(h, w, 1) blending weights: rising linearly over `overlap` px on inner edges, flat on
    the image's own borders, so overlapping tiles cross-fade and every pixel sums to > 0."""

    def axis(size: int, start: int, full: int) -> np.ndarray:
        weights = np.ones(size, np.float32)
        if overlap > 0:
            ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
            if start > 0:
                weights[:overlap] = np.minimum(weights[:overlap], ramp)
            if start + size < full:
                weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
        return weights

    return (axis(tile_height, top, height)[:, None] * axis(tile_width, left, width)[None, :])[
        ..., None
    ]


def generate_images(
    model: LoadedModel,
    count: int,
    seed: int,
    device: str = "auto",
    *,
    batch_size: int = 16,
    indices: list[int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, (H, W, 3) uint8) for images 0..count-1 (or the given `indices`) of an
    unconditional MODEL; image i depends only on (seed, i), whatever the batching."""
    if not model.generates_from_noise:
        raise ValueError(f"model {model.model_id[:12]} is {model.kind}: use stylize")
    generator = model.generator.to(pick_device(device)).eval()
    wanted = list(range(count)) if indices is None else indices
    latent = int(model.info["arguments"]["latent_dim"])
    for start in range(0, len(wanted), batch_size):
        chunk = wanted[start : start + batch_size]
        noise = torch.stack([_noise(seed, index, latent) for index in chunk])
        with torch.inference_mode():
            out = generator(noise.to(next(generator.parameters()).device))
        yield from zip(chunk, pixels.to_pixels(out), strict=True)


def _noise(seed: int, index: int, latent: int) -> torch.Tensor:
    mixed = int(np.random.SeedSequence((seed, index)).generate_state(1, np.uint64)[0])
    return torch.randn(latent, generator=torch.Generator().manual_seed(mixed))
