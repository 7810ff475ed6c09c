"""The `scenegan demo` chain on the embedded procedural scenes.

1. data: a photo domain, an unpaired style domain (other scenes with the known-answer style
   applied) and a preview sheet of photos next to their true stylization;
2. ingest: both folders into a Parquet scene dataset with the Beam ingest pipeline;
3. train: unpaired CycleGAN, `tiny` preset, streaming that dataset;
4. export: the EMA generator as a MODEL, scored against the known answer on unseen scenes,
   and promoted to a local model registry (`REGISTRY/photo-to-<style>/latest`);
5. stylize: unseen scenes through the Beam stylize pipeline with the registry's latest
   model (images, metadata, contact sheet).
It ends with one summary: counts, the quality metric, img/s and the contact sheet's path.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from PIL import Image

from scenegan import artifact, metrics, registry
from scenegan.pixels import to_tensor
from scenegan.scenes import render_scene, write_scenes
from scenegan.styles import apply_style
from scenegan.training import resolve_config, training_loop
from scenegan.training.export import exportable
from scenegan.training.run import image_grid

PHOTO_SEED = 10
STYLE_SEED = 11  # another scene stream: the style domain never contains the photos


def run_demo(
    output: Path,
    *,
    count: int = 200,
    size: int = 32,
    style: str = "painting",
    steps: int | None = None,
) -> dict[str, float]:
    """Run the demo chain under `output`, printing what each stage made; returns the
    known-answer scores. The defaults are the configuration tests/test_quality.py holds to
    +3 dB over doing nothing: 32 px scenes, the `tiny` preset's 2,500 steps (a few minutes
    on 2 CPU cores). All scenes train; the held-out set is an unseen scene stream scored
    against the known answer."""
    started = time.perf_counter()
    data = output / "scenes"
    write_scenes(data / "photo", count, width=size, height=size, seed=PHOTO_SEED, prefix="photo")
    write_scenes(
        data / style, count, width=size, height=size, seed=STYLE_SEED, style=style, prefix=style
    )
    write_preview(output / "preview.png", style=style, size=size)
    print(
        f"demo: {count} photos and {count} unpaired '{style}' scenes -> {data} "
        f"({time.perf_counter() - started:.0f}s)"
    )
    if steps is not None and steps <= 0:
        return {}
    dataset_root = ingest_scenes(data, output / "dataset", ["photo", style])
    config = resolve_config(
        "unpaired",
        "tiny",
        data=dataset_root,
        output=str(output / "run"),
        source_domain="photo",
        target_domain=style,
        steps=steps,
        checkpoint_every=steps,
        sample_every=steps,
        test_fraction=0.0,
        loader_workers=1,
    )
    result = training_loop(config, resume=True)
    print(
        f"demo: trained {config.steps} steps at {result.images_per_second:.0f} img/s "
        f"-> {output / 'run'}"
    )
    scores, latest = export_and_promote(output, style, config.image_size)
    write_before_after(
        output / "stylized.png",
        artifact.load_model(registry.resolve_model_path(latest)).generator,
        config.image_size,
    )
    held_out = output / "held-out"
    write_scenes(held_out, 12, width=size, height=size, seed=metrics.HELD_OUT_SEED, prefix="new")
    from pipelines import stylize

    stylized = stylize.run(
        [
            "--model",
            latest,
            "--input",
            str(held_out),
            "--output",
            str(output / "stylized"),
            "--max-side",
            str(size),
            "--format",
            "png",
        ]
    )
    print_summary(
        output, style, scores, result.images_per_second, stylized, time.perf_counter() - started
    )
    return scores


def export_and_promote(output: Path, style: str, image_size: int) -> tuple[dict[str, float], str]:
    """Export the run as MODEL `output/model` with its known-answer scores as metrics, and
    promote it (judged on PSNR) to `output/registry`; returns the scores and the registry's
    `latest` path. A rerun finds the same weights already registered."""
    generator, fields = exportable(str(output / "run"))
    scores = metrics.known_answer_scores(generator, style, size=image_size)
    fields["metrics"] = {**fields["metrics"], **{k: round(v, 4) for k, v in scores.items()}}
    info = artifact.save_model(str(output / "model"), generator, **fields)
    name = registry.model_name("photo", style)
    print(f"demo: exported model {info['model_id'][:16]} -> {output / 'model'}")
    try:
        promotion = registry.promote(
            str(output / "registry"), name, model=str(output / "model"), metric="psnr"
        )
        print(f"demo: registry {name} {promotion.version}: {promotion.message}")
    except registry.RegistryError as refused:  # a rerun with fewer steps, say
        print(f"demo: registry keeps its latest {name}: {refused}")
    return scores, str(output / "registry" / name / registry.LATEST)


def print_summary(
    output: Path,
    style: str,
    scores: dict[str, float],
    train_rate: float,
    stylized: dict,
    seconds: float,
) -> None:
    counters = stylized["counters"]
    sheets = sorted((output / "stylized" / "report").glob("contact-*.png"))
    lines = [
        f"stylized: {counters.get('status_ok', 0)} ok, {counters.get('status_skipped', 0)} "
        f"skipped, {counters.get('status_rejected', 0)} rejected",
        f"quality: PSNR to the true '{style}' on unseen scenes {scores['psnr']:.2f} dB "
        f"(doing nothing: {scores['identity_psnr']:.2f} dB)",
        f"speed: training {train_rate:.0f} img/s; stylize "
        f"{counters.get('ok', 0) / max(stylized['seconds'], 1e-9):.1f} img/s",
        f"contact sheet: {sheets[-1] if sheets else 'none'}",
        f"before/after: {output / 'stylized.png'}; total {seconds:.0f}s",
    ]
    print("demo summary\n  " + "\n  ".join(lines))


def ingest_scenes(data: Path, root: Path, domains: list[str]) -> str:
    """Each domain folder through the Beam ingest pipeline (all to the train split: the
    demo's held-out set is a separate, unseen scene stream). Reruns add nothing."""
    from pipelines import ingest

    for domain in domains:
        ingest.run(
            [
                "--input",
                str(data / domain),
                "--domain",
                domain,
                "--output",
                str(root),
                "--test-fraction",
                "0",
            ]
        )
    return str(root)


def write_preview(path: Path, *, style: str, size: int, columns: int = 6) -> None:
    """A two-row sheet: photos of the photo stream on top, their true `style` below."""
    sheet = Image.new("RGB", (columns * size, 2 * size), "white")
    for column in range(columns):
        photo = render_scene(PHOTO_SEED, column, size, size)
        sheet.paste(photo, (column * size, 0))
        sheet.paste(apply_style(style, photo), (column * size, size))
    _save(sheet, path)


@torch.no_grad()
def write_before_after(path: Path, generator: torch.nn.Module, size: int, zoom: int = 3) -> None:
    """Unseen scenes (top) and the generator's stylization (bottom), at the size it was
    trained on, enlarged `zoom` times with nearest neighbours so the pixels stay honest."""
    x = to_tensor([render_scene(metrics.HELD_OUT_SEED, i, size, size) for i in range(6)])
    sheet = image_grid([x, generator(x)])
    _save(sheet.resize((sheet.width * zoom, sheet.height * zoom), Image.Resampling.NEAREST), path)


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, "PNG")
    tmp.replace(path)
