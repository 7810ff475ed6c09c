"""Benchmark: picture quality per training recipe at an equal CPU budget, on real photos.

    python bench/quality.py [--budget 1500] [--size 128] [--jobs 2]
                            [--configs small,small-light-aug,fewshot,fewshot-light]
                            [--data scenegan/sample] [--out bench-output/quality]

Each configuration trains on the bundled sample's train split (photos -> paintings) in its
own process with ONE thread, for the same budget of CPU seconds of that process. A short
probe run measures its CPU seconds per step first; the real run's `steps` (and with them
the learning-rate decay) are then fitted to the budget, so every schedule completes.

Judged on the held-out photos (never trained on): KID against the sample's paintings on
EfficientNet-Lite0 features (the projected discriminator looks through Lite1), the same
KID for the untouched photos ("identity": doing nothing), and the content score (edge
correlation with the input). Writes `OUT/sheet.png` (input row, one labelled row per
configuration) and `OUT/results.json`, and prints the table with ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_BLURRED_D = {"head_channels": 64, "blur": 5}


def _sat_nce2(**overrides: Any) -> tuple[str, str, dict[str, Any]]:
    """fewshot + light generator + saturation penalty 1 + PatchNCE weight 2, plus `overrides`:
    the base of the experiments against blobs and stripes."""
    base = {"generator": "light", "saturation_weight": 1.0, "nce_weight": 2.0}
    return ("contrastive", "fewshot", {**base, **overrides})


# name -> (task, preset, overrides)
CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "small": ("unpaired", "small", {}),
    "small-light-aug": (
        "unpaired",
        "small",
        {"generator": "light", "augment": "color,translation,cutout"},
    ),
    "fewshot": ("contrastive", "fewshot", {}),
    "fewshot-light": ("contrastive", "fewshot", {"generator": "light"}),
    # ablations of the fewshot preset
    "fastcut": ("contrastive", "fewshot", {"nce_identity": False, "nce_weight": 10.0}),
    "fewshot-patchgan": (
        "contrastive",
        "fewshot",
        {"discriminator": "patchgan", "discriminator_args": {"base_channels": 32}},
    ),
    "fewshot-transpose": (
        "contrastive",
        "fewshot",
        {"generator_args": {"base_channels": 32, "num_blocks": 6, "residual": True}},
    ),
    "fewshot-random-start": (
        "contrastive",
        "fewshot",
        {"generator_args": {"base_channels": 32, "num_blocks": 6, "upsample": "nearest"}},
    ),
    "fewshot-no-color": ("contrastive", "fewshot", {"augment": "translation,cutout"}),
    # ablations of fewshot + light generator: the projected discriminator's inputs, the
    # content/style balance and the learning rate
    "fl-mix": (
        "contrastive",
        "fewshot",
        {"generator": "light", "discriminator_args": {"head_channels": 64, "mixing": 64}},
    ),
    "fl-levels": (
        "contrastive",
        "fewshot",
        {"generator": "light", "discriminator_args": {"head_channels": 64, "levels": "8,16,32"}},
    ),
    "fl-mix-levels": (
        "contrastive",
        "fewshot",
        {
            "generator": "light",
            "discriminator_args": {"head_channels": 64, "levels": "8,16,32", "mixing": 64},
        },
    ),
    "fl-nce05": ("contrastive", "fewshot", {"generator": "light", "nce_weight": 0.5}),
    "fl-lr2": (
        "contrastive",
        "fewshot",
        {"generator": "light", "lr_generator": 4e-4, "lr_discriminator": 4e-4},
    ),
    # the saturation penalty: logits kept where tanh still has a gradient (no locked blobs)
    "fl-sat": ("contrastive", "fewshot", {"generator": "light", "saturation_weight": 1.0}),
    # a second, pixel-space PatchGAN discriminator beside the projected one
    "fl-pix": ("contrastive", "fewshot", {"generator": "light", "pixel_weight": 1.0}),
    "fl-sat-pix": (
        "contrastive",
        "fewshot",
        {"generator": "light", "saturation_weight": 1.0, "pixel_weight": 1.0},
    ),
    # the saturation penalty frees the blobs but loses content at 1,500 CPU-s: more PatchNCE
    "fl-sat-nce2": _sat_nce2(),
    "fl-sat-nce4": (
        "contrastive",
        "fewshot",
        {"generator": "light", "saturation_weight": 1.0, "nce_weight": 4.0},
    ),
    # total variation: flat colour and sharp outlines, against photo texture and stripes
    "fl-sat-nce2-tv2": _sat_nce2(tv_weight=2.0),
    "fl-sat-nce2-tv8": _sat_nce2(tv_weight=8.0),
    # the projected D through a binomial low-pass: the thin stripes no longer fool it
    "fl-sat-nce2-blur": _sat_nce2(discriminator_args=_BLURRED_D),
    "fl-sat-nce2-tv2-blur": _sat_nce2(tv_weight=2.0, discriminator_args=_BLURRED_D),
    # the blurred D's run paints flat green over the scene: keep the coarse luminance
    "fl-sat-nce2-blur-struct": _sat_nce2(structure_weight=10.0, discriminator_args=_BLURRED_D),
    # ... it then paints the paintings' salient objects (flames) as stickers: a weaker D
    "fl-blur-struct-head16": _sat_nce2(
        structure_weight=10.0, discriminator_args={**_BLURRED_D, "head_channels": 16}
    ),
    "fl-blur-struct-coarse": _sat_nce2(
        structure_weight=10.0, discriminator_args={**_BLURRED_D, "levels": "16,32"}
    ),
    # style statistics of frozen Lite1 features: the paintings' look everywhere, no objects
    "fl-sat-nce2-style1": _sat_nce2(style_weight=1.0),
    "fl-sat-nce2-style4": _sat_nce2(style_weight=4.0),
    # ... it paints neon-green fields over the scene: keep what is where (Lite1 stride 16)
    "fl-style4-content1": _sat_nce2(style_weight=4.0, content_weight=1.0),
    "fl-style4-content4": _sat_nce2(style_weight=4.0, content_weight=4.0),
    # ... content 1 keeps the scene, but small comma-shaped purple/green marks appear: colours
    # no painting has (palette) and D through a low-pass (blur)
    "fl-s4c1-pal4": _sat_nce2(style_weight=4.0, content_weight=1.0, palette_weight=4.0),
    "fl-s4c1-pal4-blur": _sat_nce2(
        style_weight=4.0, content_weight=1.0, palette_weight=4.0, discriminator_args=_BLURRED_D
    ),
    # the same terms with the preset's ResNet generator, and a lighter palette term
    "fewshot-s4c1-pal4": (
        "contrastive",
        "fewshot",
        {
            "saturation_weight": 1.0,
            "nce_weight": 2.0,
            "style_weight": 4.0,
            "content_weight": 1.0,
            "palette_weight": 4.0,
        },
    ),
    "fl-s4c1-pal2": _sat_nce2(style_weight=4.0, content_weight=1.0, palette_weight=2.0),
    "fl-lr2-sat": (
        "contrastive",
        "fewshot",
        {
            "generator": "light",
            "lr_generator": 4e-4,
            "lr_discriminator": 4e-4,
            "saturation_weight": 1.0,
        },
    ),
}
DEFAULT_CONFIGS = "small,small-light-aug,fewshot,fewshot-light"
PROBE_STEPS = 12
TEST_FRACTION = 0.2
SHEET_COLUMNS = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1500.0, help="CPU seconds per config")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--jobs", type=int, default=2, help="configurations run side by side")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--data", default=str(ROOT / "scenegan" / "sample"))
    parser.add_argument("--out", default="bench-output/quality")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take a configuration's result from an earlier run into the same --out with the "
        "same budget and size, instead of training it again",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # worker mode: one configuration
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.budget, args.size, args.data, args.out)))
        return 0
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda name: _spawn(name, args), names))
    report(results, args, out)
    return 0


def _spawn(name: str, args: argparse.Namespace) -> dict[str, Any]:
    earlier = Path(args.out) / f"{name}.json"
    if args.reuse and earlier.exists():
        result = json.loads(earlier.read_text())
        if result["budget_cpu_s"] == args.budget and result["size"] == args.size:
            return result
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--one", name, "--budget", str(args.budget)]
    command += ["--size", str(args.size), "--data", args.data, "--out", args.out]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one configuration, in its own single-threaded process ---------------------------


def run_one(name: str, budget: float, size: int, data: str, out: str) -> dict[str, Any]:
    import torch

    from scenegan import judging
    from scenegan.training import resolve_config, training_loop

    torch.set_num_threads(1)
    task_name, preset, overrides = CONFIGS[name]
    run_dir = Path(out) / "runs" / name

    def config(steps: int, output: Path):
        return resolve_config(
            task_name,
            preset,
            data=data,
            output=str(output),
            source_domain="photo",
            target_domain="painting",
            image_size=size,
            load_size=round(size * 1.125),
            test_fraction=TEST_FRACTION,
            steps=steps,
            eval_every=-1,
            checkpoint_every=steps,
            sample_every=steps,
            log_every=max(1, steps // 20),
            **overrides,
        )

    per_step = _probe(config(10**6, run_dir.with_name(name + "-probe")), training_loop)
    steps = max(10, int(budget / per_step))
    seen: dict[str, Any] = {}
    started, wall = time.process_time(), time.perf_counter()
    training_loop(
        config(steps, run_dir), progress=False, on_step=lambda _s, task: seen.update(task=task)
    )
    cpu, wall = time.process_time() - started, time.perf_counter() - wall

    task = seen["task"]
    generator = task.ema[task.export_network].model.cpu()
    photos, paintings = held_out(data, size)
    outputs = judging.translate(generator, photos)
    scores = judging.style_scores(photos, outputs, paintings)
    torch.save(outputs[:SHEET_COLUMNS].clone(), Path(out) / f"{name}.pt")
    result = {
        "name": name,
        "budget_cpu_s": budget,
        "size": size,
        "task": task_name,
        "preset": preset,
        "overrides": overrides,
        "steps": steps,
        "cpu_s": round(cpu, 1),
        "cpu_s_per_step": round(per_step, 3),
        "wall_s": round(wall, 1),
        "held_out_photos": int(photos.shape[0]),
        "paintings": int(paintings.shape[0]),
        **{key: round(value, 4) for key, value in scores.items()},
    }
    (Path(out) / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _probe(config, training_loop) -> float:
    """CPU seconds per step, measured over steps 5..PROBE_STEPS of a throwaway run."""
    times: list[float] = []

    class _Done(Exception):
        pass

    def on_step(step: int, _task) -> None:
        times.append(time.process_time())
        if step >= PROBE_STEPS:
            raise _Done

    with contextlib.suppress(_Done):
        training_loop(config, progress=False, on_step=on_step)
    return (times[-1] - times[3]) / (len(times) - 4)


def held_out(data: str, size: int):
    """The test split's photos and all the paintings, centre crops at `size`."""
    from scenegan import dataset
    from scenegan.training.data import DomainImages

    def images(domain: str, split: str | None):
        sources = list(dataset.iter_domain(data, domain, split, test_fraction=TEST_FRACTION))
        loaded = DomainImages(domain, sources, image_size=size, load_size=size)
        return loaded.batch(list(range(len(loaded))))

    return images("photo", "test"), images("painting", None)


# --- the report ----------------------------------------------------------------------


def report(results: list[dict[str, Any]], args: argparse.Namespace, out: Path) -> None:
    import torch

    from scenegan import judging

    photos, _ = held_out(args.data, args.size)
    identity = results[0]["identity_kid"]
    base = next((r for r in results if r["name"] == "small-light-aug"), results[0])
    print(
        f"quality at {args.budget:.0f} CPU-s per config (1 thread), {args.size} px; "
        f"{results[0]['held_out_photos']} held-out photos vs {results[0]['paintings']} "
        f"paintings; KID on Lite0 features"
    )
    header = f"{'config':22} {'steps':>6} {'CPU-s':>7} {'s/step':>7} {'KID':>8}"
    print(header + f" {'/identity':>9} {'/' + base['name']:>17} {'content':>8}")
    print(f"{'identity (the photos)':22} {'':>6} {'':>7} {'':>7} {identity:8.4f}")
    for r in results:
        print(
            f"{r['name']:22} {r['steps']:6d} {r['cpu_s']:7.0f} {r['cpu_s_per_step']:7.3f} "
            f"{r['kid']:8.4f} {r['kid'] / identity:9.2f} {r['kid'] / base['kid']:17.2f} "
            f"{r['content']:8.3f}"
        )
    rows = [("input\n(held-out photos)", photos[:SHEET_COLUMNS])]
    for r in results:
        label = f"{r['name']}\nKID {r['kid']:.3f}\n{r['steps']} steps"
        rows.append((label, torch.load(out / f"{r['name']}.pt")))
    judging.labelled_sheet(rows).save(out / "sheet.png")
    summary = {"budget_cpu_s": args.budget, "size": args.size, "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"sheet: {out / 'sheet.png'}; results: {out / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
