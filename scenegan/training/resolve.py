"""`resolve_config(task, preset, **overrides)`: the one place a training config is decided
and checked, before anything launches.

Preset defaults of the task, then the explicit overrides (None values are ignored), then
every value checked against its field's metadata (`config.option`: choices, bounds,
checks) and the task's own requirements. Any problem is a `ConfigError` naming the flag,
the value and what to choose; the CLI exits 2 with it.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from scenegan.models import ARCHITECTURES
from scenegan.training.config import ConfigError, TrainConfig, generator_arguments
from scenegan.training.tasks import TASKS, task_class

PRESETS = tuple(dict.fromkeys(name for task in TASKS.values() for name in task.presets))


def preset_defaults(task: str, preset: str) -> dict[str, Any]:
    return task_class(task).preset_defaults(preset)


def resolve_config(task: str, preset: str, **overrides: Any) -> TrainConfig:
    """Preset defaults for `task`, then `overrides` (None values are ignored), checked."""
    task_type = task_class(task)
    values = task_type.preset_defaults(preset)
    chosen = overrides.get("generator")
    if chosen and "generator_args" not in overrides and task_type.generator_kind == _kind(chosen):
        values["generator_args"] = generator_arguments(chosen, values)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("loss") == "wgan-gp":
        values.setdefault("critic_steps", 5)
        if values.get("discriminator") == "dcgan_discriminator":
            # Batch norm mixes samples, which the per-sample gradient penalty assumes not.
            values["discriminator_args"] = {**values["discriminator_args"], "norm": "none"}
        values.setdefault("beta1", 0.0)
        values.setdefault("beta2", 0.9)
    unknown = set(values) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown config fields {sorted(unknown)}")
    config = TrainConfig(task=task, preset=preset, **values)
    check_values(config)
    _check_combination(config, task_type)
    return config


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_values(config: TrainConfig) -> None:
    """Every field against its type and metadata (choices, bounds, check)."""
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        value = getattr(config, field.name)
        if value is None and _optional(hints[field.name]):
            continue
        check_value(field, hints[field.name], value)


def check_value(field: dataclasses.Field, hint: Any, value: Any) -> None:
    meta, flag = field.metadata, flag_name(field.name)
    expected = _base_type(hint)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{flag} {value!r}: expected {expected.__name__}")
    choices = meta.get("choices")
    if choices is not None:
        allowed = choices() if callable(choices) else choices
        if value not in allowed:
            raise ConfigError(f"{flag} {value!r}: choose one of {', '.join(allowed)}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{flag} {value!r}: must be at least {meta['minimum']}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{flag} {value!r}: must be at most {meta['maximum']}")
    if meta.get("below") is not None and value >= meta["below"]:
        raise ConfigError(f"{flag} {value!r}: must be below {meta['below']}")
    if meta.get("check") is not None:
        try:
            meta["check"](value)
        except ValueError as error:
            raise ConfigError(f"{flag} {value!r}: {error}") from None


def _check_combination(config: TrainConfig, task_type: type) -> None:
    task_type.check_config(config)
    if config.load_size < config.image_size:
        raise ConfigError(f"load_size {config.load_size} < image_size {config.image_size}")
    kind = _kind(config.generator)
    if kind != task_type.generator_kind:
        raise ConfigError(
            f"--generator {config.generator} is {kind}; task {config.task} needs a "
            f"generator of kind {task_type.generator_kind}"
        )


def _kind(architecture: str) -> str | None:
    return getattr(ARCHITECTURES.get(architecture), "kind", None)


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _base_type(hint: Any) -> type:
    """int / float / str / bool / dict from a field's annotation (`str | None` -> str)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is dict:
        return dict
    if args and origin is not dict:
        return _base_type(args[0])
    return hint
