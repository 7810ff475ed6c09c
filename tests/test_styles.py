"""Known-answer style transforms: deterministic, distinct from the photo, and correct."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scenegan import styles
from scenegan.scenes import render_scene


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [render_scene(21, index, 96, 96) for index in range(6)]


@pytest.mark.parametrize("name", sorted(styles.STYLES))
def test_styles_are_deterministic_and_keep_the_size(name, photos):
    for photo in photos:
        first = styles.apply_style(name, photo)
        second = styles.apply_style(name, photo.copy())
        assert first.size == photo.size and first.mode == "RGB"
        assert np.array_equal(np.asarray(first), np.asarray(second))


@pytest.mark.parametrize("name", sorted(styles.STYLES))
def test_styles_are_far_enough_from_identity_to_measure(name, photos):
    # If the identity already scored high, "beats identity by 3 dB" would mean nothing.
    scores = [psnr(np.asarray(p), np.asarray(styles.apply_style(name, p))) for p in photos]
    assert np.mean(scores) < 24


def test_cartoon_colours_are_posterized_or_ink(photos):
    levels = 6
    out = np.asarray(styles.cartoon(photos[0], levels=levels)).astype(int)
    grid = np.rint(np.arange(levels) * 255 / (levels - 1)).astype(int)
    on_grid = np.isin(out, grid).all(axis=-1)
    ink = (out == np.rint(np.array([0.08, 0.07, 0.07]) * 255).astype(int)).all(axis=-1)
    assert (on_grid | ink).all()
    assert ink.any()  # there are outlines


def test_cartoon_inks_edges_of_a_step():
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[:, 20:] = 230
    out = np.asarray(styles.cartoon(Image.fromarray(pixels))).astype(int)
    assert out[20, 19:21].max() < 40  # the boundary is inked
    assert out[20, 35].min() > 200  # flat areas are not


def test_kuwahara_matches_a_direct_implementation():
    rng = np.random.default_rng(0)
    rgb = rng.random((9, 11, 3)).astype(np.float32)
    radius = 2
    fast = styles._kuwahara(rgb, radius)
    padded = np.pad(rgb.astype(np.float64), ((radius,) * 2, (radius,) * 2, (0, 0)), "reflect")
    weights = np.array([0.299, 0.587, 0.114])
    expected = np.zeros_like(rgb)
    for y in range(9):
        for x in range(11):
            py, px = y + radius, x + radius
            windows = [
                padded[py - radius : py + 1, px - radius : px + 1],
                padded[py - radius : py + 1, px : px + radius + 1],
                padded[py : py + radius + 1, px - radius : px + 1],
                padded[py : py + radius + 1, px : px + radius + 1],
            ]
            variances = [np.var(w @ weights) for w in windows]
            expected[y, x] = windows[int(np.argmin(variances))].reshape(-1, 3).mean(0)
    assert np.allclose(fast, expected, atol=1e-5)


def test_painting_flattens_texture(photos):
    def roughness(image: Image.Image) -> float:
        pixels = np.asarray(image, dtype=float)
        return float(np.abs(np.diff(pixels, axis=1)).mean())

    ratios = [roughness(styles.painting(photo)) / roughness(photo) for photo in photos]
    assert max(ratios) < 1.0  # despite the saturation boost, which adds contrast
    assert np.mean(ratios) < 0.9


def test_unknown_style_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="cartoon"):
        styles.apply_style("vaporwave", Image.new("RGB", (32, 32)))
