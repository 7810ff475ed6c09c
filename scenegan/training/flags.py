"""The `scenegan train` training flags, generated from TrainConfig's fields.

Each field with a flag (`config.option`) becomes `--field-name`, typed from its
annotation, with its help text, choices and bounds; booleans become --x / --no-x. Every
flag defaults to None ("the preset's value"), so a preset fills what the command line does
not say. A field added to TrainConfig gets its flag here without an edit; the values are
checked by `resolve.resolve_config`, not by argparse, so every error reads the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from scenegan.training.config import TrainConfig
from scenegan.training.resolve import PRESETS, resolve_config
from scenegan.training.tasks import TASKS

# Fields whose choices live with the tasks, which import config.py (so it cannot name them).
TASK_CHOICES = {"task": tuple(TASKS), "preset": PRESETS}

LOAD_SIZE_RATIO = 1.12  # --image-size without --load-size: crop from 1.12x (CycleGAN)


def config_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("flag", True)]


def add_training_arguments(group: Any) -> None:
    """One flag per TrainConfig field, plus --resume."""
    hints = typing.get_type_hints(TrainConfig)
    for field in config_fields():
        group.add_argument(f"--{field.name.replace('_', '-')}", **_argument(field, hints))
    group.add_argument(
        "--resume", action="store_true", help="continue from the run's last checkpoint"
    )


def _argument(field: dataclasses.Field, hints: dict[str, Any]) -> dict[str, Any]:
    meta = field.metadata
    kind = _scalar(hints[field.name])
    help_text = meta.get("help") or field.name.replace("_", " ")
    owners = [name for name, task in TASKS.items() if field.name in task.options]
    if owners:
        help_text += f" (task {', '.join(owners)})"
    choices = TASK_CHOICES.get(field.name, meta.get("choices"))
    if choices is not None:
        help_text += f"; one of: {', '.join(choices() if callable(choices) else choices)}"
    bounds = _bounds(meta)
    if bounds:
        help_text += f"; {bounds}"
    default = meta.get("flag_default")
    if default is not None:
        help_text += f" (default: {default})"
    elif not meta.get("required"):
        help_text += " (default: the preset's)"
    argument: dict[str, Any] = {"help": help_text, "default": default}
    if meta.get("required"):
        argument["required"] = True
    if kind is bool:
        argument["action"] = argparse.BooleanOptionalAction
        return argument
    argument["type"] = kind
    argument["metavar"] = meta.get("metavar") or {int: "N", float: "X"}.get(kind, "NAME")
    return argument


def _bounds(meta: Any) -> str:
    parts = []
    if meta.get("minimum") is not None:
        parts.append(f">= {meta['minimum']}")
    if meta.get("maximum") is not None:
        parts.append(f"<= {meta['maximum']}")
    if meta.get("below") is not None:
        parts.append(f"< {meta['below']}")
    return " and ".join(parts)


def _scalar(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return _scalar(args[0]) if args else hint


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved config of parsed training flags (`resolve_config` checks it)."""
    overrides = {
        field.name: getattr(args, field.name)
        for field in config_fields()
        if field.name not in ("task", "preset")
    }
    if args.image_size and args.load_size is None:
        overrides["load_size"] = round(args.image_size * LOAD_SIZE_RATIO)
    return resolve_config(args.task, args.preset, **overrides)
