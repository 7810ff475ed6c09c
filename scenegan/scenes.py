"""Procedural natural scenes: the embedded default dataset.

`render_scene(seed, index, width, height)` paints one deterministic landscape: a sky
gradient for the time of day, a sun or moon with its glow, stars and clouds, up to three
layers of noisy mountain ridges fading into haze, rolling hills, a lake that mirrors what
stands above it, fields, and trees whose colours follow the season. Every random choice
comes from `numpy.random.default_rng((seed, index))`, so one (seed, index) always gives the
same pixels and `write_scenes` the same bytes.

No network, no files: the demo and the tests make all their data from this module (and the
known-answer style transforms in `scenegan.styles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TIMES_OF_DAY = ("day", "golden", "dusk", "night", "dawn")
SEASONS = ("spring", "summer", "autumn", "winter")

# (zenith, horizon) sky colours and the light that falls on the land, per time of day.
_SKIES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[float, float, float]]] = {
    "day": ((52, 112, 196), (176, 208, 236), (1.0, 1.0, 1.0)),
    "golden": ((70, 96, 168), (250, 184, 112), (1.08, 0.9, 0.7)),
    "dusk": ((36, 34, 88), (226, 108, 92), (0.75, 0.55, 0.6)),
    "night": ((4, 8, 26), (28, 40, 78), (0.25, 0.3, 0.45)),
    "dawn": ((104, 124, 190), (248, 196, 178), (1.0, 0.88, 0.85)),
}
# (grass, hill, foliage options) per season; foliage picks per tree.
_SEASON_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple]] = {
    "spring": ((118, 176, 72), (96, 150, 70), ((92, 160, 64), (236, 176, 196), (120, 180, 80))),
    "summer": ((72, 132, 48), (62, 112, 52), ((38, 96, 40), (54, 118, 44), (30, 80, 36))),
    "autumn": ((168, 142, 72), (140, 104, 58), ((206, 96, 34), (224, 168, 48), (168, 52, 30))),
    "winter": ((232, 238, 246), (212, 222, 236), ((92, 76, 64), (30, 62, 44), (110, 94, 80))),
}

SUPERSAMPLE = 2  # paint at 2x and downsample: anti-aliased edges without a rasteriser


@dataclass(frozen=True)
class SceneLayout:
    """The random choices for one scene; `describe_scene` exposes them for tests and docs."""

    time_of_day: str
    season: str
    horizon: float  # fraction of the height where distant land meets the sky
    mountain_layers: int
    has_water: bool
    shore: float  # where the lake ends and the foreground begins (== horizon if no lake)
    tree_count: int
    cloud_cover: float


def describe_scene(seed: int, index: int) -> SceneLayout:
    """The layout `render_scene(seed, index, ...)` paints, without painting it."""
    return _layout(np.random.default_rng((seed, index)))


def render_scene(seed: int, index: int = 0, width: int = 256, height: int = 256) -> Image.Image:
    """Paint scene `index` of stream `seed` as an RGB image of `width` x `height`."""
    if width < 8 or height < 8:
        raise ValueError(f"scene size {width}x{height} is too small; use at least 8x8")
    rng = np.random.default_rng((seed, index))
    layout = _layout(rng)
    big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
    canvas = _paint(rng, layout, big_w, big_h)  # (H, W, 3) float32 in [0, 255]
    image = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), "RGB")
    image = _draw_trees(rng, layout, image)
    return image.resize((width, height), Image.Resampling.BOX)


def write_scenes(
    directory: str | Path,
    count: int,
    *,
    width: int = 256,
    height: int = 256,
    seed: int = 0,
    style: str | None = None,
    prefix: str = "scene",
) -> list[Path]:
    """Write scenes 0..count-1 of stream `seed` as PNGs; `style` names a `scenegan.styles`
    transform applied to each. Returns the paths, in index order."""
    from scenegan.imaging import encode_image  # local: keeps `scenes` importable alone
    from scenegan.styles import apply_style

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = render_scene(seed, index, width, height)
        if style is not None:
            image = apply_style(style, image)
        path = directory / f"{prefix}-{seed:04d}-{index:05d}.png"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(encode_image(image, "png"))
        tmp.replace(path)  # whole file or nothing
        paths.append(path)
    return paths


def _layout(rng: np.random.Generator) -> SceneLayout:
    time_of_day = str(rng.choice(TIMES_OF_DAY, p=(0.4, 0.2, 0.12, 0.14, 0.14)))
    season = str(rng.choice(SEASONS))
    horizon = float(rng.uniform(0.42, 0.66))
    has_water = bool(rng.random() < 0.5)
    shore = horizon + float(rng.uniform(0.12, 0.26)) if has_water else horizon
    return SceneLayout(
        time_of_day=time_of_day,
        season=season,
        horizon=horizon,
        mountain_layers=int(rng.integers(0, 4)),
        has_water=has_water,
        shore=min(shore, 0.92),
        tree_count=int(rng.integers(0, 18)),
        cloud_cover=float(rng.uniform(0.0, 0.8)),
    )


def _paint(rng: np.random.Generator, layout: SceneLayout, width: int, height: int) -> np.ndarray:
    zenith, horizon_colour, light = _SKIES[layout.time_of_day]
    jitter = rng.uniform(-14, 14, size=3)
    zenith_c = np.clip(np.array(zenith) + jitter, 0, 255)
    horizon_c = np.clip(np.array(horizon_colour) + jitter * 0.5, 0, 255)
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height  # (H,)
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width  # (W,)

    canvas = _sky(rng, layout, xs, ys, zenith_c, horizon_c)  # (H, W, 3)
    for layer in range(layout.mountain_layers):  # far to near: each paints over the last
        _mountain(rng, layout, canvas, ys, layer, horizon_c)
    _hills(rng, layout, canvas, ys, horizon_c)
    _field(rng, layout, canvas, xs, ys, horizon_c)
    if layout.has_water:
        _lake(rng, layout, canvas, ys)
    return canvas * np.asarray(light, dtype=np.float32)  # the time of day lights the land


def _sky(rng, layout, xs, ys, zenith, horizon) -> np.ndarray:
    height, width = len(ys), len(xs)
    t = np.clip(ys / max(layout.horizon, 1e-3), 0, 1) ** 1.6  # (H,): 0 at top, 1 at horizon
    sky = zenith[None, :] * (1 - t[:, None]) + horizon[None, :] * t[:, None]  # (H, 3)
    canvas = np.broadcast_to(sky[:, None, :], (height, width, 3)).astype(np.float32).copy()
    night = layout.time_of_day == "night"
    if night:
        stars = rng.random((height, width)) < 0.0012
        fade = np.clip(1.2 - ys / layout.horizon, 0, 1)[:, None]
        canvas += (stars * rng.uniform(120, 230, (height, width)) * fade)[..., None]
    sun_x = rng.uniform(0.12, 0.88)
    low = layout.time_of_day in ("golden", "dusk", "dawn")
    sun_y = layout.horizon * (rng.uniform(0.6, 0.92) if low else rng.uniform(0.12, 0.55))
    radius = rng.uniform(0.025, 0.05)
    colour = np.array((236, 236, 250) if night else (255, 246, 214), dtype=np.float32)
    aspect = width / height
    dist = np.sqrt(((xs[None, :] - sun_x) * aspect) ** 2 + (ys[:, None] - sun_y) ** 2)  # (H, W)
    glow = np.exp(-((dist / (radius * (3 if night else 6))) ** 2)) * (0.35 if night else 0.6)
    disc = np.clip((radius - dist) / (radius * 0.08) + 0.5, 0, 1)
    canvas += glow[..., None] * (colour - canvas) * 0.8
    canvas += disc[..., None] * (colour - canvas)
    if layout.cloud_cover > 0.05:
        _clouds(rng, layout, canvas, ys)
    return canvas


def _clouds(rng, layout, canvas, ys) -> None:
    height, width = canvas.shape[:2]
    noise = _fbm2d(rng, height, width, cells=4, octaves=4)
    stretch = np.clip(1.0 - ys / layout.horizon, 0, 1)[:, None]  # none below the horizon
    threshold = 0.72 - 0.3 * layout.cloud_cover
    density = np.clip((noise - threshold) / 0.12, 0, 1) * stretch  # (H, W)
    tint = {
        "day": (250, 250, 252),
        "golden": (252, 206, 160),
        "dusk": (206, 120, 132),
        "night": (56, 62, 84),
        "dawn": (250, 212, 214),
    }[layout.time_of_day]
    shade = 0.82 + 0.18 * _fbm2d(rng, height, width, cells=8, octaves=2)
    cloud = np.asarray(tint, dtype=np.float32) * shade[..., None]
    canvas += (density * 0.85)[..., None] * (cloud - canvas)


def _mountain(rng, layout, canvas, ys, layer, haze) -> None:
    """Paint one ridge and everything below it; layer 0 is the farthest and haziest."""
    width = canvas.shape[1]
    depth = 1.0 - layer / 3.0  # 1 = far, hazier
    base = layout.horizon + 0.01
    peak = rng.uniform(0.12, 0.32) * (0.6 + 0.4 * depth)
    noise = _fbm1d(rng, width, points=int(rng.integers(2, 6)), octaves=6)
    ridge = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)  # (W,) in [0, 1]
    top = base - peak * ridge**1.3  # (W,) y of the ridge
    rock = np.array(rng.choice([(96, 92, 104), (110, 98, 86), (80, 90, 104)]), dtype=np.float32)
    # Light from the left: slopes facing it are brighter. Smoothing the slope over ~2% of
    # the width shades whole faces instead of striping single columns.
    kernel = np.ones(max(3, width // 50)) / max(3, width // 50)
    slope = np.convolve(np.gradient(top) * width, kernel, mode="same")
    light = np.clip(1.0 - 0.6 * slope, 0.65, 1.25)
    inside = ys[:, None] >= top[None, :]  # (H, W)
    rel = np.clip((ys[:, None] - top[None, :]) / np.maximum(base - top, 1e-3)[None, :], 0, 1)
    colour = rock[None, None, :] * (light[None, :, None] * (1 - 0.35 * rel[..., None]))
    snowline = rng.uniform(0.25, 0.55) if layout.season == "winter" else rng.uniform(0.0, 0.22)
    wobble = (_fbm1d(rng, width, points=24, octaves=3) - 0.5) * 0.12
    snow = (rel < snowline + wobble[None, :]) & (peak * ridge[None, :] > 0.08)
    colour = np.where(snow[..., None], np.array((236, 240, 248)) * light[None, :, None], colour)
    haze_amount = 0.15 + 0.55 * depth * (1 - layer / max(layout.mountain_layers, 1))
    colour = colour * (1 - haze_amount) + haze[None, None, :] * haze_amount
    canvas[:] = np.where(inside[..., None], colour, canvas)


def _hills(rng, layout, canvas, ys, haze) -> None:
    height, width = canvas.shape[:2]
    _, hill, _ = _SEASON_COLOURS[layout.season]
    top = layout.horizon - rng.uniform(0.01, 0.08) * _fbm1d(rng, width, points=3, octaves=3)
    texture = _fbm2d(rng, height, width, cells=12, octaves=3)
    colour = np.asarray(hill, dtype=np.float32)[None, None, :] * (0.8 + 0.4 * texture[..., None])
    colour = colour * 0.7 + haze[None, None, :] * 0.3
    inside = ys[:, None] >= top[None, :]
    canvas[:] = np.where(inside[..., None], colour, canvas)


def _field(rng, layout, canvas, xs, ys, haze) -> None:
    """The foreground below the shore: textured grass or crops, hazier towards the back."""
    grass, _, _ = _SEASON_COLOURS[layout.season]
    start = layout.shore
    height, width = canvas.shape[:2]
    texture = _fbm2d(rng, height, width, cells=16, octaves=4)
    colour = np.asarray(grass, dtype=np.float32)[None, None, :] * (0.75 + 0.5 * texture[..., None])
    if rng.random() < 0.5 and layout.season != "winter":  # crop rows towards a vanishing point
        vanish_x = rng.uniform(0.2, 0.8)
        depth = np.maximum(ys[:, None] - start, 1e-3)
        angle = (xs[None, :] - vanish_x) / depth
        rows = 0.5 + 0.5 * np.sin(angle * rng.uniform(6, 14))
        colour = colour * (0.85 + 0.25 * rows[..., None])
    near = np.clip((ys - start) / max(1 - start, 1e-3), 0, 1)[:, None, None]  # 0 far, 1 near
    colour = colour * (0.55 + 0.45 * near) + haze[None, None, :] * 0.45 * (1 - near)
    inside = (ys >= start)[:, None, None]
    canvas[:] = np.where(inside, colour, canvas)


def _lake(rng, layout, canvas, ys) -> None:
    """Mirror what stands above the horizon into the lake, with ripples and a water tint."""
    height, width = canvas.shape[:2]
    top = int(layout.horizon * height)
    bottom = int(layout.shore * height)
    rows = np.arange(top, bottom)
    depth = rows - top  # (R,)
    mirror = np.clip(top - 1 - depth, 0, height - 1)
    phase = rng.uniform(0, 2 * np.pi)
    shift = (np.sin(depth * 0.9 + phase) * (1 + depth * 0.05) * SUPERSAMPLE).astype(int)
    columns = (np.arange(width)[None, :] + shift[:, None]) % width  # (R, W)
    reflection = canvas[mirror[:, None], columns]  # (R, W, 3)
    water = np.asarray(rng.choice([(34, 70, 96), (40, 86, 92), (28, 52, 80)]), dtype=np.float32)
    mix = 0.35 + 0.35 * (depth / max(bottom - top, 1))[:, None, None]
    streaks = (np.sin(rows * 2.3 + phase)[:, None, None] > 0.92) * 18.0
    canvas[top:bottom] = reflection * (1 - mix) + water * mix + streaks


def _draw_trees(rng: np.random.Generator, layout: SceneLayout, image: Image.Image) -> Image.Image:
    """Conifers and broadleaf trees on the foreground, far ones first, sized by distance."""
    width, height = image.size
    _, _, foliage = _SEASON_COLOURS[layout.season]
    light = np.asarray(_SKIES[layout.time_of_day][2])
    draw = ImageDraw.Draw(image)
    bases = sorted(rng.uniform(layout.shore + 0.02, 1.02, size=layout.tree_count))
    for base in bases:
        x = float(rng.uniform(0, 1)) * width
        y = base * height
        size = (0.05 + 0.25 * (base - layout.shore) / max(1.02 - layout.shore, 1e-3)) * height
        colour = np.asarray(foliage[int(rng.integers(len(foliage)))], dtype=np.float64)
        colour = tuple(int(c) for c in np.clip(colour * light * rng.uniform(0.8, 1.1), 0, 255))
        trunk = tuple(int(c) for c in np.clip(np.array((78, 56, 40)) * light, 0, 255))
        if rng.random() < 0.5:
            _conifer(draw, x, y, size, colour, trunk, snowy=layout.season == "winter")
        else:
            _broadleaf(draw, x, y, size, colour, trunk)
    return image


def _conifer(draw, x, y, size, colour, trunk, *, snowy: bool) -> None:
    half = size * 0.22
    draw.rectangle((x - half * 0.15, y - size * 0.15, x + half * 0.15, y), fill=trunk)
    for tier in range(3):  # three stacked triangles, narrower towards the top
        bottom = y - size * (0.1 + 0.25 * tier)
        spread = half * (1.0 - 0.25 * tier)
        apex = bottom - size * 0.45
        draw.polygon([(x - spread, bottom), (x + spread, bottom), (x, apex)], fill=colour)
        if snowy:
            draw.polygon(
                [
                    (x - spread * 0.3, apex + size * 0.14),
                    (x + spread * 0.3, apex + size * 0.14),
                    (x, apex),
                ],
                fill=(236, 240, 248),
            )


def _broadleaf(draw, x, y, size, colour, trunk) -> None:
    trunk_w = size * 0.05
    draw.rectangle((x - trunk_w, y - size * 0.45, x + trunk_w, y), fill=trunk)
    crown_w, crown_h = size * 0.28, size * 0.32
    centre_y = y - size * 0.62
    draw.ellipse((x - crown_w, centre_y - crown_h, x + crown_w, centre_y + crown_h), fill=colour)


def _fbm1d(rng: np.random.Generator, length: int, *, points: int, octaves: int) -> np.ndarray:
    """Fractal 1-D value noise in [0, 1]: smooth random curves for ridges and coastlines."""
    positions = np.linspace(0.0, 1.0, length)
    total = np.zeros(length)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        count = points * 2**octave + 1
        knots = rng.random(count)
        scaled = positions * (count - 1)
        left = np.minimum(scaled.astype(int), count - 2)
        frac = scaled - left
        smooth = frac * frac * (3 - 2 * frac)  # smoothstep: no kinks between knots
        total += amplitude * (knots[left] * (1 - smooth) + knots[left + 1] * smooth)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def _fbm2d(
    rng: np.random.Generator, height: int, width: int, *, cells: int, octaves: int
) -> np.ndarray:
    """Fractal 2-D value noise in [0, 1], (H, W) float32: bicubic-upsampled random grids."""
    total = np.zeros((height, width), dtype=np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        grid_w = cells * 2**octave + 1
        grid_h = max(2, round(grid_w * height / width))
        grid = rng.random((grid_h, grid_w)).astype(np.float32)
        up = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
        total += amplitude * np.asarray(up)
        norm += amplitude
        amplitude *= 0.5
    return np.clip(total / norm, 0.0, 1.0)
