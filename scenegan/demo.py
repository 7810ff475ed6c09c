"""The `scenegan demo` chain on the embedded procedural scenes.

Today it makes the demo data: a photo domain, an unpaired style domain (other scenes, the
known-answer style applied) and a preview sheet of photos next to their true stylization.
Ingest, training and stylize join the chain as their issues land; until then the demo says
so plainly rather than skipping them in silence.
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from scenegan.scenes import render_scene, write_scenes
from scenegan.styles import apply_style

PHOTO_SEED = 0
STYLE_SEED = 1  # another scene stream: the style domain never contains the photos


def run_demo(output: Path, *, count: int = 48, size: int = 128, style: str = "painting") -> None:
    """Write the demo data under `output` and print what was made and what comes next."""
    started = time.perf_counter()
    photos = write_scenes(
        output / "scenes" / "photo", count, width=size, height=size, seed=PHOTO_SEED, prefix="photo"
    )
    styled = write_scenes(
        output / "scenes" / style,
        count,
        width=size,
        height=size,
        seed=STYLE_SEED,
        style=style,
        prefix=style,
    )
    preview = output / "preview.png"
    write_preview(preview, style=style, size=size)
    elapsed = time.perf_counter() - started
    print(f"demo: {len(photos)} photos -> {photos[0].parent}")
    print(f"demo: {len(styled)} unpaired '{style}' scenes -> {styled[0].parent}")
    print(f"demo: preview of photo vs true '{style}' -> {preview}")
    print(f"demo: data made in {elapsed:.1f}s")
    print(
        "demo: next stages (ingest #4, train/export #3, stylize #5) are not built yet; "
        "the demo runs them as they land."
    )


def write_preview(path: Path, *, style: str, size: int, columns: int = 6) -> None:
    """A two-row sheet: photos of the photo stream on top, their true `style` below."""
    sheet = Image.new("RGB", (columns * size, 2 * size), "white")
    for column in range(columns):
        photo = render_scene(PHOTO_SEED, column, size, size)
        sheet.paste(photo, (column * size, 0))
        sheet.paste(apply_style(style, photo), (column * size, size))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sheet.save(tmp, "PNG")
    tmp.replace(path)
