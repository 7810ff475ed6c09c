"""Shared fixtures and builders: a real GCS emulator on loopback for gs:// paths, and
tiny seeded MODELs (`make_model`) for the tests that load, stylize or register one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import torch

from scenegan import artifact
from scenegan.models import build_model

BUCKET = "scenegan-test"
TINY_GENERATORS = {
    "resnet": {"base_channels": 8, "num_blocks": 2},
    "light": {"base_channels": 8, "num_blocks": 2},
}


def make_model(
    path: str,
    architecture: str = "resnet",
    *,
    seed: int = 0,
    metrics: dict | None = None,
    training: dict | None = None,
    **arguments,
) -> str:
    """Save a tiny generator with seed-`seed` weights (so its own model_id) as MODEL
    `path`: photo -> painting at 32 px; returns `path`."""
    torch.manual_seed(seed)
    generator = build_model(architecture, {**TINY_GENERATORS.get(architecture, {}), **arguments})
    artifact.save_model(
        path,
        generator.eval(),
        task="unpaired",
        image_size=32,
        source_domain="photo",
        target_domain="painting",
        training=training or {},
        metrics=metrics or {},
    )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the GCS emulator exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the GCS emulator did not start listening in time")


@pytest.fixture(scope="session")
def gcs_bucket() -> Iterator[str]:
    """`gs://<bucket>` served by gcp-storage-emulator on 127.0.0.1 (in memory), with
    STORAGE_EMULATOR_HOST set so every client talks to it without credentials."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "--default-bucket",
        BUCKET,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        _wait_for(port, process)
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
        yield f"gs://{BUCKET}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
