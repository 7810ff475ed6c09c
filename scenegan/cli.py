"""The `scenegan` command: one thin parser per stage, dispatching to the library.

The command names and flags are a contract (see DESIGN.md): scripts and schedules call
them. Errors are printed as one line saying what was wrong; usage errors exit 2, failed
work exits 1, and a preempted training run exits 143 after checkpointing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from scenegan import __version__
from scenegan.training.config import ConfigError

BEAM_EPILOG = (
    "Any Apache Beam pipeline option is accepted too, e.g. --runner DataflowRunner "
    "--project P --region R --temp_location gs://BUCKET/tmp submits the same job to Dataflow."
)


class UsageError(ValueError):
    """Flags that parse but do not make sense together; reported like argparse errors."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_beam_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra
    args.pipeline_argv = argv[argv.index(args.command) + 1 :]  # everything after the command
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ConfigError) as error:
        print(f"scenegan {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        # Our own errors (bad data, checkpoint or model) say what to do: show them plainly.
        print(f"scenegan {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scenegan",
        description="GAN stylization of natural-scene images: ingest -> train -> export -> "
        "stylize, locally or on Google Cloud.",
    )
    parser.add_argument("--version", action="version", version=f"scenegan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, add_arguments, handler, beam) in _COMMANDS.items():
        sub = commands.add_parser(
            name, help=summary, description=summary, epilog=BEAM_EPILOG if beam else None
        )
        add_arguments(sub)
        sub.set_defaults(handler=handler, accepts_beam_options=beam)
    return parser


# --- argument sets ------------------------------------------------------------------


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    from pipelines.options import IngestOptions, add_arguments

    add_arguments(parser, IngestOptions)  # one parser: the pipeline's own options


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from scenegan.training.launch import add_arguments

    add_arguments(parser)  # training flags + launch flags (local | torchrun | vertex)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN")
    parser.add_argument("--output", required=True, metavar="MODEL")
    parser.add_argument(
        "--onnx", action="store_true", help="also write generator.onnx (verified against torch)"
    )
    parser.add_argument(
        "--torchscript",
        action="store_true",
        help="also write generator.torchscript.pt (verified against torch)",
    )


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=("cyclegan",))
    parser.add_argument(
        "--weights",
        required=True,
        metavar="FILE",
        help="e.g. latest_net_G.pth or style_monet.pth (a state_dict)",
    )
    parser.add_argument("--output", required=True, metavar="MODEL")
    parser.add_argument("--source-domain", metavar="NAME", help="recorded in model.json")
    parser.add_argument("--target-domain", metavar="NAME", help="recorded in model.json")


def _stylize_arguments(parser: argparse.ArgumentParser) -> None:
    from pipelines.options import StylizeOptions, add_arguments

    add_arguments(parser, StylizeOptions)


def _stylize(args: argparse.Namespace) -> int:
    from pipelines import stylize

    stylize.run(args.pipeline_argv)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from pipelines import stylize

    stylize.run(args.pipeline_argv, generate=True)
    return 0


def _registry_arguments(parser: argparse.ArgumentParser) -> None:
    from scenegan.registry import DEFAULT_METRIC, LOWER_IS_BETTER

    parser.add_argument("action", choices=("list", "promote"))
    parser.add_argument("registry", metavar="REGISTRY", help="a local folder or gs:// prefix")
    parser.add_argument("--name", metavar="NAME", help="the model's name (list: only this one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", metavar="RUN", help="promote: a training run's latest checkpoint")
    source.add_argument("--model", metavar="MODEL", help="promote: an exported MODEL")
    parser.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        choices=sorted(LOWER_IS_BETTER),
        help="promote: the quality metric it must not make worse (default: kid)",
    )
    parser.add_argument(
        "--force", action="store_true", help="promote: even when the metric is worse"
    )
    parser.add_argument("--json", action="store_true", help="list: print JSON rows")


def _registry(args: argparse.Namespace) -> int:
    import json

    from scenegan import registry

    if args.action == "list":
        rows = registry.list_registry(args.registry, args.name)
        print(json.dumps(rows, indent=2) if args.json else registry.format_rows(rows))
        return 0
    if not (args.run or args.model):
        raise UsageError("promote needs --run RUN or --model MODEL")
    name = args.name or _default_name(args.run, args.model)
    promotion = registry.promote(
        args.registry, name, run=args.run, model=args.model, metric=args.metric, force=args.force
    )
    print(
        f"{name} {promotion.version}: {promotion.message} -> {promotion.uri}"
        f"{'' if promotion.latest else ' (latest unchanged)'}"
    )
    return 0


def _default_name(run: str | None, model: str | None) -> str:
    """NAME from the run's or model's domains, e.g. photo-to-painting."""
    from scenegan import artifact, registry
    from scenegan.training import checkpoint as ckpt

    if run:
        state = ckpt.load_latest(run)
        if state is None:
            raise UsageError(f"{run} has no checkpoint; train it first")
        source, target = state["config"].get("source_domain"), state["config"]["target_domain"]
    else:
        info = artifact.read_model_info(str(model))
        source, target = info.get("source_domain"), info.get("target_domain")
    return registry.model_name(source, target)


def _scene_arguments(parser: argparse.ArgumentParser) -> None:
    from scenegan.styles import STYLES

    parser.add_argument("--output", required=True, metavar="DIR")
    parser.add_argument("--count", type=int, default=64, metavar="N")
    parser.add_argument("--size", type=int, default=256, metavar="PX", help="square side")
    parser.add_argument("--seed", type=int, default=0, help="scene stream; same seed = same bytes")
    parser.add_argument(
        "--style",
        choices=sorted(STYLES),
        help="apply this known-answer style transform to every scene",
    )


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from scenegan.styles import STYLES

    parser.add_argument("--output", default="demo-output", metavar="DIR")
    parser.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="training steps (real photos: default 300, about 5 minutes on 2 cores; "
        "--scenes: 0 only makes the data, default the tiny preset's 2,500, the "
        "configuration tests/test_quality.py holds to +3 dB)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=256,
        metavar="PX",
        help="real photos: stylize the held-out photos at this size (default: 256)",
    )
    scenes = parser.add_argument_group("procedural scenes (--scenes)")
    scenes.add_argument(
        "--scenes",
        action="store_true",
        help="the known-answer demo on generated 32 px scenes instead of the bundled photos",
    )
    scenes.add_argument(
        "--count", type=int, default=200, metavar="N", help="scenes per domain (default: 200)"
    )
    scenes.add_argument(
        "--size", type=int, default=32, metavar="PX", help="scene size (default: 32)"
    )
    scenes.add_argument("--style", choices=sorted(STYLES), default="painting")


# --- handlers -----------------------------------------------------------------------


def _ingest(args: argparse.Namespace) -> int:
    from pipelines import ingest

    ingest.run(args.pipeline_argv)
    return 0


def _train(args: argparse.Namespace) -> int:
    from scenegan.training import launch

    return launch.run(args.pipeline_argv)


def _export(args: argparse.Namespace) -> int:
    from scenegan.training.export import export_model

    info = export_model(args.run, args.output)
    if args.onnx or args.torchscript:
        from scenegan import exporters
        from scenegan.artifact import load_model

        generator = load_model(args.output).generator
        for wanted, write in (
            (args.onnx, exporters.export_onnx),
            (args.torchscript, exporters.export_torchscript),
        ):
            if wanted:
                difference = write(generator, args.output, info)
                print(f"{write.__name__}: max difference to torch {difference:.1e}")
    print(
        f"exported {info['architecture']} ({info['task']}, step {info['training']['steps']}) "
        f"to {args.output} as model_id {info['model_id'][:16]}"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    from scenegan.importers import import_cyclegan

    info = import_cyclegan(
        args.weights,
        args.output,
        source_domain=args.source_domain,
        target_domain=args.target_domain,
    )
    arguments = info["arguments"]
    print(
        f"imported a {arguments['num_blocks']}-block CycleGAN ResNet generator to "
        f"{args.output} as model_id {info['model_id'][:16]}"
    )
    return 0


def _scenes(args: argparse.Namespace) -> int:
    from scenegan.scenes import write_scenes

    paths = write_scenes(
        args.output,
        args.count,
        width=args.size,
        height=args.size,
        seed=args.seed,
        style=args.style,
    )
    print(f"wrote {len(paths)} scenes to {args.output}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.scenes:
        from scenegan.demo import run_demo

        run_demo(
            Path(args.output), count=args.count, size=args.size, style=args.style, steps=args.steps
        )
        return 0
    from scenegan.photo_demo import DEMO_STEPS, run_photo_demo

    run_photo_demo(Path(args.output), steps=args.steps or DEMO_STEPS, max_side=args.max_side)
    return 0


_Command = tuple[
    str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], bool
]

_COMMANDS: dict[str, _Command] = {
    "ingest": (
        "Ingest images into a Parquet scene dataset (Beam).",
        _ingest_arguments,
        _ingest,
        True,
    ),
    "train": ("Train a GAN on a scene dataset.", _train_arguments, _train, False),
    "export": (
        "Export a training run's EMA generator as a MODEL.",
        _export_arguments,
        _export,
        False,
    ),
    "import": (
        "Import a generator trained elsewhere as a MODEL.",
        _import_arguments,
        _import,
        False,
    ),
    "stylize": (
        "Stylize images with a MODEL (Beam RunInference).",
        _stylize_arguments,
        _stylize,
        True,
    ),
    "generate": (
        "Generate scenes from an unconditional MODEL (Beam).",
        _stylize_arguments,
        _generate,
        True,
    ),
    "registry": (
        "List or promote versioned models in a registry.",
        _registry_arguments,
        _registry,
        False,
    ),
    "scenes": (
        "Write procedural natural scenes (the embedded dataset).",
        _scene_arguments,
        _scenes,
        False,
    ),
    "demo": (
        "End-to-end demo: the bundled real photos -> paintings (or --scenes).",
        _demo_arguments,
        _demo,
        False,
    ),
}


if __name__ == "__main__":
    sys.exit(main())
