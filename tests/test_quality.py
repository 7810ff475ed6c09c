"""The quality bar: a tiny unpaired model must learn most of a known style.

Data (the demo's): 200 procedural photos and 200 *other* scenes in the known-answer
`painting` style, 32 px. Training: the `tiny` preset as shipped (2,500 steps) on one
thread, about 4.5 CPU-minutes, which is the budget. Requirement: on unseen scenes,
PSNR(G(x), painting(x)) beats the identity baseline PSNR(x, painting(x)) by at least
3 dB. This test can fail: an untrained or broken generator scores several dB *below*
the identity baseline.
"""

from __future__ import annotations

import pytest
import torch

from scenegan.demo import run_demo


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # 2,500 steps on one thread plus two Beam jobs: ~10 min here
def test_tiny_unpaired_training_beats_identity_by_3_db(tmp_path, one_thread):
    scores = run_demo(tmp_path)  # the demo's defaults are the configuration under test

    print(f"held-out PSNR {scores['psnr']:.2f} dB vs identity {scores['identity_psnr']:.2f} dB")
    assert scores["psnr"] >= scores["identity_psnr"] + 3.0


@pytest.mark.slow
def test_real_photos_demo_chain_and_the_shipped_model_beats_doing_nothing(tmp_path, capsys):
    """The real-photo bar, through the whole `scenegan demo` chain (Beam ingest of the
    bundled sample, training, export, Beam stylize of both models in one job, judging).

    The shipped model must bring the held-out photos closer to the paintings (KID on Lite0
    features) than the photos are, and keep their content: it scored 0.200 against 0.231
    for the photos at 128 px when it was shipped (model.json). A short fresh run starts at
    the identity and is only held to staying near it (KID within 1.1x of the photos',
    content kept): bench/quality.py measured the same recipe at 0.86x after 271 steps, but
    200 steps on another thread count and data order are not reliably below 1.0x yet."""
    from scenegan.photo_demo import run_photo_demo

    scores = run_photo_demo(tmp_path, steps=200, max_side=128)
    shipped, fresh = scores["shipped"], scores["fresh"]
    assert shipped["kid"] < 0.95 * shipped["identity_kid"], scores
    assert shipped["content"] > 0.6 and fresh["content"] > 0.6, scores
    assert fresh["kid"] < 1.1 * fresh["identity_kid"], scores
    assert (tmp_path / "before-after.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "demo summary" in out and "shipped model: KID" in out
    assert list((tmp_path / "stylized" / "shipped" / "images").glob("*"))
    assert list((tmp_path / "stylized" / "fresh" / "images").glob("*"))
