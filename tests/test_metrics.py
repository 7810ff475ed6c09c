"""Quality metrics and the pretrained feature network behind them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenegan import features, metrics
from scenegan.scenes import render_scene
from scenegan.styles import apply_style

LANDSCAPE_CLASSES = set(range(970, 981))  # ImageNet: alp, cliff, ..., lakeside, valley, volcano


def to_tensor(images) -> torch.Tensor:
    arrays = np.stack([np.asarray(image) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return to_tensor(render_scene(8, i, 224, 224) for i in range(48))


def test_pretrained_weights_load_and_recognise_landscapes(photos):
    extractor = features.FeatureExtractor()
    top5 = extractor.logits(photos).topk(5).indices.tolist()
    hit_rate = np.mean([bool(set(t) & LANDSCAPE_CLASSES) for t in top5])
    torch.manual_seed(0)
    untrained = features.EfficientNetLite(0).eval()
    with torch.no_grad():
        random_top5 = untrained(extractor.prepare(photos)).topk(5).indices.tolist()
    random_rate = np.mean([bool(set(t) & LANDSCAPE_CLASSES) for t in random_top5])
    # 11 of 1000 classes: chance for top-5 is about 5.5%.
    assert hit_rate >= 0.3 > random_rate + 0.2


def test_features_have_the_documented_shape_for_any_input_size():
    extractor = features.FeatureExtractor()
    out = extractor(torch.rand(3, 3, 40, 64) * 2 - 1)
    assert out.shape == (3, features.FEATURE_DIM) and out.dtype == torch.float64


def test_kid_separates_styles_and_is_near_zero_within_one():
    extractor = features.FeatureExtractor()
    first = to_tensor(render_scene(1, i, 96, 96) for i in range(40))
    second = to_tensor(render_scene(2, i, 96, 96) for i in range(40))
    painted = to_tensor(apply_style("cartoon", render_scene(3, i, 96, 96)) for i in range(40))
    f1, f2, f3 = extractor(first), extractor(second), extractor(painted)
    same = metrics.kid(f1, f2, subset_size=40)
    different = metrics.kid(f1, f3, subset_size=40)
    assert different > 5 * abs(same)
    assert metrics.fid(f1, f3) > metrics.fid(f1, f2)


def test_kid_is_unbiased_on_identical_distributions():
    generator = torch.Generator().manual_seed(0)
    values = []
    for seed in range(10):
        real = torch.randn(60, 16, generator=generator)
        fake = torch.randn(60, 16, generator=generator)
        values.append(metrics.kid(real, fake, subsets=10, subset_size=60, seed=seed))
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values)) + 1e-3


def test_fid_small_set_shortcut_equals_the_full_formula():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(50, 40, generator=generator, dtype=torch.float64)
    fake = torch.randn(60, 40, generator=generator, dtype=torch.float64) * 0.7 + 0.3
    small = metrics.fid(real, fake)  # 50*60 > 40*40: the eigh branch
    wide_real = torch.cat([real, torch.zeros(50, 60, dtype=torch.float64)], 1)
    wide_fake = torch.cat([fake, torch.zeros(60, 60, dtype=torch.float64)], 1)
    assert metrics.fid(wide_real, wide_fake) == pytest.approx(small, rel=1e-9)  # SVD branch
    assert metrics.fid(real, real) == pytest.approx(0.0, abs=1e-8)


def test_content_score_keeps_structure_not_colour(photos):
    painted = to_tensor(apply_style("painting", render_scene(8, i, 224, 224)) for i in range(8))
    shuffled = photos[8:16]
    assert metrics.content_score(photos[:8], photos[:8]) == pytest.approx(1.0, abs=1e-4)
    assert metrics.content_score(photos[:8], painted) > 0.6
    assert metrics.content_score(photos[:8], shuffled) < 0.4


def test_psnr_matches_its_definition():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.2)  # error 0.2 on a peak-to-peak range of 2
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(4 / 0.04))
