"""The `scenegan demo` chain on the bundled real sample: photos -> paintings.

1. ingest: the sample's photos and paintings (`scenegan/sample/`) into a Parquet dataset
   with the Beam ingest pipeline; a fifth of the photos go to the held-out test split;
2. train: the `fewshot` preset of the contrastive task with the light generator, briefly
   (a few minutes on 2 cores);
3. export: its EMA generator as a MODEL;
4. stylize: the held-out photos through the Beam stylize pipeline at `--max-side` 256,
   once with the fresh model and once with the shipped one (`scenegan/shipped/`, the same
   recipe trained longer);
5. judge: one labelled before/after sheet (input row, fresh model row, shipped model row)
   and KID against the paintings (Lite0 features), the content score and img/s.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from scenegan import artifact, dataset, judging
from scenegan.training import resolve_config, training_loop
from scenegan.training.data import DomainImages
from scenegan.training.export import exportable

PACKAGE = Path(__file__).resolve().parent
SAMPLE = PACKAGE / "sample"
SHIPPED = PACKAGE / "shipped" / "photo-to-painting"
TEST_FRACTION = 0.2
DEMO_STEPS = 400  # about 5 minutes of the fewshot preset (light generator) on 2 cores
SHEET_COLUMNS = 6


def run_photo_demo(
    output: Path, *, steps: int = DEMO_STEPS, max_side: int = 256, shipped: Path = SHIPPED
) -> dict[str, dict[str, float]]:
    """Run the chain under `output`, printing what each stage made; returns the scores
    per model ("fresh", "shipped") on the held-out photos."""
    started = time.perf_counter()
    root = ingest_sample(output / "dataset")
    config = resolve_config(
        "contrastive",
        "fewshot",
        data=root,
        output=str(output / "run"),
        source_domain="photo",
        target_domain="painting",
        generator="light",
        steps=steps,
        checkpoint_every=steps,
        sample_every=steps,
        eval_every=-1,
        test_fraction=TEST_FRACTION,
        loader_workers=1,
    )
    result = training_loop(config, resume=True)
    print(
        f"demo: trained the fewshot preset (light generator) {config.steps} steps at "
        f"{result.images_per_second:.1f} img/s -> {output / 'run'}"
    )
    generator, fields = exportable(str(output / "run"))
    artifact.save_model(str(output / "model"), generator, **fields)
    models = {"fresh": output / "model", "shipped": shipped}

    held_out = copy_held_out(root, output / "held-out")
    from pipelines import stylize

    # Both models in one job: each photo is read and decoded once (OUT/fresh, OUT/shipped).
    done = stylize.run(
        [
            *(arg for name, model in models.items() for arg in ("--model", f"{name}={model}")),
            *("--input", str(held_out), "--output", str(output / "stylized")),
            *("--max-side", str(max_side)),
        ]
    )
    stylized = sum(style.get("ok", 0) for style in done["styles"].values())
    rate = stylized / max(done["seconds"], 1e-9)
    scores = judge(root, models, output / "before-after.png", max_side, config.steps)
    print_summary(output, scores, rate, stylized, time.perf_counter() - started)
    return scores


def ingest_sample(root: Path) -> str:
    """Both sample domains through the Beam ingest pipeline. Reruns add nothing."""
    from pipelines import ingest

    for domain in ("photo", "painting"):
        ingest.run(
            [
                *("--input", str(SAMPLE / domain), "--domain", domain),
                *("--output", str(root), "--test-fraction", str(TEST_FRACTION)),
            ]
        )
    return str(root)


def copy_held_out(root: str, folder: Path) -> Path:
    """The test split's photos as files (stylize reads files, like a user's folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in dataset.iter_domain(root, "photo", "test"):
        (folder / f"{image.key}.jpg").write_bytes(image.data)
    return folder


def judge(
    root: str, models: dict[str, Path], sheet: Path, size: int, steps: int
) -> dict[str, dict[str, float]]:
    """Scores of each model on the held-out photos (centre crops at `size`) and the sheet."""
    photos = _images(root, "photo", "test", size)
    paintings = _images(root, "painting", None, size)
    rows = [("held-out photos", photos[:SHEET_COLUMNS])]
    scores = {}
    for name, path in models.items():
        loaded = artifact.load_model(str(path))
        outputs = judging.translate(loaded.generator, photos)
        scores[name] = judging.style_scores(photos, outputs, paintings)
        trained = loaded.info["training"]["steps"]
        label = f"{name} model\n{loaded.info['architecture']}, {trained} steps"
        rows.append((f"{label}\nKID {scores[name]['kid']:.3f}", outputs[:SHEET_COLUMNS]))
    sheet.parent.mkdir(parents=True, exist_ok=True)
    tmp = sheet.with_name(sheet.name + ".tmp")
    judging.labelled_sheet(rows).save(tmp, "PNG")
    tmp.replace(sheet)
    return scores


def _images(root: str, domain: str, split: str | None, size: int) -> torch.Tensor:
    sources = list(dataset.iter_domain(root, domain, split))
    loaded = DomainImages(domain, sources, image_size=size, load_size=size)
    return loaded.batch(list(range(len(loaded))))


def print_summary(
    output: Path,
    scores: dict[str, dict[str, float]],
    rate: float,
    stylized: int,
    seconds: float,
) -> None:
    identity = next(iter(scores.values()))["identity_kid"]
    lines = [f"KID to the paintings, held-out photos as they are: {identity:.3f}"]
    for name, score in scores.items():
        lines.append(
            f"{name} model: KID {score['kid']:.3f} ({score['kid'] / identity:.2f}x doing "
            f"nothing), content {score['content']:.2f}"
        )
    lines += [
        f"stylize: {stylized} images ({len(scores)} styles in one job) at {rate:.1f} img/s",
        f"before/after sheet: {output / 'before-after.png'}; total {seconds:.0f}s",
    ]
    print("demo summary\n  " + "\n  ".join(lines))
