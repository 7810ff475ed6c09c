"""Training configuration: one frozen dataclass whose fields carry their own flag.

Each field's metadata holds its help text, choices and bounds (`option`): the
`scenegan train` flags are generated from it (`training/flags.py`) and `resolve_config`
(`training/resolve.py`) checks every value against it before anything launches. A new
field gets its flag, its validation and its place in config.json by being declared here.
Presets (named defaults) belong to the tasks (`training/tasks/`). The resolved config is
written to the run's `config.json` and stored in every checkpoint; its architecture part
must match on `--resume`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A training config that cannot run: which value, why, and what to choose instead."""


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    check: Callable[[Any], None] | None = None,
    metavar: str | None = None,
    flag: bool = True,
    flag_default: Any = None,
    required: bool = False,
) -> Any:
    """A TrainConfig field with its flag's metadata. `choices` may be a function (for
    lists that live in modules this one must not import); `minimum` / `maximum` are
    inclusive bounds and `below` an exclusive one; `check(value)` raises ValueError for
    a bad value; `flag=False`: no flag (nested arguments)."""
    metadata = {
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "below": below,
        "check": check,
        "metavar": metavar,
        "flag": flag,
        "flag_default": flag_default,
        "required": required,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _architectures(*kinds: str) -> Callable[[], tuple[str, ...]]:
    def names() -> tuple[str, ...]:
        from scenegan.models import ARCHITECTURES

        return tuple(
            name
            for name, cls in ARCHITECTURES.items()
            if getattr(cls, "kind", None) in kinds and getattr(cls, "trainable", True)
        )

    return names


def _losses() -> tuple[str, ...]:
    from scenegan.losses import ADVERSARIAL_LOSSES

    return ADVERSARIAL_LOSSES


def _augment_policy(policy: str) -> None:
    from scenegan.training.components import parse_policy

    parse_policy(policy)


@dataclass(frozen=True)
class TrainConfig:
    # The task and preset names belong to the tasks (training/tasks/), which import this
    # module: `resolve_config` checks them, and the flags list them.
    task: str = option(help="what to train", flag_default="unpaired")
    data: str = option(help="ingest output", metavar="DATASET", required=True)
    output: str = option(help="run directory", metavar="RUN", required=True)
    source_domain: str | None = option(None, "the domain translated from", metavar="NAME")
    target_domain: str | None = option(None, "the domain learnt", metavar="NAME")
    preset: str = option("small", "named defaults of the task", flag_default="small")
    # data
    image_size: int = option(128, "training crop (--load-size default: 1.12x)", minimum=8)
    load_size: int = option(144, "resize to this, then random-crop image_size", minimum=8)
    batch_size: int = option(
        1, "per process; under torchrun the global batch is N x processes", minimum=1
    )
    test_fraction: float = option(
        0.1, "held-out share of a plain folder dataset", minimum=0.0, below=1.0
    )
    # networks: architecture name + constructor arguments (see scenegan.models)
    generator: str = option(
        "resnet",
        "the generator architecture",
        choices=_architectures("image-to-image", "noise-to-image"),
    )
    generator_args: dict[str, Any] = dataclasses.field(
        default_factory=dict, metadata={"flag": False}
    )
    discriminator: str = option(
        "patchgan", "the discriminator architecture", choices=_architectures("discriminator")
    )
    discriminator_args: dict[str, Any] = dataclasses.field(
        default_factory=dict, metadata={"flag": False}
    )
    # objective
    loss: str = option("lsgan", "adversarial loss", choices=_losses)
    cycle_weight: float = option(10.0, "cycle-consistency L1 weight", minimum=0.0)
    identity_weight: float = option(
        0.5, "identity L1 weight, relative to cycle_weight (CycleGAN)", minimum=0.0
    )
    l1_weight: float = option(100.0, "L1-to-target weight", minimum=0.0)
    gp_weight: float = option(10.0, "wgan-gp gradient penalty weight", minimum=0.0)
    # A critic round's noise is drawn at step * 64 + round: fewer than 64 rounds a step.
    critic_steps: int = option(
        1, "discriminator updates per generator update", minimum=1, maximum=63
    )
    pool_size: int = option(50, "history pool of fakes per domain (0: off)", minimum=0)
    augment: str = option(
        "",
        "DiffAugment policy for small style sets, e.g. color,translation,cutout",
        check=_augment_policy,
        metavar="POLICY",
    )
    # contrastive (PatchNCE) objective
    nce_weight: float = option(1.0, "PatchNCE weight", minimum=0.0)
    nce_identity: bool = option(
        True, "also PatchNCE on G(painting) (CUT; off with weight 10: FastCUT)"
    )
    nce_patches: int = option(256, "locations compared per layer and image", minimum=2)
    nce_temperature: float = option(0.07, "PatchNCE temperature", minimum=1e-6)
    nce_dim: int = option(256, "the patch projector's embedding size", minimum=1)
    pixel_weight: float = option(
        0.0,
        "weight of a second discriminator, a PatchGAN on pixels, beside --discriminator "
        "(vision-aided GAN): it sees colours the pretrained features are blind to; 0: off",
        minimum=0.0,
    )
    saturation_weight: float = option(
        0.0,
        "weight of the penalty on generator logits past tanh's useful range (pixels locked "
        "in pure colour); 0: off",
        minimum=0.0,
    )
    tv_weight: float = option(
        0.0,
        "weight of the total variation of G's outputs (flat colour, sharp outlines: removes "
        "photo texture and stripes); 0: off",
        minimum=0.0,
    )
    structure_weight: float = option(
        0.0,
        "weight of the L1 distance between the coarse (8x8-cell) luminance of G(a) and a: "
        "colour and fine detail free, no blobs painted over the scene; 0: off",
        minimum=0.0,
    )
    style_weight: float = option(
        0.0,
        "weight of the distance between the per-channel mean and spread of frozen "
        "EfficientNet-Lite1 features (strides 4, 8, 16) of G(a) and of the paintings "
        "(AdaIN's style statistics): the paintings' colours and marks everywhere, no "
        "objects; 0: off",
        minimum=0.0,
    )
    content_weight: float = option(
        0.0,
        "weight of the L1 distance between frozen EfficientNet-Lite1 features (stride 16) "
        "of the low-passed G(a) and of the low-passed photo: what is where stays (no "
        "grass painted over rocks), while colours, flat fills and outlines are free; 0: off",
        minimum=0.0,
    )
    palette_weight: float = option(
        0.0,
        "weight of the sliced Wasserstein distance between the pixel colours of G(a) and "
        "of the step's paintings: no colour the paintings do not have (neon fills that fool "
        "the pretrained features); 0: off",
        minimum=0.0,
    )
    # optimisation
    steps: int = option(10_000, "training steps", minimum=1)
    lr_generator: float = option(2e-4, "generator learning rate", minimum=0.0)
    lr_discriminator: float = option(2e-4, "discriminator learning rate", minimum=0.0)
    beta1: float = option(0.5, "Adam beta1", minimum=0.0, below=1.0)
    beta2: float = option(0.999, "Adam beta2", minimum=0.0, below=1.0)
    decay_start: float = option(
        0.5, "fraction of steps at constant lr before linear decay to 0", minimum=0.0, maximum=1.0
    )
    ema_decay: float = option(0.999, "EMA decay of the exported generator", minimum=0.0, below=1.0)
    ema_rampup: float = option(
        0.05,
        "EMA half-life at most this x steps done (StyleGAN2-ADA; 0: off)",
        minimum=0.0,
    )
    seed: int = option(0, "seeds initialisation, data order and every random draw", minimum=0)
    amp: str = option(
        "auto",
        "precision: auto (bf16/fp16 autocast on CUDA, off on CPU) | bf16 | fp16 | off | fp64 "
        "(float64 throughout: exact comparisons)",
        choices=("auto", "bf16", "fp16", "off", "fp64"),
    )
    # bookkeeping
    log_every: int = option(10, "stats record every N steps", minimum=1)
    sample_every: int = option(500, "sample grid every N steps", minimum=1)
    checkpoint_every: int = option(500, "checkpoint every N steps", minimum=1)
    keep_checkpoints: int = option(3, "checkpoints kept (0: all)", minimum=0)
    eval_every: int = option(
        0, "held-out metrics every N steps (0: at the end; -1: never)", minimum=-1
    )
    reader: str = option(
        "auto",
        "stream an ingested dataset's row groups (auto: stream when --data is ingested and "
        "the task can) or read every image into memory",
        choices=("auto", "memory", "stream"),
    )
    loader_workers: int = option(2, "streaming reader: DataLoader workers per process", minimum=0)
    shuffle_buffer: int = option(
        512, "streaming reader: encoded images held for shuffling, per worker", minimum=1
    )

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
