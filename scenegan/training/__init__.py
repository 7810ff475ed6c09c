"""GAN training: config and presets, data order, tasks, checkpoints, the loop, launchers.

config = resolve_config("unpaired", "tiny", data=..., output=..., source_domain=...,
                        target_domain=...)
training_loop(config, resume=False)

Importing this package loads nothing: each name below is imported on first use, so a
process that only reads a checkpoint or exports a run never loads the training loop.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRESETS": "scenegan.training.resolve",
    "TASKS": "scenegan.training.tasks",
    "TrainConfig": "scenegan.training.config",
    "resolve_config": "scenegan.training.resolve",
    "Preempted": "scenegan.training.loop",
    "TrainResult": "scenegan.training.loop",
    "training_loop": "scenegan.training.loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scenegan.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
