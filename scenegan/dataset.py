"""The scene dataset: identity, split, schema, preparation and where a domain's images are.

Two layouts are read:

* the ingest output of DESIGN.md (`DATASET/images/domain=<d>/split=<s>/*.parquet`), and
* a plain directory of images per domain (`DATASET/<domain>/*.png|jpg|...`), for data
  that has not been ingested; its split is computed here with the same rule ingest uses.

`image_id` is the sha256 of the source bytes and the split is a pure function of it, so an
image never moves between splits, whichever tool put it there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from scenegan import imaging, storage

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp"}
SCHEMA_VERSION = "scenegan-dataset/1"

# Columns of the Parquet files; `domain` and `split` live in the hive path, not the files.
IMAGE_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("source_uri", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("orig_width", pa.int32()),
        ("orig_height", pa.int32()),
        ("orig_format", pa.string()),
        ("image", pa.binary()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class PrepareSettings:
    """How ingest turns a source image into a stored one."""

    size: int | None = None  # short side; None keeps the size
    crop: bool = False  # with size: centre-crop to size x size
    max_side: int | None = None  # instead of size: long side at most this, aspect kept
    encoding: imaging.EncodeFormat = "png"
    quality: int = 90
    max_pixels: int = imaging.DEFAULT_LIMITS.max_pixels
    min_side: int = imaging.DEFAULT_LIMITS.min_side

    def __post_init__(self) -> None:
        if self.size is not None and self.max_side is not None:
            raise ValueError("give --size or --max-side, not both")
        if self.crop and self.size is None:
            raise ValueError("--crop needs --size")
        for name in ("size", "max_side"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.encoding not in imaging.ENCODE_EXTENSIONS:
            raise ValueError(f"encoding {self.encoding!r} is not one of png, jpeg, webp")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {self.quality}")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PreparedImage:
    width: int
    height: int
    orig_width: int
    orig_height: int
    orig_format: str
    image: bytes


def prepare_image(data: bytes, settings: PrepareSettings) -> PreparedImage:
    """Decode, validate, resize and re-encode one source image (raises `ImageError`)."""
    limits = imaging.DecodeLimits(max_pixels=settings.max_pixels, min_side=settings.min_side)
    decoded = imaging.decode_image(
        data, limits=limits, draft_short_side=settings.size, draft_max_side=settings.max_side
    )
    image = decoded.image
    if settings.size is not None:
        image = (
            imaging.resize_and_center_crop(image, settings.size)
            if settings.crop
            else imaging.resize_short_side(image, settings.size)
        )
    elif settings.max_side is not None:
        image = imaging.resize_max_side(image, settings.max_side)
    encoded = imaging.encode_image(image, settings.encoding, quality=settings.quality)
    return PreparedImage(
        image.width,
        image.height,
        decoded.orig_width,
        decoded.orig_height,
        decoded.orig_format,
        encoded,
    )


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


# --- where things are: the one place the hive layout's folder names are spelt ----------


def images_dir(root: str, domain: str | None = None, split: str | None = None) -> str:
    """`ROOT/images[/domain=<domain>[/split=<split>]]`."""
    parts = ["images"]
    if domain is not None:
        parts.append(f"domain={domain}")
        if split is not None:
            parts.append(f"split={split}")
    return storage.join(root, *parts)


def rejects_dir(root: str, domain: str | None = None) -> str:
    """`ROOT/rejects[/domain=<domain>]`."""
    return storage.join(root, "rejects", *([f"domain={domain}"] if domain is not None else []))


def is_partition(path: str) -> bool:
    """Whether `path` names a folder of the ingested layout, e.g. DATASET/images/domain=d/..."""
    return "/images/domain=" in path


def is_ingested(root: str) -> bool:
    return storage.exists(images_dir(root))


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
    files = domain_files(root, domain)
    if not files:
        raise FileNotFoundError(
            f"no images for domain {domain!r}: expected an ingested dataset "
            f"({images_dir(root)}) or image files in {directory}"
        )
    for uri in files:
        data = storage.read_bytes(uri)
        image_id = image_id_for(data)
        if split is None or split_for(image_id, test_fraction) == split:
            yield SourceImage(image_id, uri, data)


def domain_files(root: str, domain: str) -> list[str]:
    """The image files of `domain` in a folder dataset (ROOT/<domain>/*.jpg ...), sorted."""
    files = storage.list_files(storage.join(root, domain))
    return [uri for uri in files if Path(uri).suffix.lower() in IMAGE_SUFFIXES]


def _iter_ingested(root: str, domain: str, splits: tuple[str, ...]) -> Iterator[SourceImage]:
    filesystem, path = storage.resolve(images_dir(root))
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


# --- the dataset manifest -------------------------------------------------------------

MANIFEST_NAME = "_manifest.json"


def read_manifest(root: str) -> dict | None:
    """`DATASET/_manifest.json`, or None when the dataset has none yet."""
    uri = storage.join(root, MANIFEST_NAME)
    if not storage.exists(uri):
        return None
    return json.loads(storage.read_bytes(uri))


def _table(base: str, columns: list[str]) -> pa.Table | None:
    if not storage.exists(base):
        return None
    filesystem, path = storage.resolve(base)
    parts = pads.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    if not parts.files:
        return None
    return parts.to_table(columns=columns)


def summarize(root: str) -> dict:
    """Counts by domain, split and reject reason, and content fingerprints, read from the
    Parquet files themselves (only the id and reason columns, never the images)."""
    domains: dict[str, dict] = {}
    images = _table(images_dir(root), ["image_id", "domain", "split"])
    for row in _group_counts(images, ["domain", "split"]):
        entry = domains.setdefault(row["domain"], {"images": {}, "rejects": {}})
        entry["images"][row["split"]] = row["count"]
    rejects = _table(rejects_dir(root), ["reason", "domain"])
    for row in _group_counts(rejects, ["domain", "reason"]):
        entry = domains.setdefault(row["domain"], {"images": {}, "rejects": {}})
        entry["rejects"][row["reason"]] = row["count"]
    for name, entry in domains.items():
        entry["fingerprint"] = _fingerprint(images, name)
    overall = hashlib.sha256(
        json.dumps({d: e["fingerprint"] for d, e in sorted(domains.items())}).encode()
    ).hexdigest()
    return {"schema_version": SCHEMA_VERSION, "fingerprint": overall, "domains": domains}


def _group_counts(table: pa.Table | None, keys: list[str]) -> list[dict]:
    if table is None or table.num_rows == 0:
        return []
    grouped = table.group_by(keys).aggregate([([], "count_all")])
    return [{**row, "count": row.pop("count_all")} for row in grouped.to_pylist()]


def _fingerprint(images: pa.Table | None, domain: str) -> str:
    """sha256 over the domain's sorted (split, image_id) pairs: equal datasets, equal prints."""
    digest = hashlib.sha256()
    if images is not None:
        rows = images.filter(pc.equal(images["domain"], domain))
        pairs = zip(rows["split"].to_pylist(), rows["image_id"].to_pylist(), strict=True)
        for split, image_id in sorted(pairs):
            digest.update(f"{split}/{image_id}\n".encode())
    return digest.hexdigest()


def write_manifest(root: str, domain: str, settings: dict) -> dict:
    """Recount the dataset and write `_manifest.json` atomically. `settings` (how `domain`
    was ingested, test fraction included) replace that domain's; others' are kept."""
    previous = read_manifest(root) or {}
    manifest = summarize(root)
    for name, entry in manifest["domains"].items():
        old = previous.get("domains", {}).get(name, {})
        entry["settings"] = settings if name == domain else old.get("settings", {})
    manifest["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    storage.write_bytes(
        storage.join(root, MANIFEST_NAME), json.dumps(manifest, indent=2).encode() + b"\n"
    )
    return manifest


# --- can a training run use it --------------------------------------------------------


class DatasetError(ValueError):
    """A dataset the requested training cannot run on, with what to do about it."""


def check_dataset(
    root: str,
    domains: Iterable[str],
    *,
    batch_size: int,
    world_size: int = 1,
    held_out: bool = True,
) -> dict[str, dict[str, int]]:
    """Refuse a dataset that `domains` cannot train on; returns {domain: {split: count}}.

    Ingested datasets are checked from `_manifest.json` alone (no image is read); a folder
    of domain folders is checked by listing them. `held_out`: warn when a domain has too
    few test images for held-out metrics."""
    domains = list(domains)
    if not storage.exists(root):
        raise DatasetError(
            f"no dataset at {root}: make one with scenegan ingest --input PATTERN --domain "
            f"NAME --output {root}"
        )
    ingested = is_ingested(root)
    counts = _ingested_counts(root) if ingested else _folder_counts(root, domains)
    needed = batch_size * world_size
    for domain in domains:
        if domain not in counts:
            raise DatasetError(_missing_domain(root, domain, counts, ingested))
        train = counts[domain].get("train", 0)
        if train == 0:
            rejected = counts[domain].get("rejected", 0)
            why = f": all {rejected} of its inputs were rejected" if rejected else ""
            raise DatasetError(
                f"domain {domain!r} of {root} has no train images{why} (see "
                f"{rejects_dir(root, domain)} for the reasons)"
            )
        if train < needed:  # trains, but every batch repeats images: worth a word
            log.warning(
                "domain %r has %d train images, fewer than one global batch (%d x %d "
                "processes = %d): images repeat within batches",
                domain,
                train,
                batch_size,
                world_size,
                needed,
            )
        if held_out and counts[domain].get("test", 0) < 2:
            log.warning(
                "domain %r has fewer than 2 test images: no held-out metrics, so "
                "a registry promote has nothing to compare",
                domain,
            )
    return counts


def _missing_domain(
    root: str, domain: str, counts: dict[str, dict[str, int]], ingested: bool
) -> str:
    if ingested:
        known = ", ".join(sorted(counts)) or "none"
        return (
            f"{root} has no domain {domain!r} (it has: {known}); ingest it with "
            f"--domain {domain}, or fix the domain name"
        )
    return (
        f"no images for domain {domain!r}: {root} is neither an ingested dataset nor has "
        f"a folder {storage.join(root, domain)} of images"
    )


def _ingested_counts(root: str) -> dict[str, dict[str, int]]:
    manifest = read_manifest(root)
    if manifest is None:
        raise DatasetError(
            f"{root} has images/ but no {MANIFEST_NAME} (an interrupted ingest?): "
            "rerun scenegan ingest on the same inputs; it adds nothing twice and writes it"
        )
    counts: dict[str, dict[str, int]] = {}
    for name, entry in manifest.get("domains", {}).items():
        counts[name] = {split: int(n) for split, n in entry.get("images", {}).items()}
        counts[name]["rejected"] = sum(int(n) for n in entry.get("rejects", {}).values())
    return counts


def _folder_counts(root: str, domains: list[str]) -> dict[str, dict[str, int]]:
    counts = {}
    for domain in domains:
        images = domain_files(root, domain)
        if images or storage.exists(storage.join(root, domain)):
            # The split of a plain folder is only known after hashing; count all as train.
            counts[domain] = {"train": len(images)}
    return counts
