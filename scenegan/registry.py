"""The model registry: versioned MODELs under one root, local or gs://, and a `latest` pointer.

    REGISTRY/<name>/v0001/          a MODEL (model.json + weights.pt) plus metrics.json
    REGISTRY/<name>/v0002/
    REGISTRY/<name>/latest          {"name", "version", "model_id", "metric", "value", ...}
    REGISTRY/<name>/.lock           held while a promote runs (create-exclusive)

A promote takes the name's lock, gives the model the next version number, writes it whole
(model.json last, as every MODEL), and only then replaces `latest` (one atomic object
write). A reader therefore sees the old latest or the new one, never a half-written model.
Promotion is refused when the new model's quality metric is worse than the latest's,
unless forced; a refused promote writes nothing. `REGISTRY/<name>/latest` and
`REGISTRY/<name>/v0002` are both accepted wherever a MODEL path is (`resolve_model_path`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch

from scenegan import artifact, storage
from scenegan.training.export import exportable

LATEST = "latest"
LOCK = ".lock"
# Quality metrics a promote can compare on, and which way is better.
LOWER_IS_BETTER = {"kid": True, "fid": True, "content": False, "psnr": False}
DEFAULT_METRIC = "kid"
STALE_LOCK_SECONDS = 15 * 60  # a promote takes seconds; a lock this old was abandoned


class RegistryError(artifact.ModelError):
    """A registry operation that cannot be done, with the reason and what to do (a
    ModelError too, so whatever loads a MODEL reports a bad `latest` the same way)."""


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    uri: str
    model_id: str
    latest: bool  # whether `latest` now points to this version
    message: str


def version_name(number: int) -> str:
    return f"v{number:04d}"


def version_number(name: str) -> int | None:
    if len(name) == 5 and name[0] == "v" and name[1:].isdigit():
        return int(name[1:])
    return None


def versions(registry: str, name: str) -> list[str]:
    """The version folders of `name` that hold a complete model, oldest first."""
    root = storage.join(registry, name)
    found = [v for v in storage.list_dirs(root) if version_number(v) is not None]
    return [v for v in found if storage.exists(storage.join(root, v, "model.json"))]


def read_latest(registry: str, name: str) -> dict[str, Any] | None:
    uri = storage.join(registry, name, LATEST)
    if not storage.exists(uri):
        return None
    try:
        pointer = json.loads(storage.read_bytes(uri))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RegistryError(f"{uri} is not a registry pointer: {error}") from error
    if not isinstance(pointer, dict) or version_number(str(pointer.get("version"))) is None:
        raise RegistryError(f"{uri} is not a registry pointer (no valid 'version')")
    return pointer


def resolve_model_path(path: str) -> str:
    """A MODEL path with `REGISTRY/<name>/latest` replaced by the version it points to.

    Any other path is returned unchanged. A pointer to a missing version is an error that
    names both, so a nightly job fails at launch instead of stylizing with nothing."""
    stripped = path.rstrip("/")
    parent, _, leaf = stripped.rpartition("/")
    if leaf != LATEST or not parent or storage.exists(storage.join(stripped, "model.json")):
        return path
    registry, _, name = parent.rpartition("/")
    pointer = read_latest(registry or ".", name)  # None when nothing was promoted
    if pointer is None:
        raise RegistryError(
            f"{stripped} does not exist: nothing was promoted to {parent} yet "
            "(scenegan registry promote REGISTRY --run RUN --name NAME)"
        )
    target = storage.join(parent, pointer["version"])
    if not storage.exists(storage.join(target, "model.json")):
        raise RegistryError(
            f"{stripped} points to version {pointer['version']}, but {target} holds no model "
            "(deleted?); promote again, or pin an existing version with "
            f"--model {parent}/vNNNN (scenegan registry list {registry or '.'})"
        )
    return target


def promote(
    registry: str,
    name: str,
    *,
    run: str | None = None,
    model: str | None = None,
    metric: str = DEFAULT_METRIC,
    force: bool = False,
    lock_timeout: float = 120.0,
) -> Promotion:
    """Register the EMA generator of training `run` (or the exported MODEL `model`) as the
    next version of `name`, and point `latest` at it unless it is worse than the latest."""
    _check_name(name)
    if metric not in LOWER_IS_BETTER:
        raise RegistryError(f"unknown metric {metric!r}: choose from {', '.join(LOWER_IS_BETTER)}")
    generator, fields = _candidate(run, model)
    weights = generator.state_dict()
    model_id = artifact.weights_hash(weights)
    with registry_lock(registry, name, timeout=lock_timeout):
        existing = _find_model_id(registry, name, model_id)
        pointer = read_latest(registry, name)
        if existing is not None:
            return _already_registered(registry, name, existing, pointer)
        verdict = _compare(fields["metrics"], pointer, metric)
        if verdict and not force:
            raise RegistryError(
                f"promotion of {run or model} to {name} refused: {verdict}; "
                "pass --force to promote it anyway"
            )
        number = (
            max(
                [version_number(v) or 0 for v in storage.list_dirs(storage.join(registry, name))]
                + [0]
            )
            + 1
        )
        version = version_name(number)
        uri = storage.join(registry, name, version)
        info = artifact.save_model(uri, generator, **fields)
        created = info["created_at"]
        record = {
            "name": name,
            "version": version,
            "model_id": model_id,
            "created_at": created,
            "metrics": info["metrics"],
            "source": run or model,
        }
        storage.write_bytes(storage.join(uri, "metrics.json"), _json(record))
        pointer = {
            **record,
            "metric": metric,
            "value": info["metrics"].get(metric),
            "updated_at": _now(),
        }
        storage.write_bytes(storage.join(registry, name, LATEST), _json(pointer))
    note = f" ({verdict}; forced)" if verdict else ""
    return Promotion(name, version, uri, model_id, True, f"promoted {version}{note}")


def list_registry(registry: str, name: str | None = None) -> list[dict[str, Any]]:
    """One row per version (newest last) of `name`, or of every name: version, model_id,
    metrics, created_at, whether it is latest; pointers to missing versions are rows too."""
    names = [name] if name else [n for n in storage.list_dirs(registry) if not n.startswith(".")]
    rows = []
    for entry in names:
        pointer = read_latest(registry, entry)
        found = versions(registry, entry)
        for version in found:
            info = artifact.read_model_info(storage.join(registry, entry, version))
            rows.append(
                {
                    "name": entry,
                    "version": version,
                    "model_id": info["model_id"],
                    "created_at": info.get("created_at"),
                    "metrics": info.get("metrics", {}),
                    "latest": bool(pointer and pointer["version"] == version),
                }
            )
        if pointer and pointer["version"] not in found:
            rows.append(
                {
                    "name": entry,
                    "version": pointer["version"],
                    "model_id": None,
                    "created_at": None,
                    "metrics": {},
                    "latest": True,
                    "missing": True,
                }
            )
    return rows


@contextmanager
def registry_lock(registry: str, name: str, *, timeout: float = 120.0) -> Iterator[None]:
    """Hold `REGISTRY/<name>/.lock` for the block. Waits up to `timeout` seconds for another
    promote; a lock older than STALE_LOCK_SECONDS (a crashed promote) is taken over."""
    uri = storage.join(registry, name, LOCK)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    deadline = time.monotonic() + timeout
    while not storage.create_exclusive(uri, _json(holder)):
        other = _read_holder(uri)
        if other is not None and time.time() - float(other.get("since", 0)) > STALE_LOCK_SECONDS:
            storage.delete(uri)  # abandoned: the next create decides who takes it
            continue
        if time.monotonic() > deadline:
            raise RegistryError(
                f"{registry}/{name} is locked by another promote ({other}); if none is running, "
                f"delete {uri} and retry"
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        storage.delete(uri)


def _read_holder(uri: str) -> dict[str, Any] | None:
    try:
        return json.loads(storage.read_bytes(uri))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # released meanwhile, or half-written by its creator: try again


def _candidate(run: str | None, model: str | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    if (run is None) == (model is None):
        raise RegistryError("promote needs exactly one of --run RUN or --model MODEL")
    if run is not None:
        return exportable(run)
    loaded = artifact.load_model(resolve_model_path(str(model)))
    info = loaded.info
    fields = {
        key: info.get(key)
        for key in ("task", "image_size", "source_domain", "target_domain", "training", "metrics")
    }
    fields["metrics"] = fields["metrics"] or {}
    return loaded.generator, fields


def _compare(metrics: dict[str, Any], pointer: dict[str, Any] | None, metric: str) -> str:
    """'' when the candidate may become latest, else why it may not."""
    if pointer is None:
        return ""
    current = (pointer.get("metrics") or {}).get(metric)
    new = metrics.get(metric)
    if current is None:
        return ""  # nothing to be worse than
    if new is None:
        return (
            f"it has no {metric} to compare with {pointer['version']}'s {current:.6g} "
            "(train with a held-out split, so evaluation runs)"
        )
    worse = new > current if LOWER_IS_BETTER[metric] else new < current
    if not worse:
        return ""
    direction = "lower" if LOWER_IS_BETTER[metric] else "higher"
    return (
        f"its {metric} {new:.6g} is worse than latest {pointer['version']}'s {current:.6g} "
        f"({direction} is better)"
    )


def _find_model_id(registry: str, name: str, model_id: str) -> str | None:
    for version in versions(registry, name):
        info = artifact.read_model_info(storage.join(registry, name, version))
        if info["model_id"] == model_id:
            return version
    return None


def _already_registered(
    registry: str, name: str, version: str, pointer: dict[str, Any] | None
) -> Promotion:
    uri = storage.join(registry, name, version)
    info = artifact.read_model_info(uri)
    is_latest = bool(pointer and pointer["version"] == version)
    return Promotion(
        name,
        version,
        uri,
        info["model_id"],
        is_latest,
        f"already registered as {version}; nothing changed",
    )


def model_name(source_domain: str | None, target_domain: str | None) -> str:
    """The default name of a generator in the registry: `<source>-to-<target>` (image to
    image) or `<target>` (unconditional), lower-cased."""
    if not target_domain:
        raise RegistryError("cannot name the model from its domains: pass --name NAME")
    name = f"{source_domain}-to-{target_domain}" if source_domain else target_domain
    return name.lower()


def _check_name(name: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
    if not name or name.startswith(".") or not set(name) <= allowed or name == LATEST:
        raise RegistryError(
            f"model name {name!r}: use lower-case letters, digits, '-', '_' and '.', "
            "e.g. photo-to-painting"
        )


def _json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def format_rows(rows: list[dict[str, Any]]) -> str:
    """`scenegan registry list` as a table: name, version, latest, metrics, created, id."""
    if not rows:
        return "(no models)"
    lines = [
        f"{'NAME':<24} {'VERSION':<8} {'LATEST':<6} {'KID':>10} {'FID':>10} "
        f"{'CONTENT':>8} {'PSNR':>8} {'CREATED':<25} MODEL_ID"
    ]
    for row in rows:
        metrics = row["metrics"]
        cells = [_cell(metrics.get(key)) for key in ("kid", "fid", "content", "psnr")]
        if row.get("missing"):
            lines.append(
                f"{row['name']:<24} {row['version']:<8} {'yes':<6} MISSING: latest "
                "points to a version that does not exist"
            )
            continue
        lines.append(
            f"{row['name']:<24} {row['version']:<8} {'yes' if row['latest'] else '':<6} "
            f"{cells[0]:>10} {cells[1]:>10} {cells[2]:>8} {cells[3]:>8} "
            f"{row['created_at'] or '':<25} "
            f"{row['model_id'][:16]}"
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
