"""The Flex Template entry point: one image launches both pipelines, ingest and stylize.

Dataflow's Python template launcher runs FLEX_TEMPLATE_PYTHON_PY_FILE (this file) with each
template parameter as one `--name=value` argument, plus the launch's Beam options. A
container has one such file, so both templates name their pipeline with the `pipeline`
parameter (`ingest` or `stylize`; each template's metadata allows only its own).

Template parameters are named after the pipeline's flags with `-` written as `_`
(`--max-side` -> `max_side`, `--input` -> `input`, `--format` -> `format`), and a switch
such as `--crop` takes `true` or `false`. This module turns them back into the pipeline's
own command line, which its parser (`pipelines/options.py`) reads as from any user.
`deploy/flex_templates.py` writes the metadata from the same table, and
`tests/test_deploy.py` parses every parameter through here into the real parser.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import IngestOptions, StylizeOptions, add_arguments

OPTIONS = {"ingest": IngestOptions, "stylize": StylizeOptions}
PIPELINE_PARAMETER = "pipeline"
# Beam options either template also declares as parameters: the worker image and the GPU
# settings of DESIGN's "one model per GPU" stylize job. Passed through under Beam's names.
BEAM_PARAMETERS = (
    "sdk_container_image",
    "dataflow_service_options",
    "number_of_worker_harness_threads",
)
# Set in the image at build time (deploy/build_image.sh): the image's own name, used as the
# workers' image when a launch names none, so launcher and workers run the same code.
IMAGE_VARIABLE = "SCENEGAN_IMAGE"


@dataclass(frozen=True)
class Flag:
    """One pipeline flag as a template parameter."""

    name: str  # the template parameter
    option: str  # the flag the pipeline's parser accepts, e.g. --max-side
    action: argparse.Action

    @property
    def is_switch(self) -> bool:
        return self.action.nargs == 0  # store_true: no value on the command line


def parameter_name(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def flags(pipeline: str) -> list[Flag]:
    """The pipeline's own flags (its options class and its bases), in parser order."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser, OPTIONS[pipeline])
    table = []
    for action in parser._actions:
        long = [option for option in action.option_strings if option.startswith("--")]
        if long:
            table.append(Flag(parameter_name(long[0]), long[0], action))
    return table


def pipeline_argv(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(pipeline, its command line) from the launcher's `--name=value` arguments."""
    pipeline, rest = _take_pipeline(argv)
    by_name = {flag.name: flag for flag in flags(pipeline)}
    out: list[str] = []
    for argument in rest:
        name, has_value, value = argument[2:].partition("=")
        flag = by_name.get(name) if argument.startswith("--") else None
        if flag is None:
            out.append(argument)  # a Beam option (or a pipeline flag already spelled as one)
        elif flag.is_switch:
            if _switch(flag, value if has_value else "true"):
                out.append(flag.option)
        else:
            out.append(f"{flag.option}={value}")
    if not any(a.startswith("--runner") for a in out):
        out.append("--runner=DataflowRunner")  # the launcher exists to submit a job
    image = os.environ.get(IMAGE_VARIABLE)
    if image and not any(a.startswith("--sdk_container_image") for a in out):
        out.append(f"--sdk_container_image={image}")
    return pipeline, out


def _take_pipeline(argv: Sequence[str]) -> tuple[str, list[str]]:
    prefix = f"--{PIPELINE_PARAMETER}="
    chosen = [a[len(prefix) :] for a in argv if a.startswith(prefix)]
    if len(chosen) != 1 or chosen[0] not in OPTIONS:
        raise ValueError(
            f"the template needs exactly one --{PIPELINE_PARAMETER}=ingest|stylize "
            f"parameter, got {chosen or 'none'}"
        )
    return chosen[0], [a for a in argv if not a.startswith(prefix)]


def _switch(flag: Flag, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"template parameter {flag.name}={value!r}: use true or false")
    return value.lower() == "true"


def parse(argv: Sequence[str]) -> PipelineOptions:
    """The options the pipeline will see for these launcher arguments (for tests/tools)."""
    from pipelines.options import parse_options

    pipeline, translated = pipeline_argv(argv)
    return parse_options(translated, OPTIONS[pipeline])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        pipeline, translated = pipeline_argv(sys.argv[1:] if argv is None else argv)
    except ValueError as error:
        print(f"flex template: error: {error}", file=sys.stderr)
        return 2
    # A Flex Template launch must return once the job is submitted (the launcher times out
    # otherwise), so the pipelines do not wait; their bookkeeping runs inside the job.
    if pipeline == "ingest":
        from pipelines import ingest

        return ingest.main(translated, wait=False)
    from pipelines import stylize

    return stylize.main(translated, wait=False)


if __name__ == "__main__":
    sys.exit(main())
