"""Data-parallel training with `--launcher torchrun`: 2 CPU processes on gloo, loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch

from scenegan import cli
from scenegan.models import build_model
from scenegan.scenes import write_scenes
from scenegan.training import checkpoint as ckpt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_run_equals_one_process_at_the_same_global_batch(tmp_path):
    write_scenes(tmp_path / "data" / "photo", 16, width=40, height=40, seed=0)
    write_scenes(tmp_path / "data" / "painting", 16, width=40, height=40, seed=1, style="painting")
    common = [
        "train",
        "--task",
        "unpaired",
        "--preset",
        "tiny",
        "--data",
        str(tmp_path / "data"),
        "--source-domain",
        "photo",
        "--target-domain",
        "painting",
        "--steps",
        "3",
        "--pool-size",
        "0",  # per-process history pools would differ from one global pool
        "--amp",
        "fp64",  # float64 throughout: see below
    ]
    assert cli.main([*common, "--batch-size", "4", "--output", str(tmp_path / "single")]) == 0

    # Through the torchrun launcher: torch.distributed.run with 2 CPU processes (gloo on
    # loopback), then the registry promote, once, from the launching process.
    registry = str(tmp_path / "registry")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scenegan.cli",
            *common,
            "--launcher",
            "torchrun",
            "--nproc-per-node",
            "2",
            "--batch-size",
            "2",
            "--output",
            str(tmp_path / "ddp"),
            "--registry",
            registry,
            "--name",
            "ddp",
            "--eval-every",
            "-1",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ddp v0001" in result.stdout

    single = ckpt.load_latest(str(tmp_path / "single"))
    parallel = ckpt.load_latest(str(tmp_path / "ddp"))
    assert parallel is not None and parallel["step"] == 3
    # In float32 the two runs differ by up to ~1e-2 in the outputs after 3 steps, though
    # they compute the same thing: the all-reduce sums the gradient in another order, and
    # Adam's first steps move each parameter by about lr * sign(gradient), so a gradient
    # that is ~0 up to rounding (conv biases before instance norm, say) steps either way.
    # That noise is as large as real bugs' (a summed instead of averaged gradient: ~3e-2),
    # so the runs train in float64, where the same computation agrees to ~1e-13 and any
    # real difference stays orders of magnitude above the tolerance.
    # And the comparison can tell the runs apart: one process at the per-rank batch (what
    # ranks training on their own batches would compute) differs by far more.
    assert cli.main([*common, "--batch-size", "2", "--output", str(tmp_path / "per-rank")]) == 0
    per_rank = ckpt.load_latest(str(tmp_path / "per-rank"))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x * 2 - 1
    for name, spec in single["architectures"].items():
        outputs = []
        for state in (single, parallel, per_rank):
            model = build_model(spec["architecture"], spec["arguments"]).double().eval()
            model.load_state_dict(state["networks"][name])
            with torch.no_grad():
                outputs.append(model(x))
        assert (outputs[0] - outputs[1]).abs().max() < 1e-9, name
        assert (outputs[0] - outputs[2]).abs().max() > 1e-3, name
