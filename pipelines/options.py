"""Pipeline options: one `PipelineOptions` subclass per pipeline, and how a pipeline is run.

The subclasses are the single parser for a pipeline's own flags: `python -m pipelines.ingest`,
`scenegan ingest` and (later) Flex Template parameters all read them, and any other Beam
option on the same command line goes to Beam.

Local runs are pinned to Beam's FnApiRunner. Beam 2.77's default DirectRunner first tries
the Prism runner, which downloads a binary and only falls back after that fails; on a
machine without internet that is a long, silent wait. `--runner DirectRunner` (or no
`--runner`) therefore means the FnApiRunner here, which honours `--direct_running_mode`
and `--direct_num_workers`. Any other runner name is passed through unchanged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
import uuid
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipelines import console

LOCAL_RUNNER_NAMES = {None, "DirectRunner", "direct", "SwitchingDirectRunner", "FnApiRunner"}
ENCODINGS = ("png", "jpeg", "webp")


class SceneganOptions(PipelineOptions):
    """Flags every scenegan pipeline shares. Beam parses all direct PipelineOptions
    subclasses together, so a flag may be declared only once: shared ones live here and
    each pipeline's class (a subclass of this one) declares only its own."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--input",
            dest="inputs",
            action="append",
            metavar="PATTERN",
            help="a local file, directory or glob, a gs:// glob, a manifest (.txt: one URI "
            "per line; .parquet: a 'uri' column), a .zip/.tar archive, or (stylize) a dataset "
            "folder DATASET/images/domain=D[/split=S]; repeatable",
        )
        parser.add_argument("--output", help="DATASET (ingest) or OUT (stylize), local or gs://")
        parser.add_argument(
            "--max-side",
            dest="max_side",
            type=int,
            default=None,
            metavar="PX",
            help="shrink so the long side is at most PX, keeping the aspect (ingest: instead "
            "of --size, default keep; stylize: default 512; 0 keeps the size)",
        )
        parser.add_argument(
            "--quality", type=int, default=90, help="JPEG/WebP quality (default: 90)"
        )
        parser.add_argument(
            "--date",
            default=None,
            metavar="YYYY-MM-DD",
            help="the day that {date} (YYYY-MM-DD), {yyyy}, {mm} and {dd} in --input and "
            "--output stand for: YYYY-MM-DD, 'today' or 'yesterday' (UTC; default: today)",
        )
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="show all log lines, INFO and Beam's known-harmless warnings too (hidden by "
            "default)",
        )


class IngestOptions(SceneganOptions):
    """Flags of the ingest pipeline (see DESIGN.md's command contract)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--domain", help="domain name, e.g. photo or monet")
        parser.add_argument(
            "--size",
            type=int,
            default=None,
            metavar="PX",
            help="resize so the short side is PX (default: keep the size)",
        )
        parser.add_argument(
            "--crop",
            action="store_true",
            help="with --size: centre-crop to a PX x PX square",
        )
        parser.add_argument("--encoding", choices=ENCODINGS, default="png")
        parser.add_argument(
            "--test-fraction",
            dest="test_fraction",
            type=float,
            default=0.1,
            help="share of images in the held-out test split, by image_id hash (default 0.1)",
        )
        parser.add_argument(
            "--max-pixels",
            dest="max_pixels",
            type=int,
            default=50_000_000,
            help="reject images above this many pixels as too_large (read from the header)",
        )
        parser.add_argument(
            "--min-side",
            dest="min_side",
            type=int,
            default=32,
            help="reject images whose short side is below this as too_small",
        )
        parser.add_argument(
            "--row-group-mb",
            dest="row_group_mb",
            type=int,
            default=32,
            help="target Parquet row group size in MiB (image rows are large; default 32)",
        )


class StylizeOptions(SceneganOptions):
    """Flags of the stylize pipeline."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--model",
            dest="models",
            action="append",
            metavar="MODEL",
            help="a MODEL directory (local/gs://) or REGISTRY/<name>/latest; give it again "
            "for more styles in one job (each in OUT/<style>/, <style> = the registry name "
            "or the MODEL folder's name; NAME=MODEL names it)",
        )
        parser.add_argument(
            "--resize-back",
            dest="resize_back",
            action="store_true",
            help="resize each output back to its source's size",
        )
        parser.add_argument(
            "--tile-above",
            dest="tile_above",
            type=int,
            default=1536,
            help="images whose long side exceeds PX run as blended tiles",
        )
        parser.add_argument("--tile-size", dest="tile_size", type=int, default=512)
        parser.add_argument("--tile-overlap", dest="tile_overlap", type=int, default=64)
        parser.add_argument(
            "--bucket",
            type=int,
            default=32,
            help="pad sizes to multiples of PX so similar shapes batch together",
        )
        parser.add_argument("--format", dest="image_format", choices=ENCODINGS, default="jpeg")
        parser.add_argument(
            "--batch-size",
            dest="batch_size",
            type=int,
            default=8,
            help="images per forward pass (RunInference max_batch_size)",
        )
        parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
        parser.add_argument(
            "--amp",
            choices=("auto", "on", "off"),
            default="auto",
            help="autocast (auto: on CUDA only)",
        )
        parser.add_argument("--report-samples", dest="report_samples", type=int, default=8)
        parser.add_argument(
            "--shards",
            type=int,
            default=16,
            help="batching keys per image shape (parallelism of batching)",
        )
        parser.add_argument("--run-id", dest="run_id", default=None)
        parser.add_argument("--count", type=int, default=0, help="generate: images to make")
        parser.add_argument("--seed", type=int, default=0, help="generate: noise seed")


def add_arguments(parser: argparse.ArgumentParser, options_class: type[PipelineOptions]) -> None:
    """All flags of `options_class` (its own and its bases'), as Beam would parse them."""
    for cls in reversed(options_class.mro()):
        own = "_add_argparse_args" in cls.__dict__
        if own and issubclass(cls, PipelineOptions) and cls is not PipelineOptions:
            cls._add_argparse_args(parser)


def parse_options(argv: Sequence[str] | None, options_class: type[PipelineOptions]):
    """The pipeline's options from `argv` (its own flags plus any Beam option), with the
    date placeholders of --input and --output filled in (`expand_dates`). Sets up the
    console's logging (`--verbose`) and names any flag no option class knows, once."""
    argv = list(argv or [])
    options = expand_dates(PipelineOptions(argv).view_as(options_class))
    console.configure_logging(options.view_as(SceneganOptions).verbose)
    console.warn_unknown_flags(argv)
    return options


DATE_WORDS = {"today": 0, "yesterday": 1}


def resolve_date(value: str | None, today: datetime.date | None = None) -> datetime.date:
    """`--date`: YYYY-MM-DD, 'today' or 'yesterday' (UTC), or None for today."""
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    if value is None or value.lower() in DATE_WORDS:
        return today - datetime.timedelta(days=DATE_WORDS.get((value or "today").lower(), 0))
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--date {value!r}: use YYYY-MM-DD (e.g. 2025-06-30), 'today' or 'yesterday'"
        ) from None


def expand_date(text: str, day: datetime.date) -> str:
    """`text` with {date}, {yyyy}, {mm} and {dd} replaced; other braces are left alone."""
    for token, value in (
        ("{date}", day.isoformat()),
        ("{yyyy}", f"{day.year:04d}"),
        ("{mm}", f"{day.month:02d}"),
        ("{dd}", f"{day.day:02d}"),
    ):
        text = text.replace(token, value)
    return text


def expand_dates(options: PipelineOptions) -> PipelineOptions:
    """Fill the date placeholders of --input and --output in place (so a fixed Flex Template
    launch or cron line can name each day's folder), record the resolved --date, and return
    `options`. Called by `parse_options`, so it happens before any validation."""
    shared = options.view_as(SceneganOptions)
    day = resolve_date(shared.date)
    if shared.inputs:
        shared.inputs = [expand_date(pattern, day) for pattern in shared.inputs]
    if shared.output:
        shared.output = expand_date(shared.output, day)
    shared.date = day.isoformat()
    return options


def is_local(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner in LOCAL_RUNNER_NAMES


def local_runner(options: PipelineOptions) -> beam.runners.PipelineRunner:
    """Beam's FnApiRunner, set up the way the DirectRunner would set it up, minus Prism."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    everything = options.get_all_options()  # Beam's own options: what workers parse
    encoded = JobServiceHandle.encode_pipeline_options(everything)
    provision = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    runner = fn_runner.FnApiRunner(provision_info=provision)
    run_proto = runner.run_via_runner_api

    def run_via_runner_api(pipeline_proto, options):  # an instance attribute shadows the method
        _no_timed_flush(pipeline_proto)
        return run_proto(pipeline_proto, options)

    runner.run_via_runner_api = run_via_runner_api
    return runner


def _no_timed_flush(pipeline_proto) -> None:
    """Turn off the 1 s timed output flush of `multi_threading` workers (a Beam 2.77 bug).

    Their output streams (TimeBasedBufferingClosableOutputStream) are also flushed by a
    timer thread, which sends the buffer (`get()`) and then clears it without holding any
    lock the bundle thread takes to write: elements written in between, e.g. while the send
    queue is full and the flush blocks, are cleared unsent. That is how multi_threading runs
    lost 3-42 of 20,000 images. Size-based flushes and the final close run on the bundle
    thread itself and stay; `multi_processing` workers have no timer by default."""
    from apache_beam.portability import python_urns

    for environment in pipeline_proto.components.environments.values():
        if environment.urn == python_urns.EMBEDDED_PYTHON_GRPC:
            config = json.loads(environment.payload or b"{}")
            config["data_buffer_time_limit_ms"] = 2**31 - 1  # ~25 days: never within a run
            environment.payload = json.dumps(config).encode()


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline on the pinned local runner, or on whatever `--runner` names.

    Locally, unless `--direct_running_mode` is given, bundles run in one worker process per
    core (`multi_processing`), which was exact in every test. `multi_threading` lost
    elements on Beam 2.77 (20,000 inputs in, 19,958-19,997 rows out) until `local_runner`
    turned off its timed flush (`_no_timed_flush`); it is not the default because its speed
    has not been measured against processes since."""
    use_storage_emulator()
    if is_local(options):
        if not given(options, "direct_running_mode"):
            direct = options.view_as(DirectOptions)
            direct.direct_running_mode = "multi_processing"
            if not given(options, "direct_num_workers"):
                direct.direct_num_workers = os.cpu_count() or 1
        return beam.Pipeline(runner=local_runner(options), options=options)
    return beam.Pipeline(options=options)


def given(options: PipelineOptions, name: str) -> bool:
    """Whether `--name` was on the command line, even with its default value (which
    `get_all_options(drop_default=True)` drops: `--direct_running_mode in_memory` was
    silently ignored that way)."""
    flags = getattr(options, "_flags", None) or []
    return any(flag == f"--{name}" or flag.startswith(f"--{name}=") for flag in flags)


def new_run_id() -> str:
    """A run's id: its UTC start time and a random suffix, e.g. 20260102T030405-1a2b3c4d
    (sorts by time; names the files and metadata partition a run writes)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def use_storage_emulator() -> None:
    """With STORAGE_EMULATOR_HOST set, make Beam's GCS client go to the emulator anonymously.

    Beam looks for Google credentials first and retries for about 20 s before it falls back
    to an anonymous client. Against an emulator no credentials exist or are needed, so the
    lookup is marked as done with no credentials, which is what Beam's fallback would end
    with. Called in the launching process and in each DoFn's setup (worker processes).
    Without STORAGE_EMULATOR_HOST this does nothing, and real credentials are used.
    """
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    from apache_beam.internal.gcp import auth

    with auth._Credentials._credentials_lock:
        auth._Credentials._credentials_init = True
        auth._Credentials._credentials = None
