"""GAN training: config and presets, data order, tasks, checkpoints, the loop.

config = resolve_config("unpaired", "tiny", data=..., output=..., source_domain=...,
                        target_domain=...)
training_loop(config, resume=False)
"""

from scenegan.training.config import PRESETS, TASKS, TrainConfig, resolve_config
from scenegan.training.loop import Preempted, TrainResult, training_loop

__all__ = [
    "PRESETS",
    "TASKS",
    "Preempted",
    "TrainConfig",
    "TrainResult",
    "resolve_config",
    "training_loop",
]
