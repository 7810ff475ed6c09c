"""Training config: one source for each flag (TrainConfig's field metadata), every value
checked before anything launches, and tasks that declare their own pieces."""

from __future__ import annotations

import dataclasses
import json

import pytest

from scenegan import artifact, cli
from scenegan.models import ARCHITECTURES, build_model
from scenegan.training import flags
from scenegan.training.config import ConfigError, TrainConfig
from scenegan.training.resolve import resolve_config
from scenegan.training.tasks import TASKS, Task

BASE = ["train", "--data", "d", "--output", "o", "--source-domain", "a", "--target-domain", "b"]


def test_every_config_field_is_a_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    shown = capsys.readouterr().out
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        assert (flag in shown) == field.metadata.get("flag", True), flag


def test_flags_reach_the_config_unchanged(capsys):
    argv = [*BASE, "--preset", "tiny", "--critic-steps", "3", "--lr-generator", "0.001"]
    assert cli.main([*argv, "--image-size", "48", "--augment", "color", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["critic_steps"] == 3 and config["lr_generator"] == 0.001
    assert config["image_size"] == 48 and config["load_size"] == 54  # 1.12x unless given
    assert config["augment"] == "color" and config["batch_size"] == 4  # the preset's


def test_an_unknown_augment_policy_is_refused_with_the_valid_ones(capsys):
    assert cli.main([*BASE, "--dry-run", "--augment", "rotate"]) == 2
    error = capsys.readouterr().err
    assert "--augment 'rotate'" in error
    assert all(policy in error for policy in ("color", "translation", "cutout"))


@pytest.mark.parametrize(
    ("task", "values", "message"),
    [
        ("unconditional", {"critic_steps": 64}, "--critic-steps 64: must be at most 63"),
        ("unpaired", {"amp": "fp8"}, "choose one of auto, bf16, fp16, off"),
        ("unpaired", {"reader": "disk"}, "--reader 'disk'"),
        ("unpaired", {"loss": "l2"}, "--loss 'l2'"),
        ("unpaired", {"batch_size": 0}, "--batch-size 0: must be at least 1"),
        ("unpaired", {"ema_decay": 1.0}, "--ema-decay 1.0: must be below 1.0"),
        ("unpaired", {"image_size": 64, "load_size": 48}, "load_size 48 < image_size 64"),
        ("unpaired", {"generator": "dcgan_generator"}, "needs a generator of kind image-to"),
        ("paired", {"reader": "stream"}, "reads its images into memory"),
        ("unpaired", {"target_domain": None}, "needs --target-domain"),
        ("bogus", {}, "unknown task 'bogus'; choose one of unpaired, paired"),
    ],
)
def test_bad_values_are_refused_before_anything_launches(task, values, message):
    arguments = {"data": "d", "output": "o", "source_domain": "a", "target_domain": "b"}
    arguments.update(values)
    if arguments["target_domain"] is None:
        del arguments["target_domain"]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolve_config(task, "tiny", **arguments)
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        resolve_config("unpaired", "huge", data="d", output="o")


def test_tasks_declare_their_pieces():
    option_names = {field.name for field in dataclasses.fields(TrainConfig)}
    for name, task in TASKS.items():
        assert issubclass(task, Task) and task.name == name
        assert set(task.domains) <= {"A", "B"} and "B" in task.domains
        assert set(task.options) <= option_names
        for preset in task.presets:
            config = resolve_config(
                name, preset, data="d", output="o", source_domain="a", target_domain="b"
            )
            assert ARCHITECTURES[config.generator].kind == task.generator_kind
    assert flags.TASK_CHOICES["task"] == tuple(TASKS)


@pytest.mark.parametrize(
    ("architecture", "arguments", "kind"),
    [
        ("resnet", {"base_channels": 4, "num_blocks": 1}, "image-to-image"),
        ("dcgan_generator", {"latent_dim": 8, "image_size": 16, "base_channels": 4}, "noise"),
    ],
)
def test_model_json_records_the_generator_kind(tmp_path, architecture, arguments, kind):
    info = artifact.save_model(
        str(tmp_path / "m"),
        build_model(architecture, arguments),
        task="anything",
        image_size=16,
        source_domain=None,
        target_domain="b",
        training={},
        metrics={},
    )
    assert info["kind"].startswith(kind)
    loaded = artifact.load_model(str(tmp_path / "m"))
    assert loaded.kind == info["kind"] and loaded.generates_from_noise == (kind == "noise")
