"""What every launcher checks and derives before anything starts: that the dataset has
the domains the task trains on, and the run's default name in a model registry."""

from __future__ import annotations

from scenegan import dataset, registry
from scenegan.training.config import TrainConfig
from scenegan.training.tasks import task_class


def check_dataset(config: TrainConfig, world_size: int = 1) -> dict[str, dict[str, int]]:
    """`dataset.check_dataset` for the domains `config`'s task trains on."""
    return dataset.check_dataset(
        config.data,
        task_class(config.task).required_domains(config),
        batch_size=config.batch_size,
        world_size=world_size,
        held_out=config.eval_every >= 0,
    )


def default_name(config: TrainConfig) -> str:
    """The model's name in a registry, from the domains the task trains on."""
    return registry.model_name(*task_class(config.task).model_name(config))
