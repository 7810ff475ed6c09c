"""The `scenegan demo` chain on the embedded procedural scenes.

1. data: a photo domain, an unpaired style domain (other scenes with the known-answer style
   applied) and a preview sheet of photos next to their true stylization;
2. ingest: both folders into a Parquet scene dataset with the Beam ingest pipeline;
3. train: unpaired CycleGAN, `tiny` preset, streaming that dataset;
4. export: the EMA generator as a MODEL, scored against the known answer on unseen scenes;
5. stylize: unseen scenes through the Beam stylize pipeline (images, metadata, contact sheet).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from PIL import Image

from scenegan import artifact, metrics
from scenegan.scenes import render_scene, write_scenes
from scenegan.styles import apply_style
from scenegan.training import resolve_config, training_loop
from scenegan.training.run import image_grid

PHOTO_SEED = 10
STYLE_SEED = 11  # another scene stream: the style domain never contains the photos


def run_demo(
    output: Path, *, count: int = 200, size: int = 32, style: str = "painting",
    steps: int | None = None,
) -> dict[str, float]:  # fmt: skip
    """Run the demo chain under `output`, printing what each stage made; returns the
    known-answer scores. The defaults are the configuration tests/test_quality.py holds to
    +3 dB over doing nothing: 32 px scenes, the `tiny` preset's 2,500 steps (a few minutes
    on 2 CPU cores). All scenes train; the held-out set is an unseen scene stream scored
    against the known answer."""
    started = time.perf_counter()
    data = output / "scenes"
    write_scenes(data / "photo", count, width=size, height=size, seed=PHOTO_SEED, prefix="photo")
    write_scenes(data / style, count, width=size, height=size, seed=STYLE_SEED, style=style,
                 prefix=style)  # fmt: skip
    write_preview(output / "preview.png", style=style, size=size)
    print(f"demo: {count} photos and {count} unpaired '{style}' scenes -> {data} "
          f"({time.perf_counter() - started:.0f}s)")  # fmt: skip
    if steps is not None and steps <= 0:
        return {}
    dataset_root = ingest_scenes(data, output / "dataset", ["photo", style])
    config = resolve_config(
        "unpaired", "tiny", data=dataset_root, output=str(output / "run"),
        source_domain="photo", target_domain=style, steps=steps, checkpoint_every=steps,
        sample_every=steps, test_fraction=0.0, loader_workers=1,
    )  # fmt: skip
    result = training_loop(config, resume=True)
    model_dir = output / "model"
    info = artifact.export_model(str(output / "run"), str(model_dir))
    generator = artifact.load_model(str(model_dir)).generator
    scores = metrics.known_answer_scores(generator, style, size=config.image_size)
    write_before_after(output / "stylized.png", generator, config.image_size)
    rate = result.images_per_second
    print(f"demo: trained {config.steps} steps at {rate:.0f} img/s -> {output / 'run'}")
    print(f"demo: exported model {info['model_id'][:16]} -> {model_dir}")
    print(f"demo: unseen scenes, PSNR to the true '{style}': {scores['psnr']:.2f} dB "
          f"(doing nothing scores {scores['identity_psnr']:.2f} dB)")  # fmt: skip
    elapsed = time.perf_counter() - started
    print(f"demo: before/after -> {output / 'stylized.png'}; total {elapsed:.0f}s")
    held_out = output / "held-out"
    write_scenes(held_out, 12, width=size, height=size, seed=metrics.HELD_OUT_SEED, prefix="new")
    from pipelines import stylize

    stylize.run(["--model", str(model_dir), "--input", str(held_out), "--output",
                 str(output / "stylized"), "--max-side", str(size), "--format", "png"])  # fmt: skip
    return scores


def ingest_scenes(data: Path, root: Path, domains: list[str]) -> str:
    """Each domain folder through the Beam ingest pipeline (all to the train split: the
    demo's held-out set is a separate, unseen scene stream). Reruns add nothing."""
    from pipelines import ingest

    for domain in domains:
        ingest.run(["--input", str(data / domain), "--domain", domain, "--output", str(root),
                    "--test-fraction", "0"])  # fmt: skip
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
    import numpy as np

    photos = [np.array(render_scene(metrics.HELD_OUT_SEED, i, size, size)) for i in range(6)]
    x = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 127.5 - 1
    sheet = image_grid([x, generator(x)])
    _save(sheet.resize((sheet.width * zoom, sheet.height * zoom), Image.Resampling.NEAREST), path)


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, "PNG")
    tmp.replace(path)
