"""Training configuration: one frozen dataclass, named presets, and its resolution.

`resolve_config(task, preset, **overrides)` = preset defaults for the task, then the
explicit overrides. The resolved config is written to the run's `config.json` and stored
in every checkpoint; its architecture part must match on `--resume`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

TASKS = ("unpaired", "paired", "unconditional", "contrastive")


@dataclass(frozen=True)
class TrainConfig:
    task: str
    data: str
    output: str
    source_domain: str | None = None
    target_domain: str | None = None
    preset: str = "small"
    # data
    image_size: int = 128
    load_size: int = 144  # resize to this, then random-crop image_size (jitter)
    batch_size: int = 1
    test_fraction: float = 0.1
    # networks: architecture name + constructor arguments (see scenegan.models)
    generator: str = "resnet"
    generator_args: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "patchgan"
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    # objective
    loss: str = "lsgan"
    cycle_weight: float = 10.0
    identity_weight: float = 0.5  # relative to cycle_weight, as in CycleGAN
    l1_weight: float = 100.0  # paired
    gp_weight: float = 10.0  # wgan-gp
    critic_steps: int = 1  # discriminator updates per generator update
    pool_size: int = 50
    augment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout"
    # contrastive (PatchNCE) objective
    nce_weight: float = 1.0
    nce_identity: bool = True  # also PatchNCE on G(painting) (CUT; False + weight 10: FastCUT)
    nce_patches: int = 256  # locations compared per layer and image
    nce_temperature: float = 0.07
    nce_dim: int = 256  # the patch projector's embedding size
    # optimisation
    steps: int = 10_000
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of steps at constant lr before linear decay to 0
    ema_decay: float = 0.999
    ema_rampup: float = 0.05  # EMA half-life <= this x steps done (StyleGAN2-ADA); 0: off
    seed: int = 0
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, off on CPU) | bf16 | fp16 | off | fp64
    # bookkeeping
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 0  # held-out metrics every N steps (0: only at the end); -1: never
    reader: str = "auto"  # memory | stream | auto (stream for ingested datasets, unpaired/uncond.)
    loader_workers: int = 2  # DataLoader worker processes per rank for the streaming reader
    shuffle_buffer: int = 512  # encoded images held for shuffling, per worker

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def architecture(self) -> dict[str, Any]:
        """What must not change across a resume: the networks and the task."""
        return {
            "task": self.task,
            "image_size": self.image_size,
            "generator": self.generator,
            "generator_args": self.generator_args,
            "discriminator": self.discriminator,
            "discriminator_args": self.discriminator_args,
        }

    def config_hash(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_IMAGE_TO_IMAGE = {
    "tiny": dict(
        image_size=32,
        load_size=36,
        batch_size=4,
        generator="resnet",
        generator_args=dict(base_channels=16, num_blocks=3),
        discriminator_args=dict(base_channels=16, num_layers=2),
        steps=2500,
        sample_every=500,
        checkpoint_every=500,
        log_every=10,
        ema_decay=0.99,
        lr_generator=4e-4,
        lr_discriminator=4e-4,  # small nets, short runs: measured better
    ),
    "small": dict(
        image_size=128,
        load_size=144,
        batch_size=1,
        generator="resnet",
        generator_args=dict(base_channels=32, num_blocks=6),
        discriminator_args=dict(base_channels=32, num_layers=3),
        steps=20_000,
    ),
    "cyclegan": dict(
        image_size=256,
        load_size=286,
        batch_size=1,
        generator="resnet",
        generator_args=dict(base_channels=64, num_blocks=9),
        discriminator_args=dict(base_channels=64, num_layers=3),
        steps=200_000,
    ),
}

# Contrastive (CUT) presets. "fewshot" is the recipe for real photos and a few dozen
# paintings, chosen by measurement (README, "Few-shot style"): a generator that starts at
# the identity and upsamples without transposed convolutions, the projected discriminator
# on frozen Lite1 features with hinge loss, DiffAugment on everything D sees.
_CONTRASTIVE = {
    "tiny": dict(
        image_size=32,
        load_size=36,
        batch_size=2,
        generator="resnet",
        generator_args=dict(base_channels=16, num_blocks=3, residual=True, upsample="nearest"),
        discriminator="projected",
        discriminator_args=dict(head_channels=16),
        loss="hinge",
        augment="translation,cutout",
        nce_patches=64,
        steps=300,
        sample_every=100,
        checkpoint_every=100,
        pool_size=0,
        decay_start=0.5,
    ),
    "fewshot": dict(
        image_size=128,
        load_size=144,
        batch_size=1,
        generator="resnet",
        generator_args=dict(base_channels=32, num_blocks=6, residual=True, upsample="nearest"),
        discriminator="projected",
        discriminator_args=dict(head_channels=64),
        loss="hinge",
        augment="translation,cutout",
        steps=4000,
        sample_every=500,
        checkpoint_every=500,
        pool_size=0,
        decay_start=0.5,
    ),
}

_UNCONDITIONAL = {
    "tiny": dict(
        image_size=32,
        load_size=32,
        batch_size=16,
        loss="bce",
        generator_args=dict(latent_dim=32, image_size=32, base_channels=16),
        discriminator_args=dict(image_size=32, base_channels=16),
        steps=400,
        sample_every=100,
        checkpoint_every=100,
        ema_decay=0.99,
    ),
    "small": dict(
        image_size=64,
        load_size=64,
        batch_size=32,
        loss="bce",
        generator_args=dict(latent_dim=128, image_size=64, base_channels=32),
        discriminator_args=dict(image_size=64, base_channels=32),
        steps=20_000,
    ),
    "cyclegan": dict(  # the big preset: DCGAN at 128 px
        image_size=128,
        load_size=128,
        batch_size=64,
        loss="bce",
        generator_args=dict(latent_dim=128, image_size=128, base_channels=64),
        discriminator_args=dict(image_size=128, base_channels=64),
        steps=100_000,
    ),
}

PRESETS = (*_IMAGE_TO_IMAGE, *(p for p in _CONTRASTIVE if p not in _IMAGE_TO_IMAGE))


def preset_defaults(task: str, preset: str) -> dict[str, Any]:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    if task == "contrastive":
        if preset not in _CONTRASTIVE:
            raise ValueError(
                f"preset {preset!r} is not one for task contrastive; "
                f"choose one of {tuple(_CONTRASTIVE)}"
            )
        return {
            **_CONTRASTIVE[preset],
            "generator_args": dict(_CONTRASTIVE[preset]["generator_args"]),
        }
    if preset not in _IMAGE_TO_IMAGE:
        raise ValueError(
            f"preset {preset!r} is for --task contrastive; for {task} choose one of "
            f"{tuple(_IMAGE_TO_IMAGE)}"
        )
    if task == "unconditional":
        values = dict(_UNCONDITIONAL[preset])
        values.update(
            generator="dcgan_generator",
            discriminator="dcgan_discriminator",
            lr_generator=2e-4,
            lr_discriminator=2e-4,
            decay_start=1.0,
        )
        return values
    values = dict(_IMAGE_TO_IMAGE[preset])
    if task == "paired":
        values.update(generator="unet", pool_size=0)
        values["generator_args"] = generator_arguments("unet", values)
    return values


def generator_arguments(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Arguments for generator `name` at the preset's width (and depth, for U-Net: down
    to 1x1 at the training size, as pix2pix does). A preset's generator that starts at
    the identity (`residual`) keeps doing so when the light generator replaces it."""
    preset_args = values.get("generator_args", {})
    width = preset_args.get("base_channels", 32)
    if name == "unet":
        return {
            "base_channels": width,
            "num_downs": max(2, int(values["image_size"]).bit_length() - 1),
        }
    if name == values.get("generator"):
        return dict(preset_args)
    if name in ("resnet", "light") and "residual" in preset_args:
        return {"base_channels": width, "residual": preset_args["residual"]}
    return {"base_channels": width}


def resolve_config(task: str, preset: str, **overrides: Any) -> TrainConfig:
    """Preset defaults for `task`, then `overrides` (None values are ignored)."""
    values = preset_defaults(task, preset)
    chosen = overrides.get("generator")
    if chosen and "generator_args" not in overrides and task != "unconditional":
        values["generator_args"] = generator_arguments(chosen, values)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("loss") == "wgan-gp":
        values.setdefault("critic_steps", 5)
        if values.get("discriminator") == "dcgan_discriminator":
            # Batch norm mixes samples, which the per-sample gradient penalty assumes not.
            values["discriminator_args"] = {**values["discriminator_args"], "norm": "none"}
        values.setdefault("beta1", 0.0)
        values.setdefault("beta2", 0.9)
    config = TrainConfig(task=task, preset=preset, **values)
    _validate(config)
    return config


def _validate(config: TrainConfig) -> None:
    if config.task in ("unpaired", "paired", "contrastive"):
        if not (config.source_domain and config.target_domain):
            raise ValueError(f"task {config.task} needs --source-domain and --target-domain")
    elif not config.target_domain:
        raise ValueError("task unconditional needs --target-domain (the images to generate)")
    if config.load_size < config.image_size:
        raise ValueError(f"load_size {config.load_size} < image_size {config.image_size}")
    if config.steps < 1 or config.batch_size < 1:
        raise ValueError("steps and batch_size must be at least 1")
    if config.task == "contrastive":
        if config.loss == "wgan-gp":
            raise ValueError(
                "task contrastive: use --loss hinge, lsgan or bce (no gradient penalty)"
            )
        if config.generator not in ("resnet", "light"):
            raise ValueError(
                f"task contrastive reads the generator's encoder: use resnet or light, "
                f"not {config.generator}"
            )
        if config.nce_patches < 2 or config.nce_temperature <= 0:
            raise ValueError("nce_patches must be at least 2 and nce_temperature positive")
