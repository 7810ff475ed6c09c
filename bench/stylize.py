"""Benchmark: the Beam stylize pipeline against a plain single-process loop, same run.

Both do the same work on the same JPEGs (512x384 by default) with the same model and batch
size at --max-side 256: read, decode, resize and pad, forward, crop, encode JPEG, write.
The pipeline adds the input expansion, the skip join, shape batching, RunInference and the
metadata Parquet; it runs on the local runner's default (one worker process per core, each
with its share of torch threads: 1 each on 2 cores; the loop keeps torch's default of 2).

    python bench/stylize.py [--count 500] [--models resnet9,light] [--rss-counts 500,5000]
                            [--repeats N]

Prints, per model: img/s for both and the ratio (target >= 0.9), the generator's achieved
GFLOP/s against a same-run fp32 matmul's, then the pipeline's peak RSS (process tree) at
each of --rss-counts images with the light model (target: flat).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ingest import PeakTreeRss  # bench/ingest.py, next to this script
from PIL import Image

from scenegan import artifact, imaging
from scenegan.inference import Stylizer, bucket_multiple, finish, prepare
from scenegan.models import build_model
from scenegan.models.flops import count_flops
from scenegan.scenes import render_scene

MODELS = {
    "resnet9": ("resnet", dict(base_channels=64, num_blocks=9)),  # CycleGAN's generator
    "light": ("light", dict(base_channels=32, num_blocks=4)),
}
MAX_SIDE, BATCH = 256, 8


def make_jpegs(folder: Path, count: int) -> Path:
    if (folder / ".done").exists() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    bases = [np.asarray(render_scene(3, index, 512, 384)) for index in range(16)]
    for index in range(count):
        pixels = bases[index % len(bases)].copy()
        pixels[:4, :32] = rng.integers(0, 256, (4, 32, 3))  # distinct bytes per image
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        (folder / f"photo-{index:05d}.jpg").write_bytes(buffer.getvalue())
    (folder / ".done").write_text("ok")
    return folder


def save(name: str, folder: Path) -> str:
    torch.manual_seed(0)
    architecture, arguments = MODELS[name]
    path = str(folder / name)
    artifact.save_model(
        path,
        build_model(architecture, arguments).eval(),
        task="unpaired",
        image_size=256,
        source_domain="photo",
        target_domain="painting",
        training={},
        metrics={},
    )
    return path


def plain_loop(model_path: str, folder: Path, output: Path) -> int:
    stylizer = Stylizer(artifact.load_model(model_path), device="cpu", max_batch_size=BATCH)
    multiple = bucket_multiple(stylizer.stride, 32)
    output.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("*.jpg"))
    for start in range(0, len(paths), BATCH):
        chunk = paths[start : start + BATCH]
        prepared = []
        for path in chunk:
            decoded = imaging.decode_image(path.read_bytes(), draft_max_side=MAX_SIDE)
            prepared.append(prepare(decoded.image, max_side=MAX_SIDE, multiple=multiple))
        outputs = stylizer.run_batch([p.pixels for p in prepared])
        for path, item, out in zip(chunk, prepared, outputs, strict=True):
            data = imaging.encode_image(finish(out, item.box, None), "jpeg", quality=90)
            (output / f"{path.stem}.jpg").write_bytes(data)
    return len(paths)


def beam_stylize(model_path: str, folder: Path, output: Path) -> tuple[float, int]:
    command = [
        sys.executable,
        "-m",
        "pipelines.stylize",
        "--model",
        model_path,
        "--input",
        str(folder),
        "--output",
        str(output),
        "--max-side",
        str(MAX_SIDE),
        "--batch-size",
        str(BATCH),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = PeakTreeRss(process.pid)
    peak.start()
    out, _ = process.communicate()
    peak.stop()
    if process.returncode != 0:
        raise RuntimeError(out.decode(errors="replace")[-3000:])
    return time.perf_counter() - started, peak.peak


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def generator_gflops(model_path: str) -> tuple[float, float]:
    """(achieved GFLOP/s, GFLOP per image) of a batch of BATCH images at 256x192."""
    generator = artifact.load_model(model_path).generator
    x = torch.randn(BATCH, 3, 192, 256)
    flops = count_flops(generator, x)
    with torch.inference_mode():
        generator(x)
        started = time.perf_counter()
        generator(x)
        seconds = time.perf_counter() - started
    return flops / seconds / 1e9, flops / BATCH / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--models", default="resnet9,light")
    parser.add_argument("--repeats", type=int, default=1, help="loop/Beam pairs per model")
    parser.add_argument("--rss-counts", default="500,5000", help="'' skips the memory runs")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "scenegan-bench"))
    args = parser.parse_args()
    cache = Path(args.cache)
    folder = make_jpegs(cache / f"photos-{args.count}", args.count)
    print(f"fp32 matmul: {matmul_gflops():.1f} GFLOP/s (same run)")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            model_path = save(name, Path(scratch))
            achieved, per_image = generator_gflops(model_path)
            ratios = []
            for repeat in range(1, args.repeats + 1):  # alternate: others' load hits both
                started = time.perf_counter()
                count = plain_loop(model_path, folder, Path(scratch) / f"loop-{name}-{repeat}")
                loop_rate = count / (time.perf_counter() - started)
                output = Path(scratch) / f"beam-{name}-{repeat}"
                seconds, peak = beam_stylize(model_path, folder, output)
                beam_rate = count / seconds
                ratios.append(beam_rate / loop_rate)
                print(
                    f"[{repeat}] {name}: {per_image:.1f} GFLOP/image, generator {achieved:.1f} "
                    f"GFLOP/s; loop {loop_rate:.2f} img/s, beam {beam_rate:.2f} img/s (with "
                    f"start-up), ratio {ratios[-1]:.2f} (target >= 0.9); "
                    f"peak RSS {peak / 2**20:.0f} MiB"
                )
            if len(ratios) > 1:
                print(
                    f"{name}: ratio over {len(ratios)} repeats: median "
                    f"{statistics.median(ratios):.2f}, min {min(ratios):.2f}, "
                    f"max {max(ratios):.2f} (target >= 0.9)"
                )
        for count in [int(c) for c in args.rss_counts.split(",") if c]:
            photos = make_jpegs(cache / f"photos-{count}", count)
            model_path = save("light", Path(scratch))
            seconds, peak = beam_stylize(model_path, photos, Path(scratch) / f"rss-{count}")
            print(
                f"light, {count} images: {count / seconds:.1f} img/s, peak RSS of the process "
                f"tree {peak / 2**20:.0f} MiB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
