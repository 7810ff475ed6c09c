"""The file layer on local paths and on gs:// against a real GCS emulator."""

from __future__ import annotations

import uuid

import pytest
import torch

from scenegan import artifact, cli, storage
from scenegan.scenes import write_scenes
from scenegan.training import checkpoint as ckpt


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path)
    bucket = request.getfixturevalue("gcs_bucket")
    return f"{bucket}/{uuid.uuid4().hex[:8]}"  # a fresh prefix per test


def test_write_read_list_delete_round_trip(root):
    storage.write_bytes(storage.join(root, "a", "one.bin"), b"1")
    storage.write_bytes(storage.join(root, "a", "two.bin"), b"22")
    storage.write_bytes(storage.join(root, "a", "two.bin"), b"222")  # replaced whole
    assert storage.read_bytes(storage.join(root, "a", "two.bin")) == b"222"
    assert [u.rsplit("/", 1)[1] for u in storage.list_files(storage.join(root, "a"))] == [
        "one.bin",
        "two.bin",
    ]
    storage.delete(storage.join(root, "a", "one.bin"))
    assert not storage.exists(storage.join(root, "a", "one.bin"))
    assert storage.list_files(storage.join(root, "missing")) == []
    with pytest.raises(FileNotFoundError, match="no such file"):
        storage.read_bytes(storage.join(root, "missing.bin"))


def test_local_writes_leave_no_temporary_files(tmp_path):
    storage.write_bytes(str(tmp_path / "x.bin"), b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_unknown_schemes_are_refused():
    with pytest.raises(ValueError, match="s3://"):
        storage.resolve("s3://bucket/key")


def test_train_checkpoint_resume_and_export_on_gcs(gcs_bucket, tmp_path):
    write_scenes(tmp_path / "photo", 8, width=40, height=40, seed=0)
    write_scenes(tmp_path / "painting", 8, width=40, height=40, seed=1, style="painting")
    for domain in ("photo", "painting"):  # the data lives in the bucket too
        for path in (tmp_path / domain).iterdir():
            storage.write_bytes(f"{gcs_bucket}/data/{domain}/{path.name}", path.read_bytes())
    run, model = f"{gcs_bucket}/runs/one", f"{gcs_bucket}/models/one"
    args = [
        "train",
        "--data",
        f"{gcs_bucket}/data",
        "--output",
        run,
        "--preset",
        "tiny",
        "--source-domain",
        "photo",
        "--target-domain",
        "painting",
        "--checkpoint-every",
        "2",
    ]
    assert cli.main([*args, "--steps", "2"]) == 0
    assert cli.main([*args, "--steps", "4", "--resume"]) == 0  # continues from gs://
    assert [step for step, _ in ckpt.list_checkpoints(run)] == [2, 4]
    assert storage.exists(f"{run}/stats.jsonl") and storage.exists(f"{run}/curves.png")

    assert cli.main(["export", "--run", run, "--output", model]) == 0
    loaded = artifact.load_model(model)
    with torch.no_grad():
        assert loaded.generator(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
