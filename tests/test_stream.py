"""The streaming training reader over an ingested dataset: sharding, shuffling, resume."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from scenegan import dataset, imaging, scenes, storage
from scenegan.training import resolve_config, training_loop
from scenegan.training.stream import DatasetStream, StreamedDomain, list_row_groups


def write_dataset(root: str, domain: str, count: int, rows_per_group: int, seed: int = 0) -> None:
    """A dataset in the ingest layout, written directly, with small row groups."""
    rows = {name: [] for name in ("image_id", "source_uri", "image")}
    for index in range(count):
        data = imaging.encode_image(scenes.render_scene(seed, index, 40, 40), "png")
        rows["image_id"].append(hashlib.sha256(data).hexdigest())
        rows["source_uri"].append(f"mem://{domain}/{index}.png")
        rows["image"].append(data)
    table = pa.table(rows)
    filesystem, path = storage.resolve(f"{root}/images/domain={domain}/split=train")
    filesystem.create_dir(path, recursive=True)
    half = count // 2
    for part, piece in enumerate((table.slice(0, half), table.slice(half))):
        with filesystem.open_output_stream(f"{path}/part-{part}.parquet") as sink:
            pq.write_table(piece, sink, row_group_size=rows_per_group)


class IdStream(DatasetStream):
    """The same order, as image ids (no decoding), for checking coverage."""

    def __iter__(self) -> Iterator[str]:
        for _, _, image_id, _ in self.encoded(epochs=self.epochs):
            yield image_id

    epochs = 1


def epoch_ids(root: str, world_size: int, workers: int, **kwargs) -> list[list[str]]:
    per_rank = []
    for rank in range(world_size):
        stream = IdStream(root, "photo", image_size=32, rank=rank, world_size=world_size, **kwargs)
        loader = DataLoader(stream, batch_size=None, num_workers=workers)
        per_rank.append(list(loader))
    return per_rank


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("stream") / "ds")
    write_dataset(root, "photo", count=40, rows_per_group=4)
    return root


@pytest.mark.parametrize("rows_per_group", [4, 40])  # 10 groups (dealt), 1 group (rows dealt)
def test_each_image_once_per_epoch_across_ranks_and_workers(tmp_path, rows_per_group):
    root = str(tmp_path / "ds")
    write_dataset(root, "photo", count=40, rows_per_group=rows_per_group)
    ranks = epoch_ids(root, world_size=2, workers=2, shuffle_buffer=8)
    seen = [image_id for rank in ranks for image_id in rank]
    assert len(seen) == 40 and len(set(seen)) == 40
    assert all(ranks)  # both ranks get work


def test_order_is_shuffled_per_epoch_and_reproducible(data_root):
    stream = IdStream(data_root, "photo", image_size=32, shuffle_buffer=16, seed=5)
    stream.epochs = 2
    ids = list(stream)
    first, second = ids[:40], ids[40:]
    assert sorted(first) == sorted(second) and first != second
    natural = pq.read_table(f"{data_root}/images/domain=photo/split=train")["image_id"].to_pylist()
    assert first != natural
    again = IdStream(data_root, "photo", image_size=32, shuffle_buffer=16, seed=5)
    again.epochs = 2
    assert list(again) == ids


def test_resuming_at_a_batch_continues_the_same_stream(data_root):
    def batches(start: int, count: int) -> list[torch.Tensor]:
        stream = DatasetStream(
            data_root,
            "photo",
            image_size=32,
            load_size=36,
            seed=1,
            shuffle_buffer=8,
            start_batch=start,
            batch_size=3,
        )
        domain = StreamedDomain(stream, num_workers=2)
        return [domain.next_batch() for _ in range(count)]

    unbroken = batches(0, 20)  # 60 samples: crosses an epoch boundary
    resumed = batches(13, 7)
    for expected, got in zip(unbroken[13:], resumed, strict=True):
        assert torch.equal(expected, got)
    assert unbroken[0].shape == (3, 3, 32, 32)
    assert unbroken[0].min() >= -1 and unbroken[0].max() <= 1


def write_noise_dataset(root: str, groups: int, rows_per_group: int, size: int) -> int:
    """One Parquet file of incompressible `size`-byte images; returns its image bytes."""
    rng = np.random.default_rng(0)
    images = [rng.bytes(size) for _ in range(groups * rows_per_group)]
    table = pa.table(
        {
            "image_id": [hashlib.sha256(data).hexdigest() for data in images],
            "source_uri": [f"mem://{i}" for i in range(len(images))],
            "image": images,
        }
    )
    folder = Path(dataset.images_dir(root, "photo", "train"))
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "part-0.parquet", row_group_size=rows_per_group)
    return len(images) * size


def test_reader_memory_is_one_row_group_not_the_dataset(tmp_path):
    """Peak memory while reading an epoch (Python objects by tracemalloc, Arrow buffers by
    its allocator) stays within a few row groups (the one being read, the one before it,
    decompression buffers), far below the dataset's size."""
    group_bytes = 8 * 64_000
    total = write_noise_dataset(str(tmp_path), groups=24, rows_per_group=8, size=64_000)
    stream = IdStream(str(tmp_path), "photo", image_size=32, shuffle_buffer=4)
    arrow_peak = 0
    tracemalloc.start()
    try:
        count = 0
        for _ in stream:
            count += 1
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes())
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 192
    assert python_peak + arrow_peak < 6 * group_bytes <= total / 4, (python_peak, arrow_peak)


def test_missing_domain_and_gcs(tmp_path, gcs_bucket):
    with pytest.raises(FileNotFoundError, match="no train images of domain 'nope'"):
        DatasetStream(str(tmp_path), "nope", image_size=32)
    root = f"{gcs_bucket}/stream-ds"
    write_dataset(root, "photo", count=12, rows_per_group=3)
    assert len(list_row_groups(root, "photo", "train")) == 4
    stream = IdStream(root, "photo", image_size=32)
    assert len(set(stream)) == 12


def test_training_streams_an_ingested_dataset_and_resumes_exactly(tmp_path):
    root = str(tmp_path / "ds")
    write_dataset(root, "photo", count=16, rows_per_group=4, seed=1)
    write_dataset(root, "painting", count=16, rows_per_group=4, seed=2)
    assert dataset.is_ingested(root)

    def config(output: str, steps: int):
        return resolve_config(
            "unpaired",
            "tiny",
            data=root,
            output=output,
            source_domain="photo",
            target_domain="painting",
            steps=steps,
            batch_size=2,
            checkpoint_every=2,
            sample_every=100,
            eval_every=-1,
            loader_workers=1,
            shuffle_buffer=4,
        )

    straight = training_loop(config(str(tmp_path / "a"), 4), progress=False)
    training_loop(config(str(tmp_path / "b"), 2), progress=False)
    resumed = training_loop(config(str(tmp_path / "b"), 4), resume=True, progress=False)
    assert resumed.resumed_from == 2
    assert straight.last_losses == resumed.last_losses
    weights = [
        torch.load(Path(d) / "checkpoints" / "step-00000004.pt", weights_only=True)
        for d in (tmp_path / "a", tmp_path / "b")
    ]
    for name, tensor in weights[0]["networks"]["G_AB"].items():
        assert torch.equal(tensor, weights[1]["networks"]["G_AB"][name]), name
