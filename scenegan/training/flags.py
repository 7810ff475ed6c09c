"""The `scenegan train` training flags (what a run is) and the config they resolve to."""

from __future__ import annotations

import argparse
from typing import Any

from scenegan.training.config import PRESETS, TASKS, TrainConfig


def add_training_arguments(group: Any) -> None:
    group.add_argument("--data", required=True, metavar="DATASET", help="ingest output")
    group.add_argument("--output", required=True, metavar="RUN", help="run directory")
    group.add_argument("--task", choices=TASKS, default="unpaired")
    group.add_argument("--source-domain", metavar="NAME")
    group.add_argument("--target-domain", metavar="NAME")
    group.add_argument("--preset", default="small", metavar="NAME", help=" | ".join(PRESETS))
    group.add_argument("--steps", type=int, metavar="N")
    group.add_argument(
        "--resume", action="store_true", help="continue from the run's last checkpoint"
    )
    group.add_argument(
        "--generator",
        choices=("resnet", "light", "unet"),
        help="image-to-image generator (default: the preset's)",
    )
    group.add_argument("--loss", choices=("lsgan", "bce", "wgan-gp", "hinge"))
    group.add_argument(
        "--augment",
        metavar="POLICY",
        help="DiffAugment policy for small style sets, e.g. color,translation,cutout",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="per process; under torchrun the global batch is N x processes",
    )
    group.add_argument(
        "--pool-size", type=int, metavar="N", help="history pool of fakes per domain (0: off)"
    )
    group.add_argument("--image-size", type=int, metavar="PX")
    group.add_argument("--seed", type=int)
    group.add_argument("--amp", choices=("auto", "bf16", "fp16", "off", "fp64"))
    group.add_argument("--checkpoint-every", type=int, metavar="N")
    group.add_argument("--sample-every", type=int, metavar="N")
    group.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="held-out metrics every N steps (0: at the end; -1: never)",
    )
    group.add_argument(
        "--reader",
        choices=("auto", "memory", "stream"),
        help="stream an ingested dataset's row groups (auto: stream when --data "
        "is ingested and the task is not paired) or read every image into memory",
    )
    group.add_argument("--loader-workers", type=int, metavar="N", help="streaming reader workers")
    group.add_argument("--shuffle-buffer", type=int, metavar="N", help="streaming shuffle buffer")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from scenegan.training.config import resolve_config

    overrides = {
        "data": args.data,
        "output": args.output,
        "source_domain": args.source_domain,
        "target_domain": args.target_domain,
        "steps": args.steps,
        "loss": args.loss,
        "augment": args.augment,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "pool_size": args.pool_size,
        "amp": args.amp,
        "checkpoint_every": args.checkpoint_every,
        "sample_every": args.sample_every,
        "eval_every": args.eval_every,
        "reader": args.reader,
        "loader_workers": args.loader_workers,
        "shuffle_buffer": args.shuffle_buffer,
    }
    if args.image_size:
        overrides.update(image_size=args.image_size, load_size=round(args.image_size * 1.12))
    if args.generator:
        overrides["generator"] = args.generator
    return resolve_config(args.task, args.preset, **overrides)
