"""The model registry, local and on the GCS emulator: versions, `latest`, refusals, locks."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid

import pytest
from conftest import make_model

from scenegan import artifact, cli, registry, storage


def tiny(path: str, seed: int, metrics: dict) -> str:
    """A tiny light generator with its own weights (so its own model_id) and metrics."""
    return make_model(
        path, "light", seed=seed, metrics=metrics, num_blocks=1, training={"steps": seed}
    )


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    return f"{request.getfixturevalue('gcs_bucket')}/registry-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "first": tiny(str(folder / "first"), 1, {"kid": 0.05, "content": 0.8}),
        "better": tiny(str(folder / "better"), 2, {"kid": 0.02, "content": 0.7}),
        "worse": tiny(str(folder / "worse"), 3, {"kid": 0.09, "content": 0.9}),
        "unmeasured": tiny(str(folder / "unmeasured"), 4, {}),
    }


def pointer(root: str, name: str = "p2p") -> dict:
    return json.loads(storage.read_bytes(f"{root}/{name}/latest"))


def test_promote_versions_latest_refusal_and_resolution(root, models):
    first = registry.promote(root, "p2p", model=models["first"])
    better = registry.promote(root, "p2p", model=models["better"])
    assert (first.version, better.version) == ("v0001", "v0002")
    assert pointer(root)["version"] == "v0002" and pointer(root)["metrics"]["kid"] == 0.02

    with pytest.raises(registry.RegistryError, match=r"kid 0.09 is worse than latest v0002"):
        registry.promote(root, "p2p", model=models["worse"])
    with pytest.raises(registry.RegistryError, match="has no kid to compare"):
        registry.promote(root, "p2p", model=models["unmeasured"])
    assert registry.versions(root, "p2p") == ["v0001", "v0002"]  # a refusal writes nothing
    # ... unless forced, or judged on a metric it is better at.
    by_content = registry.promote(root, "p2p", model=models["worse"], metric="content")
    assert by_content.version == "v0003" and pointer(root)["version"] == "v0003"
    forced = registry.promote(root, "p2p", model=models["unmeasured"], force=True)
    assert forced.version == "v0004" and "forced" in forced.message

    again = registry.promote(root, "p2p", model=models["better"])  # same weights: no new version
    assert again.version == "v0002" and "already registered" in again.message
    assert registry.versions(root, "p2p") == ["v0001", "v0002", "v0003", "v0004"]

    latest = artifact.load_model(registry.resolve_model_path(f"{root}/p2p/latest"))
    pinned = artifact.load_model(f"{root}/p2p/v0002")
    assert latest.model_id == forced.model_id and pinned.model_id == better.model_id
    metrics = json.loads(storage.read_bytes(f"{root}/p2p/v0002/metrics.json"))
    assert metrics["metrics"]["kid"] == 0.02 and metrics["source"] == models["better"]
    assert not storage.exists(f"{root}/p2p/{registry.LOCK}")  # released


def test_list_shows_versions_metrics_and_times(root, models, capsys):
    registry.promote(root, "p2p", model=models["first"])
    registry.promote(root, "p2p", model=models["better"])
    registry.promote(root, "other", model=models["worse"])
    rows = registry.list_registry(root)
    assert [(r["name"], r["version"], r["latest"]) for r in rows] == [
        ("other", "v0001", True),
        ("p2p", "v0001", False),
        ("p2p", "v0002", True),
    ]
    assert rows[2]["metrics"]["kid"] == 0.02 and rows[2]["created_at"].startswith("20")

    assert cli.main(["registry", "list", root, "--name", "p2p"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["NAME", "VERSION", "LATEST", "KID"]
    assert table[2].split()[:4] == ["p2p", "v0002", "yes", "0.02"]
    assert cli.main(["registry", "list", root, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_pointer_to_a_missing_version_is_a_clear_error(root, models, capsys):
    registry.promote(root, "p2p", model=models["first"])
    storage.delete_tree(f"{root}/p2p/v0001")
    with pytest.raises(registry.RegistryError, match=r"points to version v0001.*holds no model"):
        registry.resolve_model_path(f"{root}/p2p/latest")
    assert registry.list_registry(root, "p2p")[-1]["missing"] is True
    assert cli.main(["registry", "list", root]) == 0
    assert "MISSING" in capsys.readouterr().out
    # stylize refuses at launch, before any work
    code = cli.main(
        ["stylize", "--model", f"{root}/p2p/latest", "--input", root, "--output", f"{root}-out"]
    )
    assert code == 1 and "holds no model" in capsys.readouterr().err
    with pytest.raises(registry.RegistryError, match="nothing was promoted"):
        registry.resolve_model_path(f"{root}/nothing/latest")


def test_a_held_lock_blocks_a_promote_and_a_stale_one_is_taken_over(tmp_path, models):
    root = str(tmp_path / "registry")
    lock = f"{root}/p2p/{registry.LOCK}"
    storage.write_bytes(lock, json.dumps({"host": "elsewhere", "since": time.time()}).encode())
    with pytest.raises(registry.RegistryError, match="locked by another promote"):
        registry.promote(root, "p2p", model=models["first"], lock_timeout=0.5)
    assert registry.versions(root, "p2p") == [] and storage.exists(lock)

    stale = time.time() - registry.STALE_LOCK_SECONDS - 60
    storage.write_bytes(lock, json.dumps({"host": "crashed", "since": stale}).encode())
    assert registry.promote(root, "p2p", model=models["first"]).version == "v0001"
    assert not storage.exists(lock)


def _promote_after(barrier, root: str, model: str, results) -> None:
    barrier.wait()
    try:
        promotion = registry.promote(root, "p2p", model=model)
        results.put(("ok", promotion.version, promotion.model_id))
    except registry.RegistryError as error:
        results.put(("refused", str(error), None))


def test_concurrent_promotes_keep_the_registry_consistent(tmp_path, models):
    """Two processes promote different models at the same instant, several rounds. The
    lock serialises them: versions are distinct and whole, `latest` is the better model."""
    context = multiprocessing.get_context("spawn")
    for round_number in range(3):
        root = str(tmp_path / f"registry-{round_number}")
        barrier, results = context.Barrier(2), context.Queue()
        workers = [
            context.Process(target=_promote_after, args=(barrier, root, models[key], results))
            for key in ("first", "better")
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
            assert worker.exitcode == 0
        outcomes = sorted(results.get(timeout=5) for _ in workers)
        done = [o for o in outcomes if o[0] == "ok"]
        # better first -> first is refused (worse kid); first first -> both get versions
        assert len(done) in (1, 2)
        assert sorted(o[1] for o in done) == [f"v{i:04d}" for i in range(1, len(done) + 1)]
        assert registry.versions(root, "p2p") == sorted(o[1] for o in done)
        best = artifact.load_model(models["better"]).model_id
        assert (
            artifact.load_model(registry.resolve_model_path(f"{root}/p2p/latest")).model_id == best
        )
        assert not storage.exists(f"{root}/p2p/{registry.LOCK}")


def test_bad_names_and_sources_are_refused(tmp_path, models):
    with pytest.raises(registry.RegistryError, match="model name"):
        registry.promote(str(tmp_path), "../escape", model=models["first"])
    with pytest.raises(registry.RegistryError, match="exactly one of"):
        registry.promote(str(tmp_path), "p2p")
    with pytest.raises(registry.RegistryError, match="unknown metric"):
        registry.promote(str(tmp_path), "p2p", model=models["first"], metric="accuracy")
