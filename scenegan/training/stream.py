"""The training reader: an ingested dataset streamed row group by row group.

`DatasetStream` is a torch `IterableDataset` over one domain and split of DESIGN.md's
dataset, local or `gs://`. Memory stays flat whatever the dataset size: only the Parquet
footers are read up front, then one row group at a time, into a bounded shuffle buffer of
encoded images; decoding and augmentation happen per image as it leaves the buffer.

Sharding: the row groups of an epoch are put in a seeded order and dealt round-robin to
`world_size x num_workers` shards (DDP rank x DataLoader worker), so within an epoch no
image is seen twice and every image is seen once. When there are fewer row groups than
shards, rows are dealt instead (every shard reads every group, keeps its own rows).

The stream is endless (epoch after epoch), and a pure function of (seed, shard): resuming
at batch k skips exactly the samples each worker had produced, reading but not decoding
them, so a resumed run sees the images an uninterrupted one would.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import multiprocessing
import os
import random
import signal
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from scenegan import dataset, storage
from scenegan.pixels import normalize
from scenegan.training.data import crop, decode_square


@dataclass(frozen=True)
class RowGroup:
    uri: str
    index: int
    num_rows: int


def list_row_groups(root: str, domain: str, split: str) -> list[RowGroup]:
    """Every row group of the domain's split, in a stable order (footers only)."""
    folder = dataset.images_dir(root, domain, split)
    if not storage.exists(folder):
        return []
    groups = []
    for uri in storage.list_files(folder):
        if not uri.endswith(".parquet"):
            continue
        metadata = _open(uri).metadata
        groups += [
            RowGroup(uri, index, metadata.row_group(index).num_rows)
            for index in range(metadata.num_row_groups)
            if metadata.row_group(index).num_rows > 0
        ]
    return groups


def _open(uri: str) -> pq.ParquetFile:
    filesystem, path = storage.resolve(uri)
    return pq.ParquetFile(filesystem.open_input_file(path))


def _mix(*parts: int) -> int:
    return int(np.random.SeedSequence(parts).generate_state(1, np.uint64)[0])


class DatasetStream(IterableDataset):
    """Endless (3, S, S) float tensors in [-1, 1] from one domain/split of a dataset."""

    def __init__(
        self,
        root: str,
        domain: str,
        split: str = "train",
        *,
        image_size: int,
        load_size: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 256,
        augment: bool = True,
        start_batch: int = 0,
        batch_size: int = 1,
    ) -> None:
        super().__init__()
        self.root, self.domain, self.split = root, domain, split
        self.image_size, self.load_size = image_size, load_size or image_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shuffle_buffer, self.augment = max(1, shuffle_buffer), augment
        self.start_batch, self.batch_size = start_batch, batch_size
        self.groups = list_row_groups(root, domain, split)
        self.num_rows = sum(group.num_rows for group in self.groups)
        if self.num_rows == 0:
            raise FileNotFoundError(
                f"the dataset at {root} has no {split} images of domain {domain!r}"
            )

    def __len__(self) -> int:
        return self.num_rows

    # --- the sample order ---------------------------------------------------------

    def _shard(self) -> tuple[int, int, int]:
        """(shard, number of shards, DataLoader workers) for the calling worker."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        # Batches come from the workers in turn, starting with worker 0. A run resumed at
        # batch k starts with the worker that would have made batch k: rotate the roles.
        worker = (worker + self.start_batch) % workers
        return self.rank * workers + worker, self.world_size * workers, workers

    def encoded(self, epochs: int | None = None) -> Iterator[tuple[int, int, str, bytes]]:
        """(epoch, position, image_id, encoded bytes) of this shard, shuffled, endless."""
        shard, shards, _ = self._shard()
        epoch = 0
        while epochs is None or epoch < epochs:
            rng = random.Random(_mix(self.seed, epoch, shard))
            buffer: list[tuple[str, bytes]] = []
            position = 0
            for image_id, data in self._rows(epoch, shard, shards):
                buffer.append((image_id, data))
                if len(buffer) >= self.shuffle_buffer:
                    yield epoch, position, *_pop_random(buffer, rng)
                    position += 1
            while buffer:
                yield epoch, position, *_pop_random(buffer, rng)
                position += 1
            epoch += 1

    def _rows(self, epoch: int, shard: int, shards: int) -> Iterator[tuple[str, bytes]]:
        order = list(self.groups)
        random.Random(_mix(self.seed, epoch)).shuffle(order)
        deal_groups = len(order) >= shards
        mine = order[shard::shards] if deal_groups else order
        row_number = 0
        for group in mine:
            table = _open(group.uri).read_row_group(group.index, columns=["image_id", "image"])
            ids, images = table["image_id"].to_pylist(), table["image"]
            for offset, image_id in enumerate(ids):
                keep = deal_groups or row_number % shards == shard
                row_number += 1
                if keep:
                    yield image_id, images[offset].as_py()

    # --- samples ------------------------------------------------------------------

    def _skip(self, workers: int) -> int:
        """Samples this worker produced before `start_batch` (batches go round-robin)."""
        _, worker = divmod(self._shard()[0], workers)
        batches = len(range(worker, self.start_batch, workers))
        return batches * self.batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        _, _, workers = self._shard()
        skip = self._skip(workers)
        for index, (epoch, position, image_id, data) in enumerate(self.encoded()):
            if index < skip:
                continue  # read, not decoded: resuming costs I/O only
            yield self.decode(data, _mix(self.seed, epoch, position, int(image_id[:12], 16)))

    def decode(self, data: bytes, crop_seed: int) -> torch.Tensor:
        seed = crop_seed if self.augment else None
        return training_crop(data, self.image_size, self.load_size, seed)


def training_crop(data: bytes, image_size: int, load_size: int, seed: int | None) -> torch.Tensor:
    """(3, S, S) float in [-1, 1]: decoded, resized and centre-cropped to `load_size`, then a
    seeded random `image_size` crop and flip (CycleGAN's jitter), or the centre for None."""
    margin = load_size - image_size
    top = left = margin // 2
    flip = False
    if seed is not None:
        rng = random.Random(seed)
        top, left, flip = rng.randint(0, margin), rng.randint(0, margin), rng.random() < 0.5
    return normalize(crop(decode_square(data, load_size), top, left, image_size, flip))


def _pop_random(buffer: list, rng: random.Random):
    """Remove and return a uniformly chosen item in O(1) (swap with the last)."""
    index = rng.randrange(len(buffer))
    buffer[index], buffer[-1] = buffer[-1], buffer[index]
    return buffer.pop()


def ignore_stop_signals(stopping: EventType, _worker_id: int) -> None:
    """DataLoader workers ignore SIGINT, and SIGTERM until their training process is
    shutting them down (`stopping` set). Sent to the whole process group, a stop signal
    would otherwise kill them before the training process could finish its step and
    checkpoint (the loader then fails the run with "worker exited unexpectedly"). The
    training process stops them itself (`StreamedDomain.close`, also at interpreter exit,
    when multiprocessing terminates its daemonic children with SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(_signum: int, _frame: object) -> None:
        if stopping.is_set():
            os._exit(0)

    signal.signal(signal.SIGTERM, on_term)


_OPEN: weakref.WeakSet[StreamedDomain] = weakref.WeakSet()


@atexit.register  # registered after multiprocessing's own exit hook, so it runs before it
def _close_open_domains() -> None:
    for domain in list(_OPEN):
        domain.close()


class StreamedDomain:
    """A training domain read through `DatasetStream` and a DataLoader: `next_batch()`
    gives this rank's batch. Quacks like `DomainImages` for sample grids and fingerprints."""

    def __init__(self, stream: DatasetStream, *, num_workers: int = 2, preview: int = 6):
        self.name = stream.domain
        self.stream = stream
        self._stopping = multiprocessing.get_context().Event()
        self.loader = DataLoader(
            stream,
            batch_size=stream.batch_size,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            worker_init_fn=functools.partial(ignore_stop_signals, self._stopping),
            prefetch_factor=2 if num_workers > 0 else None,
        )
        self._batches: Iterator[torch.Tensor] | None = None
        self.preview = self._preview(preview)
        _OPEN.add(self)

    def __len__(self) -> int:
        return len(self.stream)

    def next_batch(self) -> torch.Tensor:
        if self._batches is None:
            self._batches = iter(self.loader)
        return next(self._batches)

    def close(self) -> None:
        """Stop the loader's worker processes (they now accept SIGTERM)."""
        self._stopping.set()
        batches, self._batches = self._batches, None
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        _OPEN.discard(self)

    def _preview(self, count: int) -> torch.Tensor:
        """The first `count` rows of the first row group, centre-cropped: the sample grid."""
        group = self.stream.groups[0]
        table = _open(group.uri).read_row_group(group.index, columns=["image"])
        images = table["image"].to_pylist()[:count]
        size, load = self.stream.image_size, self.stream.load_size
        return torch.stack([training_crop(data, size, load, None) for data in images])

    def batch(self, indices: list[int], crops: object = None) -> torch.Tensor:
        """Preview images by index (what sample grids ask for)."""
        return self.preview[[i % len(self.preview) for i in indices]]

    def fingerprint(self) -> str:
        manifest = dataset.read_manifest(self.stream.root) or {}
        recorded = manifest.get("domains", {}).get(self.name, {}).get("fingerprint")
        basis = recorded or ",".join(f"{g.uri}:{g.index}:{g.num_rows}" for g in self.stream.groups)
        return hashlib.sha256(f"{self.name}/{self.stream.split}:{basis}".encode()).hexdigest()
