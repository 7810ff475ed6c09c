"""Exporting a training run: its latest checkpoint's EMA generator as a MODEL.

`exportable(run)` rebuilds the generator the checkpoint names (`export_network`) and the
`artifact.save_model` fields that describe it; `export_model(run, output)` writes it.
The MODEL format itself is `scenegan.artifact`'s.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scenegan.artifact import ModelError, save_model
from scenegan.models import build_model
from scenegan.training import checkpoint as ckpt


def export_model(run: str, output: str, *, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export the EMA generator of `run`'s latest checkpoint to `output`; returns model.json."""
    generator, fields = exportable(run)
    if metrics:
        fields["metrics"] = metrics
    return save_model(output, generator, **fields)


def exportable(run: str) -> tuple[nn.Module, dict[str, Any]]:
    """The EMA generator of `run`'s latest checkpoint and the `save_model` fields for it."""
    state = ckpt.load_latest(run)
    if state is None:
        raise ModelError(f"{run} has no checkpoint to export; train it first")
    name = state["export_network"]
    spec = state["architectures"][name]
    generator = build_model(spec["architecture"], spec["arguments"])
    generator.load_state_dict(state["ema"][name])  # proves the weights fit the architecture
    config = state["config"]
    training = {
        "data": config["data"],
        "data_fingerprint": state.get("data_fingerprint"),
        "config_hash": state["config_hash"],
        "steps": int(state["step"]),
        "preset": config.get("preset"),
        "run": run,
    }
    return generator.eval(), {
        "task": state["task"],
        "image_size": config["image_size"],
        "source_domain": config.get("source_domain"),
        "target_domain": config.get("target_domain"),
        "training": training,
        "metrics": dict(state.get("metrics") or {}),
    }
