"""The run directory: config.json, stats.jsonl, samples/step-NNNNNN.png, curves.png.

Local or gs://. Stats are buffered and the whole `stats.jsonl` is rewritten (atomically) at
each flush, because object stores cannot append; a resumed run first drops the lines logged
after its checkpoint, so the file never holds a step twice.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from PIL import Image, ImageDraw

from scenegan import imaging, storage
from scenegan.pixels import to_pixels

CURVE_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


class RunDirectory:
    def __init__(self, root: str) -> None:
        self.root = root
        self.stats: list[dict[str, Any]] = []

    def uri(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def write_config(self, config: dict[str, Any]) -> None:
        storage.write_bytes(self.uri("config.json"), json.dumps(config, indent=2).encode())

    def read_config(self) -> dict[str, Any] | None:
        if not storage.exists(self.uri("config.json")):
            return None
        return json.loads(storage.read_bytes(self.uri("config.json")))

    def load_stats(self, up_to_step: int) -> None:
        """Read the existing stats, keeping only records up to `up_to_step` (resume)."""
        self.stats = []
        if storage.exists(self.uri("stats.jsonl")):
            for line in storage.read_bytes(self.uri("stats.jsonl")).decode().splitlines():
                record = json.loads(line)
                if record.get("step", 0) <= up_to_step:
                    self.stats.append(record)

    def log(self, record: dict[str, Any]) -> None:
        self.stats.append(record)

    def flush(self) -> None:
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.stats)
        storage.write_bytes(self.uri("stats.jsonl"), lines.encode())
        storage.write_bytes(self.uri("curves.png"), render_curves(self.stats))

    def write_samples(self, step: int, rows: list[torch.Tensor]) -> str:
        uri = self.uri("samples", f"step-{step:06d}.png")
        storage.write_bytes(uri, imaging.encode_image(image_grid(rows), "png"))
        return uri


def image_grid(rows: list[torch.Tensor], gap: int = 2) -> Image.Image:
    """Rows of (N, 3, H, W) tensors in [-1, 1] -> one RGB sheet, rows top to bottom."""
    height, width = rows[0].shape[-2:]
    columns = max(row.shape[0] for row in rows)
    sheet = Image.new(
        "RGB", (columns * (width + gap) + gap, len(rows) * (height + gap) + gap), "white"
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(to_pixels(row)):
            sheet.paste(Image.fromarray(image), (gap + c * (width + gap), gap + r * (height + gap)))
    return sheet


def render_curves(stats: list[dict[str, Any]], size: tuple[int, int] = (720, 360)) -> bytes:
    """A PNG line plot of every loss in `stats` against the step (one panel, symlog-ish)."""
    width, height = size
    margin = 40
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    names = sorted({k for r in stats for k in r.get("losses", {})})
    points = {
        n: [(r["step"], r["losses"][n]) for r in stats if n in r.get("losses", {})] for n in names
    }
    values = [_squash(v) for series in points.values() for _, v in series]
    draw.rectangle((margin, 10, width - 10, height - margin), outline="black")
    if not values:
        draw.text((margin + 10, 20), "no losses logged yet", fill="black")
        return imaging.encode_image(image, "png")
    last_step = max(max(s for s, _ in series) for series in points.values() if series) or 1
    low, high = min(values), max(values)
    span = (high - low) or 1.0

    def xy(step: float, value: float) -> tuple[float, float]:
        x = margin + (width - 10 - margin) * step / last_step
        y = (height - margin) - (height - margin - 10) * (_squash(value) - low) / span
        return x, y

    for i, name in enumerate(names):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        line = [xy(s, v) for s, v in points[name]]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        draw.text((margin + 8 + 110 * i, height - margin + 8), name, fill=colour)
    draw.text(
        (margin, height - 16), f"step 0 .. {last_step}   (y: sign(v) log(1 + |v|))", fill="black"
    )
    return imaging.encode_image(image, "png")


def _squash(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)
