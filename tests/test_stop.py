"""A stop signal sent to the whole process group (Ctrl-C in a terminal, `timeout`, systemd,
a VM shutdown) reaches the training process and its data-loader workers at once. Training
must still checkpoint the step it reached, exit 128 + signal, and resume bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipelines import ingest
from scenegan import cli
from scenegan.scenes import write_scenes
from scenegan.training import checkpoint as ckpt


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("stop")
    write_scenes(root / "photo", 12, width=40, height=40, seed=0)
    write_scenes(root / "painting", 12, width=40, height=40, seed=1, style="painting")
    for domain in ("photo", "painting"):
        ingest.run(
            [
                *("--input", str(root / domain), "--domain", domain),
                *("--output", str(root / "dataset"), "--direct_running_mode", "in_memory"),
            ]
        )
    return str(root / "dataset")


def _train_args(data: str, output: Path) -> list[str]:
    return [
        "train",
        *("--data", data, "--output", str(output), "--preset", "tiny"),
        *("--source-domain", "photo", "--target-domain", "painting"),
        *("--steps", "200", "--checkpoint-every", "1000", "--sample-every", "5"),
        *("--eval-every", "-1", "--reader", "stream", "--loader-workers", "2"),
    ]


@pytest.fixture(scope="module")
def reference(ingested, tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("reference") / "run"
    assert cli.main(_train_args(ingested, output)) == 0
    return ckpt.load_latest(str(output))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_to_the_process_group_checkpoints_and_resumes_exactly(
    signum, ingested, reference, tmp_path
):
    output = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "scenegan.cli", *_train_args(ingested, output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a job under a shell has
    )
    deadline = time.monotonic() + 120
    while not list((output / "samples").glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.1)  # a sample means the loader workers are up and steps run
    os.killpg(process.pid, signum)  # the whole group: training process and its workers
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-2000:]
    ((step, _),) = ckpt.list_checkpoints(str(output))
    assert 5 <= step < 200
    assert f"preempted at step {step}" in stderr and signal.Signals(signum).name in stderr

    assert cli.main([*_train_args(ingested, output), "--resume"]) == 0
    resumed = ckpt.load_latest(str(output))
    assert resumed["step"] == reference["step"] == 200
    for group in ("networks", "ema"):
        for name, weights in reference[group].items():
            for key, tensor in weights.items():
                assert torch.equal(tensor, resumed[group][name][key]), (group, name, key)
