"""Benchmark: training speed per preset, and generator inference throughput vs the machine.

    python bench/train.py [--steps 4] [--inference-batches 4] [--batch-size 4]

    python bench/train.py --profile [--profile-steps 6]

Prints, all measured in this run:
* steps/s and images/s of unpaired training per preset (tiny, small, cyclegan) on the
  procedural scenes, after one warm-up step;
* inference images/s at 256x256 for the ResNet-9 and the light generator, their FLOPs per
  image, and the achieved GFLOP/s next to a large fp32 matmul's GFLOP/s (target >= 0.6 of
  it): how close the convolutions run to what this CPU can do at all;
* on CUDA, the same inference in fp32 vs bf16 autocast + channels_last.

`--profile`: where one training step's CPU time goes, on one thread at 128 px on the
bundled real sample, for `small` (CycleGAN), `small` with the light generator, `fewshot`
and `fewshot` with the light generator: data, the generator side's forward (generators,
the discriminator on the fakes, the contrastive loss), its backward + Adam, the EMA, the
discriminator's forward and its backward + Adam, and the rest (learning rates, flags,
logged values). Each part is timed by wrapping the task's own step seams
(`step_batch`, `generator_loss`, `_update`, `discriminator_loss`, `_update_ema`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from scenegan.models import LightGenerator, ResnetGenerator, count_flops
from scenegan.scenes import write_scenes
from scenegan.training import resolve_config
from scenegan.training.tasks import task_class


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def training_speed(preset: str, data: Path, steps: int) -> tuple[float, float]:
    config = resolve_config(
        "unpaired",
        preset,
        data=str(data),
        output=str(data / f"run-{preset}"),
        source_domain="photo",
        target_domain="painting",
        steps=steps + 1,
        test_fraction=0.0,
    )
    task_type = task_class(config.task)
    task = task_type(config, torch.device("cpu"), 0, 1, task_type.load_domains(config))
    task.train_step(0)  # warm-up
    started = time.perf_counter()
    for step in range(1, steps + 1):
        task.train_step(step)
    elapsed = time.perf_counter() - started
    return steps / elapsed, steps * config.batch_size / elapsed


PROFILED = {
    "small": ("unpaired", "small", {}),
    "small light": ("unpaired", "small", {"generator": "light"}),
    "fewshot": ("contrastive", "fewshot", {}),
    "fewshot light": ("contrastive", "fewshot", {"generator": "light"}),
}


def step_profile(name: str, data: str, steps: int) -> dict[str, float]:
    """CPU seconds per step by part (see the module docstring), after one warm-up step."""
    task_name, preset, overrides = PROFILED[name]
    config = resolve_config(
        task_name,
        preset,
        data=data,
        output=tempfile.mkdtemp(),
        source_domain="photo",
        target_domain="painting",
        **overrides,
    )
    task_type = task_class(config.task)
    task = task_type(config, torch.device("cpu"), 0, 1, task_type.load_domains(config))
    totals: dict[str, float] = {}

    def timed(part: str, function):
        def wrapper(*args, **kwargs):
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                totals[part] = totals.get(part, 0.0) + time.process_time() - started

        return wrapper

    def update(name: str, loss):
        part = "G backward+Adam" if name == "G" else "D backward+Adam"
        return timed(part, original_update)(name, loss)

    original_update = task._update
    task.step_batch = timed("data", task.step_batch)
    task.generator_loss = timed("G-side forward", task.generator_loss)
    if hasattr(task, "_patch_nce"):  # inside the generator side's forward
        task._patch_nce = timed("  of which PatchNCE", task._patch_nce)
    task.discriminator_loss = timed("D forward", task.discriminator_loss)
    task._update_ema = timed("EMA", task._update_ema)
    task._update = update
    task.train_step(0)  # warm-up
    totals.clear()
    started = time.process_time()
    for step in range(1, steps + 1):
        task.set_learning_rates(step)
        task.train_step(step)
    whole = time.process_time() - started
    parts = {part: seconds / steps for part, seconds in totals.items()}
    measured = sum(v for k, v in parts.items() if not k.startswith(" "))
    return {**parts, "rest": whole / steps - measured, "step": whole / steps}


def print_profile(steps: int) -> None:
    data = str(Path(__file__).resolve().parents[1] / "scenegan" / "sample")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        profiles = {name: step_profile(name, data, steps) for name in PROFILED}
    finally:
        torch.set_num_threads(threads)
    parts = list(dict.fromkeys(part for p in profiles.values() for part in p))
    print(f"\nCPU ms per training step by part, 1 thread, 128 px, mean of {steps} steps:")
    print(f"  {'part':22s}" + "".join(f"{name:>16s}" for name in profiles))
    for part in parts:
        cells = []
        for profile in profiles.values():
            value, step = profile.get(part), profile["step"]
            cells.append(f"{value * 1e3:8.0f} ({value / step:4.0%})" if value else f"{'-':>16s}")
        print(f"  {part:22s}" + "".join(f"{cell:>16s}" for cell in cells))
    base = profiles["small"]["step"]
    print(
        "  step time vs small:  " + "".join(f"{p['step'] / base:16.2f}" for p in profiles.values())
    )


def inference_speed(
    model: torch.nn.Module,
    batch: torch.Tensor,
    batches: int,
    device: torch.device,
    autocast: bool = False,
) -> float:
    model = model.eval().to(device)
    batch = batch.to(device)
    if autocast:
        model = model.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
        model(batch)  # warm-up
        _sync(device)
        started = time.perf_counter()
        for _ in range(batches):
            model(batch)
        _sync(device)
    return batches * batch.shape[0] / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--inference-batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="only the per-part step profile")
    parser.add_argument("--profile-steps", type=int, default=6)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.profile:
        print_profile(args.profile_steps)
        return 0

    data = Path(tempfile.mkdtemp())
    try:
        write_scenes(data / "photo", 16, width=288, height=288, seed=0)
        write_scenes(data / "painting", 16, width=288, height=288, seed=1, style="painting")
        print("\nunpaired training on CPU (one warm-up step, then timed):")
        for preset in ("tiny", "small", "cyclegan"):
            steps_per_s, images_per_s = training_speed(preset, data, args.steps)
            print(f"  {preset:9s} {steps_per_s:8.2f} steps/s {images_per_s:8.2f} img/s")
    finally:
        shutil.rmtree(data, ignore_errors=True)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        peak = matmul_gflops(device)
        print(
            f"\ninference at 256x256 on {device.type}, batch {args.batch_size} "
            f"(fp32 matmul 2048^2: {peak:.1f} GFLOP/s):"
        )
        batch = torch.rand(args.batch_size, 3, 256, 256) * 2 - 1
        for name, model in (("resnet-9", ResnetGenerator()), ("light", LightGenerator())):
            flops = count_flops(model, batch[:1])
            rate = inference_speed(model, batch, args.inference_batches, device)
            achieved = rate * flops / 1e9
            print(
                f"  {name:9s} {flops / 1e9:6.2f} GFLOP/img {rate:8.2f} img/s "
                f"{achieved:8.1f} GFLOP/s = {achieved / peak:.2f} of matmul"
            )
            if device.type == "cuda":
                fast = inference_speed(model, batch, args.inference_batches, device, autocast=True)
                print(
                    f"  {name:9s} bf16 + channels_last {fast:8.2f} img/s = {fast / rate:.2f}x fp32"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
