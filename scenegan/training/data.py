"""Training batches: decoded domain images and a data order that is a function of the step.

The batch for step `s` depends only on (seed, stream, s): each epoch is a seeded
permutation and step `s` takes the next `batch_size` positions. Crops and flips come from
the step's own generator. So resuming at step `s` needs no saved sampler: the order is
recomputed, and a resumed run sees exactly the images an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from scenegan import dataset, imaging
from scenegan.pixels import normalize

log = logging.getLogger(__name__)

CACHE_LIMIT_BYTES = 1 << 30  # decoded uint8 crops kept in memory up to 1 GiB per domain


@dataclass(frozen=True)
class LoadedImage:
    image_id: str
    key: str
    pixels: torch.Tensor | None  # (3, L, L) uint8 at load size, when cached
    data: bytes | None  # the encoded bytes, when not cached


class DomainImages:
    """One domain's images, decoded, resized to `load_size` and centre-cropped square.

    Training crops `image_size` at a random offset (jitter) and flips half the time, as
    CycleGAN does with 286 -> 256; evaluation takes the centre crop unflipped.
    """

    def __init__(
        self,
        name: str,
        sources: list[dataset.SourceImage],
        *,
        image_size: int,
        load_size: int | None = None,
    ) -> None:
        self.name = name
        self.image_size = image_size
        self.load_size = load_size or image_size
        cache = len(sources) * 3 * self.load_size**2 <= CACHE_LIMIT_BYTES
        self.images: list[LoadedImage] = []
        rejected: Counter[str] = Counter()
        for source in sources:
            try:
                pixels = self._decode(source.data)
            except imaging.ImageError as error:
                rejected[error.reason] += 1
                continue
            kept = (pixels, None) if cache else (None, source.data)
            self.images.append(LoadedImage(source.image_id, source.key, *kept))
        if rejected:
            log.warning("domain %s: skipped invalid images %s", name, dict(rejected))
        if not self.images:
            raise ValueError(f"domain {name!r} has no usable images (rejected: {dict(rejected)})")

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        """sha256 over the name and sorted image ids: exactly which images train."""
        digest = hashlib.sha256(f"{self.name}:".encode())
        for image_id in sorted(image.image_id for image in self.images):
            digest.update(image_id.encode())
        return digest.hexdigest()

    def _decode(self, data: bytes) -> torch.Tensor:
        return decode_square(data, self.load_size)

    def pixels(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.pixels if image.pixels is not None else self._decode(image.data or b"")

    def crop_params(self, count: int, generator: torch.Generator) -> list[tuple[int, int, bool]]:
        """(top, left, flip) for `count` images, drawn in order from `generator`."""
        margin = self.load_size - self.image_size
        offsets = torch.randint(0, margin + 1, (count, 2), generator=generator).tolist()
        flips = (torch.rand(count, generator=generator) < 0.5).tolist()
        return [(top, left, flip) for (top, left), flip in zip(offsets, flips, strict=True)]

    def batch(
        self, indices: list[int], crops: list[tuple[int, int, bool]] | None = None
    ) -> torch.Tensor:
        """(B, 3, S, S) float in [-1, 1]: the given crops (training) or centre crops."""
        centre = (self.load_size - self.image_size) // 2
        out = []
        for position, index in enumerate(indices):
            top, left, flip = crops[position] if crops is not None else (centre, centre, False)
            out.append(crop(self.pixels(index), top, left, self.image_size, flip))
        return normalize(torch.stack(out))


def decode_square(data: bytes, load_size: int) -> torch.Tensor:
    """(3, L, L) uint8: `data` decoded, resized and centre-cropped to `load_size` square."""
    decoded = imaging.decode_image(data, draft_short_side=load_size)
    square = imaging.resize_and_center_crop(decoded.image, load_size)
    return torch.from_numpy(np.array(square, dtype=np.uint8)).permute(2, 0, 1)


def crop(pixels: torch.Tensor, top: int, left: int, size: int, flip: bool) -> torch.Tensor:
    """The training crop of (3, L, L) pixels: `size` square at (top, left), mirrored when
    `flip` (CycleGAN's jitter; the centre, unflipped, for evaluation)."""
    square = pixels[:, top : top + size, left : left + size]
    return square.flip(-1) if flip else square


@lru_cache(maxsize=8)
def epoch_permutation(size: int, seed: int, stream: int, epoch: int) -> np.ndarray:
    return np.random.default_rng((seed, stream, epoch)).permutation(size)


def indices_for_step(size: int, count: int, step: int, *, seed: int, stream: int) -> list[int]:
    """The dataset indices of the `count` images of the global batch at `step`: the next
    `count` positions of the seeded epoch order, so no image repeats within an epoch."""
    indices = []
    for position in range(step * count, (step + 1) * count):
        epoch, offset = divmod(position, size)
        indices.append(int(epoch_permutation(size, seed, stream, epoch)[offset]))
    return indices


def rank_slice(items: list, rank: int, world_size: int) -> list:
    """This rank's contiguous share of a global batch."""
    share = len(items) // world_size
    return items[rank * share : (rank + 1) * share]


def step_generator(seed: int, step: int, purpose: int) -> torch.Generator:
    """A fresh generator for one purpose at one step: reproducible without saved state."""
    mixed = np.random.SeedSequence((seed, step, purpose)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))
