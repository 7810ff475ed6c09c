"""Benchmark: the Beam stylize pipeline against a plain single-process loop, same run.

Both do the same work on the same JPEGs (512x384 by default) with the same model and batch
size at --max-side 256: read, decode, resize and pad, forward, crop, encode JPEG, write.
The pipeline adds the input expansion, the skip join, shape batching, RunInference and the
metadata Parquet; it runs on the local runner's default (one worker process per core, each
with its share of torch threads: 1 each on 2 cores; the loop keeps torch's default of 2).

    python bench/stylize.py [--count 500] [--models resnet9,light] [--rss-counts 500,5000]
                            [--repeats N]
    python bench/stylize.py --stages [--count 1000]
    python bench/stylize.py --styles 3 [--count 500]
    python bench/stylize.py --threads 1,2 [--models identity,light] [--count 200]

Prints, per model: img/s for both and the ratio (target >= 0.9), the generator's achieved
GFLOP/s against a same-run fp32 matmul's, then the pipeline's peak RSS (process tree) at
each of --rss-counts images with the light model (target: flat).

`--stages`: the pipeline's non-inference ceiling. The `identity` MODEL (returns its input)
over 512x384 JPEGs at --max-side 512: CPU ms per image of each stage of a plain loop (read,
hash, decode, resize/pad, the identity forward, encode, write, metadata), then the Beam
pipeline on ONE worker process against that loop (img/s, and CPU ms per image of the whole
process tree; target >= 0.8x), with and without Beam's start-up.

`--threads 1,2`: harness threads sharing one model in ONE process (the Dataflow GPU worker's
layout: `--direct_running_mode multi_threading --direct_num_workers T`), 512x384 JPEGs at
--max-side 512: img/s and CPU ms/image per thread count, with and without start-up, and the
ratio to one thread. More than one thread is faster only if one thread's CPU work (decode,
encode, write) and another's forward run at the same time.

`--styles N`: N light MODELs (different weights) over the same JPEGs, in one job
(`--model` N times) against N single-model jobs one after another (target >= 1.5x).
`--style-model identity` takes N identity MODELs instead: the case of a GPU worker, where
the forward costs little next to the CPU work one job shares between its styles.
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
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from ingest import PeakTreeRss  # bench/ingest.py, next to this script
from PIL import Image

from pipelines.stylize import METADATA_SCHEMA
from scenegan import artifact, dataset, imaging, storage
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


def save(name: str, folder: Path, seed: int = 0) -> str:
    """MODEL `name` (MODELS) with seed-`seed` weights, saved as folder/name[-seed]."""
    torch.manual_seed(seed)
    architecture, arguments = MODELS[name]
    path = str(folder / (f"{name}-{seed}" if seed else name))
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


STAGES = ("read", "hash", "decode", "resize/pad", "forward", "encode", "write", "metadata")


def save_identity(folder: Path) -> str:
    path = str(folder / "identity")
    artifact.save_model(
        path,
        build_model("identity", {}).eval(),
        task="unpaired",
        image_size=512,
        source_domain="photo",
        target_domain="photo",
        training={},
        metrics={},
    )
    return path


def staged_loop(model_path: str, folder: Path, output: Path, max_side: int) -> dict[str, float]:
    """The stylize work one image at a time in batches, timing each stage's CPU seconds
    (imports happen before the caller's clock starts)."""
    clock = time.process_time
    spent = dict.fromkeys(STAGES, 0.0)
    stylizer = Stylizer(artifact.load_model(model_path), device="cpu", max_batch_size=BATCH)
    multiple = bucket_multiple(stylizer.stride, 32)
    output.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("*.jpg"))
    rows = []
    for start in range(0, len(paths), BATCH):
        chunk, prepared = paths[start : start + BATCH], []
        for path in chunk:
            t0 = clock()
            data = path.read_bytes()
            t1 = clock()
            image_id = dataset.image_id_for(data)
            t2 = clock()
            decoded = imaging.decode_image(data, draft_max_side=max_side)
            t3 = clock()
            prepared.append(
                (image_id, prepare(decoded.image, max_side=max_side, multiple=multiple))
            )
            t4 = clock()
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=False):
                spent[stage] += seconds
        t0 = clock()
        outputs = stylizer.run_batch([item.pixels for _, item in prepared])
        spent["forward"] += clock() - t0
        for path, (image_id, item), out in zip(chunk, prepared, outputs, strict=True):
            t0 = clock()
            image = finish(out, item.box, None)
            data = imaging.encode_image(image, "jpeg", quality=90)
            t1 = clock()
            uri = str(output / f"{image_id}.jpg")
            storage.write_bytes(uri, data)
            t2 = clock()
            rows.append(
                {
                    "source_uri": str(path),
                    "image_id": image_id,
                    "output_uri": uri,
                    "model_id": "m",
                    "status": "ok",
                    "reason": "",
                    "detail": "",
                    "width": image.size[0],
                    "height": image.size[1],
                    "run_id": "r",
                }
            )
            spent["encode"] += t1 - t0
            spent["write"] += t2 - t1
    t0 = clock()
    table = pa.Table.from_pylist(rows, schema=METADATA_SCHEMA)
    pq.write_table(table, str(output / "metadata.parquet"))
    spent["metadata"] += clock() - t0
    return spent


def beam_run(argv: list[str], output: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process tree) of one stylize job."""
    import resource

    command = [sys.executable, "-m", "pipelines.stylize", *argv, "--output", str(output)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"stylize failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def steady_run(argv: list[str], tiny: Path, folder: Path, scratch: Path) -> dict[str, float]:
    """One stylize job over `folder` and the same job over the 8 images of `tiny` (Beam's
    fixed cost): wall and CPU seconds of the full job, and both without that fixed cost."""
    fixed_wall, fixed_cpu = beam_run([*argv, "--input", str(tiny)], scratch / "fixed")
    wall, cpu = beam_run([*argv, "--input", str(folder)], scratch / "full")
    return {
        "fixed_wall": fixed_wall,
        "wall": wall,
        "cpu": cpu,
        "steady_wall": max(wall - fixed_wall, 1e-9),
        "steady_cpu": max(cpu - fixed_cpu, 1e-9),
    }


def stages_bench(args: argparse.Namespace, cache: Path) -> None:
    max_side = 512
    folder = make_jpegs(cache / f"photos-{args.count}", args.count)
    tiny = make_jpegs(cache / "photos-8", 8)
    with tempfile.TemporaryDirectory() as scratch:
        model = save_identity(Path(scratch))
        started, cpu0 = time.perf_counter(), time.process_time()
        spent = staged_loop(model, folder, Path(scratch) / "loop", max_side)
        loop_wall, loop_cpu = time.perf_counter() - started, time.process_time() - cpu0
        n = args.count
        print(f"plain loop, identity MODEL, {n} JPEGs 512x384 at --max-side {max_side}:")
        for stage in STAGES:
            share = spent[stage] / max(sum(spent.values()), 1e-9)
            print(f"  {stage:<10} {1000 * spent[stage] / n:7.2f} CPU ms/image ({share:4.0%})")
        print(f"  {'total':<10} {1000 * loop_cpu / n:7.2f} CPU ms/image; {n / loop_wall:.1f} img/s")
        # in_memory: the whole job in one process, as the loop, so its CPU time is exact
        flags = f"--max-side {max_side} --batch-size {BATCH} --report-samples 0".split()
        common = ["--model", model, *flags, "--direct_running_mode", "in_memory"]
        run = steady_run(common, tiny, folder, Path(scratch))
        wall, cpu, fixed_wall = run["wall"], run["cpu"], run["fixed_wall"]
        steady_wall, steady_cpu = run["steady_wall"], run["steady_cpu"]
        print(
            f"beam, one process (in_memory): {n / wall:.1f} img/s with start-up ({wall:.1f} s), "
            f"{(n - 8) / steady_wall:.1f} img/s without (start-up = an 8-image job, "
            f"{fixed_wall:.1f} s)"
        )
        print(
            f"  CPU ms/image (the process): {1000 * cpu / n:.2f} with start-up, "
            f"{1000 * steady_cpu / (n - 8):.2f} without"
        )
        print(
            f"beam / loop: img/s {(n / wall) / (n / loop_wall):.2f}x with start-up, "
            f"{((n - 8) / steady_wall) / (n / loop_wall):.2f}x without (target >= 0.8); "
            f"CPU per image {(loop_cpu / n) / (steady_cpu / (n - 8)):.2f}x"
        )
        wall, _ = beam_run(["--model", model, *flags, "--input", str(folder)], Path(scratch) / "d")
        print(
            f"beam, local default ({os.cpu_count()} worker processes): {n / wall:.1f} img/s "
            f"with start-up ({wall:.1f} s)"
        )


def threads_bench(args: argparse.Namespace, cache: Path) -> None:
    max_side, n = 512, args.count
    folder = make_jpegs(cache / f"photos-{n}", n)
    tiny = make_jpegs(cache / "photos-8", 8)
    counts = [int(t) for t in args.threads.split(",")]
    print(f"{n} JPEGs 512x384 at --max-side {max_side}, batch {BATCH}, one process:")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            model = (
                save_identity(Path(scratch)) if name == "identity" else save(name, Path(scratch))
            )
            common = ["--model", model, "--max-side", str(max_side), "--batch-size", str(BATCH)]
            common += ["--report-samples", "0", "--direct_running_mode", "multi_threading"]
            rates = {}
            for threads in counts:
                argv = [*common, "--direct_num_workers", str(threads)]
                run = steady_run(argv, tiny, folder, Path(scratch) / f"{name}-{threads}")
                steady = (n - 8) / run["steady_wall"]
                rates[threads] = steady
                print(
                    f"  {name}, {threads} harness thread(s): {n / run['wall']:.2f} img/s with "
                    f"start-up, {steady:.2f} without; "
                    f"{1000 * run['steady_cpu'] / (n - 8):.1f} CPU ms/image"
                )
            if len(counts) > 1:
                base = rates[counts[0]]
                ratios = ", ".join(f"{t} threads {rates[t] / base:.2f}x" for t in counts[1:])
                print(f"  {name}: against {counts[0]} thread(s) without start-up: {ratios}")


def styles_bench(args: argparse.Namespace, cache: Path) -> None:
    folder = make_jpegs(cache / f"photos-{args.count}", args.count)
    with tempfile.TemporaryDirectory() as scratch:
        if args.style_model == "identity":  # the GPU-like case: a forward that costs ~nothing
            path = save_identity(Path(scratch))
            models = [f"identity-{index}={path}" for index in range(args.styles)]
        else:
            models = [save(args.style_model, Path(scratch), seed) for seed in range(args.styles)]
        common = [
            "--input",
            str(folder),
            "--max-side",
            str(MAX_SIDE),
            "--batch-size",
            str(BATCH),
            "--report-samples",
            "0",
        ]
        separate_wall = separate_cpu = 0.0
        for index, model in enumerate(models):
            wall, cpu = beam_run([*common, "--model", model], Path(scratch) / f"one-{index}")
            separate_wall, separate_cpu = separate_wall + wall, separate_cpu + cpu
        flags = [flag for model in models for flag in ("--model", model)]
        together_wall, together_cpu = beam_run([*common, *flags], Path(scratch) / "together")
        n = args.count
        print(
            f"{args.styles} {args.style_model} styles over {n} JPEGs 512x384 "
            f"at --max-side {MAX_SIDE}:"
        )
        print(
            f"  {args.styles} jobs: {separate_wall:.1f} s, {separate_cpu:.1f} CPU-s "
            f"({args.styles * n / separate_wall:.1f} images x styles/s)"
        )
        print(
            f"  one job:  {together_wall:.1f} s, {together_cpu:.1f} CPU-s "
            f"({args.styles * n / together_wall:.1f} images x styles/s)"
        )
        print(
            f"  one job / {args.styles} jobs: {separate_wall / together_wall:.2f}x faster, "
            f"{separate_cpu / together_cpu:.2f}x less CPU (target >= 1.5x)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--stages", action="store_true", help="the non-inference ceiling")
    parser.add_argument("--styles", type=int, default=0, help="N styles: one job vs N jobs")
    parser.add_argument("--style-model", default="light", choices=("light", "resnet9", "identity"))
    parser.add_argument("--threads", default="", help="e.g. 1,2: harness threads, one model")
    parser.add_argument("--models", default="resnet9,light")
    parser.add_argument("--repeats", type=int, default=1, help="loop/Beam pairs per model")
    parser.add_argument("--rss-counts", default="500,5000", help="'' skips the memory runs")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "scenegan-bench"))
    args = parser.parse_args()
    cache = Path(args.cache)
    if args.stages:
        stages_bench(args, cache)
        return 0
    if args.styles:
        styles_bench(args, cache)
        return 0
    if args.threads:
        threads_bench(args, cache)
        return 0
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
