"""Benchmark: the Beam ingest pipeline against a plain single-process loop, same run.

Both do the same work on the same files: read, sha256, decode and validate, resize to a
256 px short side, encode PNG, write Parquet by split. The loop is what one writes without
Beam; the pipeline adds the input expansion, the joins that make reruns idempotent and the
duplicate checks, and runs on the local runner with `--direct_running_mode multi_processing
--direct_num_workers 2` (the local default; see pipelines/options.py for why not threads).

    python bench/ingest.py [--count 2000] [--small 20000] [--workers 2] [--repeats N]

Prints images/s for both and the ratio (target >= 1.5x with 2 workers on 2 cores), then
the peak resident memory of the whole process tree while ingesting --small small images
(target < 2 GiB: nothing may hold the dataset in memory).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from scenegan import dataset, imaging
from scenegan.scenes import render_scene

SIZES = [((640, 480), 0.85), ((1600, 1200), 0.10), ((4000, 3000), 0.05)]


def make_inputs(directory: Path, count: int, *, small: bool = False) -> Path:
    """`count` distinct JPEGs of mixed sizes (or 96x64 PNGs with small=True), cached."""
    folder = directory / (f"small-{count}" if small else f"mixed-{count}")
    if (folder / ".done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    bases = [np.asarray(render_scene(7, index, 320, 240)) for index in range(24)]
    for index in range(count):
        base = Image.fromarray(bases[index % len(bases)])
        if small:
            size, fmt = (96, 64), "PNG"
        else:
            choice = rng.choice(len(SIZES), p=[weight for _, weight in SIZES])
            size, fmt = SIZES[choice][0], "JPEG"
        pixels = np.asarray(base.resize(size, Image.Resampling.BILINEAR)).copy()
        pixels[:4, :24] = rng.integers(0, 256, (4, 24, 3))  # distinct bytes per image
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        suffix = "png" if small else "jpg"
        (folder / f"img-{index:05d}.{suffix}").write_bytes(buffer.getvalue())
    (folder / ".done").write_text("ok")
    return folder


def plain_loop(folder: Path, output: Path, settings: dataset.PrepareSettings) -> int:
    """Read, hash, prepare, and write Parquet per split, one process, no framework."""
    rows: dict[str, list[dict]] = {split: [] for split in dataset.SPLITS}
    accepted = 0
    for path in sorted(folder.glob("img-*")):
        data = path.read_bytes()
        image_id = hashlib.sha256(data).hexdigest()
        try:
            prepared = dataset.prepare_image(data, settings)
        except imaging.ImageError:
            continue
        row = {"image_id": image_id, "source_uri": str(path), **vars(prepared), "ingested_at": None}
        rows[dataset.split_for(image_id)].append(row)
        accepted += 1
    for split, items in rows.items():
        target = output / "images" / "domain=photo" / f"split={split}"
        target.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(items, schema=dataset.IMAGE_SCHEMA)
        pq.write_table(table, target / "part-0.parquet", row_group_size=512)
    return accepted


def beam_ingest(folder: Path, output: Path, mode: str, workers: int) -> tuple[float, int]:
    """Run the pipeline in a child process; returns (seconds, peak tree RSS in bytes)."""
    command = [
        sys.executable,
        "-m",
        "pipelines.ingest",
        "--input",
        str(folder),
        "--domain",
        "photo",
        "--output",
        str(output),
        "--size",
        "256",
        "--direct_running_mode",
        mode,
        "--direct_num_workers",
        str(workers),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = PeakTreeRss(process.pid)
    peak.start()
    out, _ = process.communicate()
    seconds = time.perf_counter() - started
    peak.stop()
    if process.returncode != 0:
        raise RuntimeError(out.decode(errors="replace")[-3000:])
    return seconds, peak.peak


class PeakTreeRss(threading.Thread):
    """Samples the summed RSS of a process and all its descendants every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop_event = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            self.peak = max(self.peak, _tree_rss(self.pid))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _tree_rss(root: int) -> int:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--small", type=int, default=20000, help="0 skips the memory run")
    parser.add_argument(
        "--mode",
        default="multi_processing",
        help="multi_processing (the local default) or multi_threading",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="loop/Beam pairs to run")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "scenegan-bench"))
    args = parser.parse_args()
    cache = Path(args.cache)
    started = time.perf_counter()
    folder = make_inputs(cache, args.count)
    print(f"inputs: {args.count} JPEGs in {folder} ({time.perf_counter() - started:.0f} s)")
    settings = dataset.PrepareSettings(size=256)
    ratios = []
    for repeat in range(1, args.repeats + 1):  # alternate, so load from others hits both
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            accepted = plain_loop(folder, Path(scratch) / "loop", settings)
            loop_seconds = time.perf_counter() - started
            beam_seconds, beam_peak = beam_ingest(
                folder, Path(scratch) / "beam", args.mode, args.workers
            )
            written = pq.read_table(Path(scratch) / "beam" / "images").num_rows
        loop_rate, beam_rate = accepted / loop_seconds, written / beam_seconds
        ratios.append(beam_rate / loop_rate)
        print(
            f"[{repeat}] plain loop      : {loop_rate:7.1f} img/s ({accepted} images, "
            f"{loop_seconds:.1f} s)"
        )
        print(
            f"[{repeat}] beam {args.mode} x{args.workers}: {beam_rate:7.1f} img/s ({written} "
            f"images, {beam_seconds:.1f} s with start-up; peak RSS {beam_peak / 2**20:.0f} MiB)"
        )
        print(f"[{repeat}] ratio beam/loop : {ratios[-1]:.2f}x (target >= 1.5x)")
    if len(ratios) > 1:
        print(
            f"ratio over {len(ratios)} repeats: median {statistics.median(ratios):.2f}x, "
            f"min {min(ratios):.2f}x, max {max(ratios):.2f}x (target >= 1.5x)"
        )
    if args.small:
        small = make_inputs(cache, args.small, small=True)
        with tempfile.TemporaryDirectory() as scratch:
            seconds, peak = beam_ingest(small, Path(scratch) / "ds", args.mode, args.workers)
            rows = pq.read_table(Path(scratch) / "ds" / "images").num_rows
        print(
            f"{args.small} small images: {args.small / seconds:.1f} img/s, {rows} rows "
            f"({'exact' if rows == args.small else 'NOT EXACT'}), peak RSS of the process tree "
            f"{peak / 2**30:.2f} GiB (target < 2 GiB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
