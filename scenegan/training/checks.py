"""What every launcher checks and derives before anything starts: that the dataset has
the domains the task trains on, and the run's default name in a model registry."""

from __future__ import annotations

from scenegan import dataset, registry
from scenegan.training.config import TrainConfig


def check_dataset(config: TrainConfig, world_size: int = 1) -> dict[str, dict[str, int]]:
    """`dataset.check_dataset` for the domains `config`'s task trains on."""
    return dataset.check_dataset(
        config.data,
        required_domains(config),
        batch_size=config.batch_size,
        world_size=world_size,
        held_out=config.eval_every >= 0,
    )


def required_domains(config: TrainConfig) -> list[str]:
    if config.task == "unconditional":
        return [str(config.target_domain)]
    return [str(config.source_domain), str(config.target_domain)]


def default_name(config: TrainConfig) -> str:
    source = None if config.task == "unconditional" else config.source_domain
    return registry.model_name(source, config.target_domain)
