"""The scene dataset: identity, split and where a domain's images are found.

Two layouts are read:

* the ingest output of DESIGN.md (`DATASET/images/domain=<d>/split=<s>/*.parquet`), and
* a plain directory of images per domain (`DATASET/<domain>/*.png|jpg|...`), for data
  that has not been ingested; its split is computed here with the same rule ingest uses.

`image_id` is the sha256 of the source bytes and the split is a pure function of it, so an
image never moves between splits, whichever tool put it there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as pads

from scenegan import storage

SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp"}


def image_id_for(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_for(image_id: str, test_fraction: float = DEFAULT_TEST_FRACTION) -> str:
    """'test' for a stable `test_fraction` of ids, else 'train' (first 32 bits as a fraction)."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} must be in [0, 1)")
    return "test" if int(image_id[:8], 16) / 2**32 < test_fraction else "train"


@dataclass(frozen=True)
class SourceImage:
    """One stored image of a domain: its id, where it came from, and its bytes."""

    image_id: str
    source_uri: str
    data: bytes

    @property
    def key(self) -> str:
        """The file stem: what pairs a source image with its target in paired data."""
        return Path(self.source_uri.rsplit("/", 1)[-1]).stem


def is_ingested(root: str) -> bool:
    return storage.exists(storage.join(root, "images"))


def iter_domain(
    root: str, domain: str, split: str | None, *, test_fraction: float = DEFAULT_TEST_FRACTION
) -> Iterator[SourceImage]:
    """The images of `domain` in `split` (None: all splits), from either layout, in a
    stable order."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r} must be one of {SPLITS}")
    if is_ingested(root):
        yield from _iter_ingested(root, domain, SPLITS if split is None else (split,))
        return
    directory = storage.join(root, domain)
    files = [u for u in storage.list_files(directory) if Path(u).suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(
            f"no images for domain {domain!r}: expected an ingested dataset "
            f"({storage.join(root, 'images')}) or image files in {directory}"
        )
    for uri in files:
        data = storage.read_bytes(uri)
        image_id = image_id_for(data)
        if split is None or split_for(image_id, test_fraction) == split:
            yield SourceImage(image_id, uri, data)


def _iter_ingested(root: str, domain: str, splits: tuple[str, ...]) -> Iterator[SourceImage]:
    filesystem, path = storage.resolve(storage.join(root, "images"))
    dataset = pads.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    matches = (pads.field("domain") == domain) & pads.field("split").isin(list(splits))
    table = dataset.to_table(columns=["image_id", "source_uri", "image"], filter=matches)
    table = table.sort_by("image_id")
    if table.num_rows == 0:
        wanted = " or ".join(splits)
        raise FileNotFoundError(
            f"the dataset at {root} has no {wanted} images of domain {domain!r}"
        )
    for row in table.to_pylist():
        yield SourceImage(row["image_id"], row["source_uri"], row["image"])
