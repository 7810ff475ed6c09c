"""Checkpoints: the full training state in one file, written atomically, last N kept.

A checkpoint is a dict of tensors and plain values only (no classes, no code), read back
with `torch.load(weights_only=True)`:

    format, step, task, config (resolved, JSON values), config_hash,
    architectures {network: {architecture, arguments}},
    networks / ema / optimizers / scalers / pools (state dicts),
    schedule {decay_start, steps} (the lr is a pure function of the step),
    rng {torch, numpy, python, cuda}, data_order {seed, next_step}

Files are `RUN/checkpoints/step-NNNNNNNN.pt`; a crash mid-write leaves the previous ones
intact (temporary file + rename locally; GCS objects appear only when complete).
"""

from __future__ import annotations

import io
import logging
import random
import re
from typing import Any

import numpy as np
import torch

from scenegan import storage

log = logging.getLogger(__name__)

FORMAT = "scenegan-checkpoint/1"
_NAME = re.compile(r"step-(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for this run, with what to do about it."""


def checkpoint_dir(run: str) -> str:
    return storage.join(run, "checkpoints")


def list_checkpoints(run: str) -> list[tuple[int, str]]:
    """(step, uri) of the run's checkpoints, oldest first."""
    found = []
    for uri in storage.list_files(checkpoint_dir(run)):
        match = _NAME.search(uri)
        if match:
            found.append((int(match.group(1)), uri))
    return sorted(found)


def rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": numpy_state[0],
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run: str, state: dict[str, Any], keep: int) -> str:
    """Write `state` as the checkpoint of `state['step']`, then drop all but the last `keep`."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    uri = storage.join(checkpoint_dir(run), f"step-{state['step']:08d}.pt")
    storage.write_bytes(uri, buffer.getvalue())
    for _, old in list_checkpoints(run)[:-keep] if keep > 0 else []:
        storage.delete(old)
    return uri


def load_checkpoint(uri: str) -> dict[str, Any]:
    """Read a checkpoint without executing anything from it."""
    data = storage.read_bytes(uri)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(f"{uri} is not a readable checkpoint: {error}") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{uri} is not a scenegan checkpoint ({FORMAT})")
    return state


def load_latest(run: str) -> dict[str, Any] | None:
    """The newest readable checkpoint of `run`, falling back past damaged ones; None if
    the run has none."""
    for step, uri in reversed(list_checkpoints(run)):
        try:
            return load_checkpoint(uri)
        except CheckpointError as error:
            log.warning("skipping checkpoint of step %d: %s", step, error)
    return None


def check_compatible(state: dict[str, Any], architectures: dict[str, Any], task: str) -> None:
    """Refuse to resume a run whose networks differ from the checkpoint's."""
    if state["task"] != task:
        raise CheckpointError(
            f"the run was trained as task {state['task']!r}, not {task!r}; "
            "resume with the same --task or start a new --output"
        )
    saved = state["architectures"]
    for name, spec in architectures.items():
        if saved.get(name) != spec:
            raise CheckpointError(
                f"cannot resume: network {name} was {saved.get(name)} in the checkpoint but is "
                f"{spec} now (a different --preset or architecture); resume with the original "
                "settings or start a new --output"
            )
