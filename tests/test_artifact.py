"""Export -> load round trip of the MODEL format, and refusal of broken models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scenegan import artifact, cli
from scenegan.scenes import write_scenes
from scenegan.training import checkpoint as ckpt
from scenegan.training.export import export_model


def train_run(root: Path, name: str) -> Path:
    run = root / name
    code = cli.main(
        [
            "train",
            "--data",
            str(root / "data"),
            "--output",
            str(run),
            "--preset",
            "tiny",
            "--source-domain",
            "photo",
            "--target-domain",
            "painting",
            "--steps",
            "4",
            "--generator",
            "light",
        ]
    )
    assert code == 0
    return run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("artifact")
    write_scenes(root / "data" / "photo", 12, width=40, height=40, seed=0)
    write_scenes(root / "data" / "painting", 12, width=40, height=40, seed=1, style="cartoon")
    return train_run(root, "run")


def test_export_writes_model_json_and_loads_to_the_ema_generator(trained_run, tmp_path):
    model_dir = tmp_path / "model"
    assert cli.main(["export", "--run", str(trained_run), "--output", str(model_dir)]) == 0

    info = json.loads((model_dir / "model.json").read_text())
    assert info["architecture"] == "light" and info["task"] == "unpaired"
    assert info["training"]["steps"] == 4 and len(info["training"]["data_fingerprint"]) == 64
    assert info["stride"] == 4 and info["normalization"] == "tanh"
    loaded = artifact.load_model(str(model_dir))
    assert loaded.model_id == info["model_id"]

    state = ckpt.load_latest(str(trained_run))
    ema = state["ema"]["G_AB"]
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    reference = artifact.build_model("light", info["arguments"])
    reference.load_state_dict(ema)
    assert torch.equal(loaded.generator(x), reference.eval()(x))


def test_two_runs_with_the_same_seed_export_the_same_model(trained_run, tmp_path):
    again = train_run(trained_run.parent, "again")  # an independent run, same seed and data
    first = export_model(str(trained_run), str(tmp_path / "a"))
    second = export_model(str(again), str(tmp_path / "b"))
    assert first["model_id"] == second["model_id"]
    assert (tmp_path / "a" / "weights.pt").read_bytes() == (
        tmp_path / "b" / "weights.pt"
    ).read_bytes()


@pytest.fixture
def model_dir(trained_run, tmp_path) -> Path:
    export_model(str(trained_run), str(tmp_path / "model"))
    return tmp_path / "model"


def test_truncated_weights_are_refused(model_dir):
    weights = model_dir / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:2000])
    with pytest.raises(artifact.ModelError, match="damaged"):
        artifact.load_model(str(model_dir))


def test_tampered_weights_do_not_match_the_model_id(model_dir):
    weights = torch.load(model_dir / "weights.pt", weights_only=True)
    key = next(iter(weights))
    weights[key] = weights[key] + 1
    torch.save(weights, model_dir / "weights.pt")
    with pytest.raises(artifact.ModelError, match="does not match model_id"):
        artifact.load_model(str(model_dir))


def test_unknown_architecture_and_missing_files_are_refused(model_dir, tmp_path):
    info = json.loads((model_dir / "model.json").read_text())
    info["architecture"] = "stylegan9"
    (model_dir / "model.json").write_text(json.dumps(info))
    with pytest.raises(artifact.ModelError, match="stylegan9"):
        artifact.load_model(str(model_dir))
    with pytest.raises(artifact.ModelError, match=r"model\.json is missing"):
        artifact.load_model(str(tmp_path / "nowhere"))


def test_export_of_a_run_without_checkpoints_says_so(tmp_path):
    with pytest.raises(artifact.ModelError, match="no checkpoint"):
        export_model(str(tmp_path), str(tmp_path / "model"))
    assert cli.main(["export", "--run", str(tmp_path), "--output", str(tmp_path / "m")]) == 1


def test_train_dry_run_prints_the_resolved_config(capsys):
    code = cli.main(
        [
            "train",
            "--data",
            "d",
            "--output",
            "o",
            "--preset",
            "cyclegan",
            "--task",
            "unpaired",
            "--source-domain",
            "a",
            "--target-domain",
            "b",
            "--dry-run",
        ]
    )
    assert code == 0
    config = json.loads(capsys.readouterr().out)
    assert config["generator_args"] == {"base_channels": 64, "num_blocks": 9}
    assert config["image_size"] == 256


def test_train_reports_missing_domains_clearly(tmp_path, capsys):
    code = cli.main(
        [
            "train",
            "--data",
            str(tmp_path),
            "--output",
            str(tmp_path / "run"),
            "--preset",
            "tiny",
            "--source-domain",
            "a",
            "--target-domain",
            "b",
            "--steps",
            "1",
        ]
    )
    assert code == 1
    assert "no images for domain 'a'" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["unpaired", "unconditional"])
def test_onnx_and_torchscript_exports_match_torch_at_two_sizes(task, tmp_path):
    root = tmp_path
    write_scenes(root / "data" / "photo", 8, width=40, height=40, seed=0)
    write_scenes(root / "data" / "painting", 8, width=40, height=40, seed=1, style="cartoon")
    run, model = root / "run", root / "model"
    assert (
        cli.main(
            [
                "train",
                "--task",
                task,
                "--data",
                str(root / "data"),
                "--output",
                str(run),
                "--preset",
                "tiny",
                "--source-domain",
                "photo",
                "--target-domain",
                "painting",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    code = cli.main(
        ["export", "--run", str(run), "--output", str(model), "--onnx", "--torchscript"]
    )
    assert code == 0

    import onnxruntime

    from scenegan import exporters

    loaded = artifact.load_model(str(model))
    session = onnxruntime.InferenceSession(str(model / exporters.ONNX_FILE))
    scripted = torch.jit.load(str(model / exporters.TORCHSCRIPT_FILE))
    shapes, _ = exporters.input_spec(loaded.info)
    for shape in shapes:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = loaded.generator(x)
        onnx_out = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert (onnx_out - expected).abs().max() <= 1e-4
        assert (scripted(x) - expected).abs().max() <= 1e-4
