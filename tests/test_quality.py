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
def test_tiny_unpaired_training_beats_identity_by_3_db(tmp_path, one_thread):
    scores = run_demo(tmp_path)  # the demo's defaults are the configuration under test

    print(f"held-out PSNR {scores['psnr']:.2f} dB vs identity {scores['identity_psnr']:.2f} dB")
    assert scores["psnr"] >= scores["identity_psnr"] + 3.0
