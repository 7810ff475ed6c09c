"""Training: every task runs real steps, resumes exactly, and keeps a complete run dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scenegan.scenes import write_scenes
from scenegan.training import checkpoint as ckpt
from scenegan.training import resolve_config, training_loop
from scenegan.training.components import EMA, ImagePool, diff_augment, lr_factor
from scenegan.training.data import indices_for_step, rank_slice
from scenegan.training.export import export_model


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    write_scenes(root / "unpaired" / "photo", 24, width=40, height=40, seed=0)
    write_scenes(root / "unpaired" / "painting", 24, width=40, height=40, seed=1, style="painting")
    write_scenes(root / "paired" / "photo", 16, width=40, height=40, seed=2, prefix="pair")
    write_scenes(
        root / "paired" / "painting",
        16,
        width=40,
        height=40,
        seed=2,
        style="painting",
        prefix="pair",
    )
    return {
        "unpaired": root / "unpaired",
        "paired": root / "paired",
        "unconditional": root / "unpaired",
        "contrastive": root / "unpaired",
    }


def tiny(task: str, data: dict[str, Path], output: Path, **overrides):
    values = dict(
        data=str(data[task]),
        output=str(output),
        source_domain="photo",
        target_domain="painting",
        steps=8,
        checkpoint_every=4,
        sample_every=4,
        log_every=2,
    )
    values.update(overrides)
    return resolve_config(task, "tiny", **values)


def final_state(run: Path) -> dict:
    state = ckpt.load_latest(str(run))
    assert state is not None
    return state


def assert_same_weights(a: dict, b: dict) -> None:
    for group in ("networks", "ema"):
        for net in a[group]:
            for key, tensor in a[group][net].items():
                assert torch.equal(tensor, b[group][net][key]), f"{group}/{net}/{key} differs"
    for name in a["optimizers"]:
        for slot, values in a["optimizers"][name]["state"].items():
            for key, tensor in values.items():
                assert torch.equal(tensor, b["optimizers"][name]["state"][slot][key])


@pytest.mark.parametrize(
    ("task", "extra"),
    [
        ("unpaired", {}),
        ("unpaired", {"augment": "color,translation,cutout", "loss": "hinge"}),
        ("paired", {}),
        ("unconditional", {}),
        ("unconditional", {"loss": "wgan-gp"}),
        ("contrastive", {}),
    ],
)
def test_interrupted_then_resumed_run_equals_uninterrupted(task, extra, data, tmp_path):
    straight = tiny(task, data, tmp_path / "straight", **extra)
    training_loop(straight, progress=False)

    broken = tiny(task, data, tmp_path / "broken", **extra)

    def interrupt(step, _task):
        if step == 6:  # two steps past the checkpoint of step 4: they are lost
            raise Interrupted

    with pytest.raises(Interrupted):
        training_loop(broken, progress=False, on_step=interrupt)
    result = training_loop(broken, resume=True, progress=False)

    assert result.resumed_from == 4
    assert_same_weights(final_state(tmp_path / "straight"), final_state(tmp_path / "broken"))
    steps = [json.loads(line)["step"] for line in (tmp_path / "broken" / "stats.jsonl").open()]
    assert steps == [2, 4, 6, 8]  # the lost steps' stats were dropped, none twice


def test_sigkilled_training_process_resumes_exactly(data, tmp_path):
    args = [
        "train",
        "--task",
        "unpaired",
        "--preset",
        "tiny",
        "--data",
        str(data["unpaired"]),
        "--source-domain",
        "photo",
        "--target-domain",
        "painting",
        "--steps",
        "24",
        "--checkpoint-every",
        "4",
        "--sample-every",
        "100",
    ]
    reference = tmp_path / "reference"
    from scenegan import cli

    assert cli.main([*args, "--output", str(reference)]) == 0

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "scenegan.cli", *args, "--output", str(killed)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ckpt.list_checkpoints(str(killed)) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    survived = ckpt.list_checkpoints(str(killed))
    assert survived and survived[-1][0] < 24, "the process finished before it could be killed"

    assert cli.main([*args, "--output", str(killed), "--resume"]) == 0
    assert_same_weights(final_state(reference), final_state(killed))


def test_run_directory_holds_config_stats_samples_curves_and_last_checkpoints(data, tmp_path):
    config = tiny("unpaired", data, tmp_path / "run", steps=12, keep_checkpoints=2)
    training_loop(config, progress=False)
    run = tmp_path / "run"

    assert json.loads((run / "config.json").read_text()) == config.to_json()
    records = [json.loads(line) for line in (run / "stats.jsonl").open()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]
    assert {"G_adv", "cycle", "identity", "D"} <= set(records[-1]["losses"])
    assert records[-1]["images_per_second"] > 0
    assert records[-1]["lr"]["G"] < records[0]["lr"]["G"]  # decays over the second half
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000004.png",
        "step-000008.png",
        "step-000012.png",
    ]
    assert (run / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert [step for step, _ in ckpt.list_checkpoints(str(run))] == [8, 12]


def test_resume_with_another_architecture_is_refused(data, tmp_path):
    training_loop(tiny("unpaired", data, tmp_path / "run", steps=4), progress=False)
    other = tiny("unpaired", data, tmp_path / "run", steps=8, generator="light")
    with pytest.raises(ckpt.CheckpointError, match="cannot resume: network G_AB"):
        training_loop(other, resume=True, progress=False)


def test_a_new_run_never_overwrites_an_existing_one(data, tmp_path):
    training_loop(tiny("paired", data, tmp_path / "run", steps=4), progress=False)
    with pytest.raises(ckpt.CheckpointError, match="--resume"):
        training_loop(tiny("paired", data, tmp_path / "run", steps=4), progress=False)


def test_damaged_newest_checkpoint_falls_back_to_the_previous(data, tmp_path):
    run = tmp_path / "run"
    training_loop(tiny("unconditional", data, run), progress=False)
    newest = run / "checkpoints" / "step-00000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # as if copied half-way
    state = ckpt.load_latest(str(run))
    assert state is not None and state["step"] == 4


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoints_with_code_are_refused(tmp_path):
    path = tmp_path / "checkpoints" / "step-00000001.pt"
    path.parent.mkdir()
    torch.save({"format": ckpt.FORMAT, "step": 1, "evil": Payload()}, path)
    with pytest.raises(ckpt.CheckpointError, match="not a readable checkpoint"):
        ckpt.load_checkpoint(str(path))


def test_lr_is_constant_then_decays_linearly_to_zero():
    factors = [lr_factor(s, 10, 0.5) for s in (0, 4, 5, 7, 9, 10)]
    assert factors == pytest.approx([1, 1, 1, 0.6, 0.2, 0])


def test_data_order_covers_each_epoch_once_and_ranks_split_the_global_batch():
    seen = [i for step in range(5) for i in indices_for_step(10, 4, step, seed=3, stream=0)]
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    assert seen[:10] != seen[10:20]  # reshuffled per epoch
    batch = indices_for_step(10, 4, 0, seed=3, stream=0)
    assert rank_slice(batch, 0, 2) + rank_slice(batch, 1, 2) == batch


def test_ema_tracks_weights_and_pool_mixes_history():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(2.0)
    before = ema.model.weight.clone()
    ema.update(model)
    assert torch.allclose(ema.model.weight, before + 1.0)

    pool = ImagePool(size=2)
    generator = torch.Generator().manual_seed(0)
    first = torch.zeros(2, 3, 4, 4)
    assert torch.equal(pool.query(first, generator), first)  # fills the pool
    outputs = [pool.query(torch.full((1, 3, 4, 4), float(i)), generator) for i in range(1, 40)]
    assert any(out.sum() == 0 for out in outputs)  # an old fake came back


def test_diff_augment_is_differentiable_and_reproducible():
    x = torch.rand(3, 3, 16, 16, requires_grad=True)
    policy = ("color", "translation", "cutout")
    a = diff_augment(x, policy, torch.Generator().manual_seed(1))
    b = diff_augment(x, policy, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, x)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_configs_refuse_incomplete_tasks(data, tmp_path):
    with pytest.raises(ValueError, match="source-domain"):
        resolve_config("unpaired", "tiny", data="d", output="o", target_domain="b")
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config("unpaired", "huge", data="d", output="o")
    with pytest.raises(ValueError, match="unknown augment"):
        training_loop(tiny("unpaired", data, tmp_path / "r", augment="rotate"), progress=False)


def write_ingested(root: Path, domain: str, seed: int, count: int) -> None:
    """A dataset in DESIGN.md's ingest layout, written with pyarrow the way ingest will."""
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from scenegan.dataset import image_id_for, split_for

    rows: dict[str, list] = {"train": [], "test": []}
    for path in write_scenes(root / "sources" / domain, count, width=40, height=40, seed=seed):
        data = path.read_bytes()
        image_id = image_id_for(data)
        rows[split_for(image_id, 0.25)].append(
            {
                "image_id": image_id,
                "source_uri": str(path),
                "width": 40,
                "height": 40,
                "orig_width": 40,
                "orig_height": 40,
                "orig_format": "png",
                "image": data,
                "ingested_at": datetime.datetime(2026, 11, 24, tzinfo=datetime.timezone.utc),
            }
        )
    for split, records in rows.items():
        directory = root / "dataset" / "images" / f"domain={domain}" / f"split={split}"
        directory.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(records), directory / "part-00000.parquet")


def test_trains_from_an_ingested_dataset_and_records_held_out_metrics(tmp_path):
    write_ingested(tmp_path, "photo", seed=0, count=16)
    write_ingested(tmp_path, "painting", seed=1, count=16)
    data = {"unpaired": tmp_path / "dataset"}
    config = tiny("unpaired", data, tmp_path / "run", steps=4, test_fraction=0.25)
    training_loop(config, progress=False)

    records = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").open()]
    assert set(records[-1]["metrics"]) == {"kid", "fid", "content"}

    info = export_model(str(tmp_path / "run"), str(tmp_path / "model"))
    assert info["metrics"] == records[-1]["metrics"]
    assert info["training"]["data"] == str(tmp_path / "dataset")
