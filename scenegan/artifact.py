"""The exported MODEL: what stylize and generate load, and nothing else.

    MODEL/weights.pt   the generator's state_dict (tensors only; torch.load weights_only)
    MODEL/model.json   architecture + constructor arguments, kind (image-to-image or
                       noise-to-image), task, normalization, image
                       size, stride, training data fingerprint, steps, metrics, model_id
                       (sha256 of the weights' names, dtypes, shapes and values), created_at

`model.json` is written last, so its presence means the model is complete; `load_model`
re-hashes the weights and refuses a model whose bytes do not match its `model_id`.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn

from scenegan import storage
from scenegan.models import ARCHITECTURES, NOISE_TO_IMAGE, architecture_name, build_model, kind_of

FORMAT = "scenegan-model/1"
NORMALIZATION = "tanh"  # pixels enter and leave the generator as (x / 127.5) - 1


class ModelError(RuntimeError):
    """A MODEL that cannot be used, with the reason and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    generator: nn.Module  # eval mode, on CPU until moved
    info: dict[str, Any]  # the model.json contents

    @property
    def model_id(self) -> str:
        return str(self.info["model_id"])

    @property
    def task(self) -> str:
        return str(self.info["task"])

    @property
    def kind(self) -> str:
        """What the generator maps: image-to-image or noise-to-image (models.kind_of)."""
        return str(self.info.get("kind") or kind_of(self.info["architecture"]))

    @property
    def generates_from_noise(self) -> bool:
        return self.kind == NOISE_TO_IMAGE

    @property
    def stride(self) -> int:
        return int(self.info.get("stride", 1))


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """A content hash of a state_dict, independent of how it was serialised."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(
            tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        )
    return digest.hexdigest()


def save_model(
    output: str,
    generator: nn.Module,
    *,
    task: str,
    image_size: int,
    source_domain: str | None,
    target_domain: str | None,
    training: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Write `generator` as MODEL `output` (the one place model.json is composed); returns
    the model.json contents."""
    weights = generator.state_dict()
    info = {
        "format": FORMAT,
        "model_id": weights_hash(weights),
        "architecture": architecture_name(generator),
        "arguments": dict(generator.config),
        "kind": getattr(generator, "kind", None),
        "task": task,
        "normalization": NORMALIZATION,
        "image_size": image_size,
        "stride": getattr(generator, "stride", 1),
        "source_domain": source_domain,
        "target_domain": target_domain,
        "training": training,
        "metrics": metrics,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_model(output, weights, info)
    return info


def write_model(output: str, weights: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in weights.items()}, buffer)
    storage.write_bytes(storage.join(output, "weights.pt"), buffer.getvalue())
    storage.write_bytes(storage.join(output, "model.json"), json.dumps(info, indent=2).encode())


def read_model_info(path: str) -> dict[str, Any]:
    uri = storage.join(path, "model.json")
    if not storage.exists(uri):
        raise ModelError(f"{path} is not a scenegan MODEL: {uri} is missing (export one first)")
    try:
        info = json.loads(storage.read_bytes(uri))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{uri} is not valid JSON: {error}") from error
    if info.get("format") != FORMAT:
        raise ModelError(f"{uri}: format {info.get('format')!r} is not {FORMAT!r}")
    if info.get("architecture") not in ARCHITECTURES:
        raise ModelError(
            f"{uri} names architecture {info.get('architecture')!r}, which this scenegan does not "
            f"know (known: {', '.join(sorted(ARCHITECTURES))}); upgrade scenegan or re-export"
        )
    return info


def load_model(path: str) -> LoadedModel:
    """Load MODEL `path` (local or gs://) for inference, verifying it fully first. A
    registry's `latest` pointer is resolved by the caller, once
    (`registry.resolve_model_path`), so every worker loads the same version."""
    info = read_model_info(path)
    uri = storage.join(path, "weights.pt")
    try:
        weights = torch.load(
            io.BytesIO(storage.read_bytes(uri)), map_location="cpu", weights_only=True
        )
    except FileNotFoundError as error:
        raise ModelError(f"{path}: weights.pt is missing") from error
    except Exception as error:  # a truncated or foreign file: torch raises several types
        raise ModelError(f"{uri} is damaged or not a weights file: {error}") from error
    if weights_hash(weights) != info["model_id"]:
        raise ModelError(
            f"{uri} does not match model_id {info['model_id']} in model.json; re-export"
        )
    try:
        generator = build_model(info["architecture"], info["arguments"])
        generator.load_state_dict(weights)
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"{path}: weights do not fit {info['architecture']}: {error}") from error
    return LoadedModel(generator.eval().requires_grad_(False), info)
