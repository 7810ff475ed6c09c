"""The `scenegan` command contract: every command parses, built ones work, the rest say so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scenegan import cli

CONTRACT_FLAGS = {
    "ingest": ["--input", "--domain", "--output", "--size"],
    "train": [
        "--data",
        "--output",
        "--task",
        "--source-domain",
        "--target-domain",
        "--preset",
        "--steps",
        "--resume",
    ],
    "export": ["--run", "--output"],
    "stylize": ["--model", "--input", "--output"],
    "generate": ["--model", "--count", "--output"],
    "demo": ["--output"],
}


def test_top_level_help_lists_every_contract_command(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in CONTRACT_FLAGS:
        assert command in out


@pytest.mark.parametrize("command", sorted(CONTRACT_FLAGS))
def test_each_command_documents_its_contract_flags(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for flag in CONTRACT_FLAGS[command]:
        assert flag in out


def test_beam_options_are_only_accepted_by_beam_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["train", "--data", "d", "--output", "o", "--runner", "DirectRunner"])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_scenes_command_writes_the_embedded_data(tmp_path, capsys):
    assert (
        cli.main(
            [
                "scenes",
                "--output",
                str(tmp_path),
                "--count",
                "3",
                "--size",
                "40",
                "--style",
                "painting",
            ]
        )
        == 0
    )
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_demo_runs_data_training_export_and_scoring(tmp_path, capsys):
    args = ["demo", "--scenes", "--output", str(tmp_path), "--count", "12", "--size", "40"]
    args += ["--steps", "4"]
    assert cli.main(args) == 0
    assert len(list((tmp_path / "scenes" / "photo").glob("*.png"))) == 12
    assert len(list((tmp_path / "scenes" / "painting").glob("*.png"))) == 12
    assert (tmp_path / "preview.png").stat().st_size > 0
    assert (tmp_path / "model" / "model.json").exists()
    assert (tmp_path / "stylized.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "PSNR to the true 'painting'" in out
    assert "stylize summary" in out  # the Beam stylize pipeline ran over unseen scenes
    assert list((tmp_path / "stylized" / "images").glob("*.png"))
    assert list((tmp_path / "stylized" / "report").glob("contact-*.png"))
    latest = json.loads((tmp_path / "registry" / "photo-to-painting" / "latest").read_text())
    assert latest["version"] == "v0001" and "psnr" in latest["metrics"]
    assert "stylized: 12 ok, 0 skipped, 0 rejected" in out and "contact sheet: " in out


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("scenegan")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scenegan ")
