"""The procedural scene generator: deterministic per seed, varied across seeds."""

from __future__ import annotations

import numpy as np
import pytest

from scenegan import scenes
from scenegan.imaging import load_image


def test_same_seed_writes_identical_bytes(tmp_path):
    first = scenes.write_scenes(tmp_path / "a", 4, width=64, height=48, seed=11)
    second = scenes.write_scenes(tmp_path / "b", 4, width=64, height=48, seed=11)
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_different_seeds_and_indexes_give_different_images(tmp_path):
    seed_a = scenes.write_scenes(tmp_path / "a", 4, width=64, height=48, seed=1)
    seed_b = scenes.write_scenes(tmp_path / "b", 4, width=64, height=48, seed=2)
    contents = {p.read_bytes() for p in seed_a + seed_b}
    assert len(contents) == 8
    pixels_a = np.asarray(scenes.render_scene(1, 0, 64, 48), dtype=int)
    pixels_b = np.asarray(scenes.render_scene(2, 0, 64, 48), dtype=int)
    assert np.abs(pixels_a - pixels_b).mean() > 10  # different scenes, not a re-noised one


def test_written_scenes_are_valid_images_of_the_asked_size(tmp_path):
    paths = scenes.write_scenes(tmp_path, 3, width=96, height=64, seed=0, style="cartoon")
    for path in paths:
        decoded = load_image(path)
        assert (decoded.width, decoded.height) == (96, 64)
        assert decoded.orig_format == "png"
    assert not list(tmp_path.glob("*.tmp"))


def test_layouts_cover_every_time_of_day_season_and_feature():
    layouts = [scenes.describe_scene(0, index) for index in range(300)]
    assert {layout.time_of_day for layout in layouts} == set(scenes.TIMES_OF_DAY)
    assert {layout.season for layout in layouts} == set(scenes.SEASONS)
    assert {layout.has_water for layout in layouts} == {True, False}
    assert {layout.mountain_layers for layout in layouts} == {0, 1, 2, 3}
    assert any(layout.tree_count == 0 for layout in layouts)
    assert max(layout.tree_count for layout in layouts) >= 10


def test_colour_statistics_vary_enough_to_learn_from():
    means = np.array(
        [
            np.asarray(scenes.render_scene(3, index, 48, 48)).reshape(-1, 3).mean(0)
            for index in range(24)
        ]
    )
    assert means.std(axis=0).min() > 12  # night and noon, snow and summer grass
    night = [i for i in range(24) if scenes.describe_scene(3, i).time_of_day == "night"]
    day = [i for i in range(24) if scenes.describe_scene(3, i).time_of_day == "day"]
    assert night and day
    assert means[night].mean() < means[day].mean() - 40


def test_scene_layout_matches_what_is_painted():
    # The top row is sky and the bottom row is land: sky is brighter than land by day.
    index = next(i for i in range(50) if scenes.describe_scene(5, i).time_of_day == "day")
    pixels = np.asarray(scenes.render_scene(5, index, 64, 64), dtype=float)
    assert pixels[0].mean() > pixels[-1].mean()
    assert pixels[0, :, 2].mean() > pixels[0, :, 0].mean()  # a blue day sky


def test_non_square_and_refused_sizes():
    assert scenes.render_scene(0, 0, 120, 40).size == (120, 40)
    with pytest.raises(ValueError, match="too small"):
        scenes.render_scene(0, 0, 4, 64)
