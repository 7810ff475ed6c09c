"""The stylize pipeline: a MODEL over folders, buckets, manifests or a dataset, nightly.

    PATTERNs -> ExpandInputs -> Reshuffle -> ProbeInput (hash, header size)
             -> SkipStylized (join on image_id with each style's OUT metadata for its model_id)
             -> GroupByKey on (padded shape, shard) -> DecodeInput (decode, resize, pad)
             -> RunInference(SceneModelHandler) -> WriteOutput (crop, encode, atomic write)
             -> OUT/metadata/run=<run_id>/*.parquet, OUT/report/contact-<run_id>.png

Every input of the run is one metadata row: `ok`, `rejected` (with the reason; a model that
raises on an image or returns NaN/inf for it gives `inference_failed` / `bad_output`, never
a failed job) or `skipped`
(this model_id stylized the same bytes in an earlier run: that is how the nightly job only
processes new images). Images are written to OUT/images/<image_id>.<ext> before their
metadata row can exist, each file whole or not at all, so after a crash a rerun simply
redoes what has no row. Only ids, URIs and shapes cross the joins; pixels are decoded after
the batching, in the same fused stage as inference.

Several styles in one job (`--model A --model B`): each image is listed, hashed, probed,
decoded and skip-checked once and then runs through every model still to do it, one
RunInference (so one handler, and batches of one model) per style. Each `OUT/<style>/` is
exactly the OUT one model alone would write; with one `--model` the output is OUT itself.

`generate` (unconditional models) uses the same output contract, from seeded noise.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import ReadAllFromParquet, WriteToParquet
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import DirectOptions
from PIL import Image

from pipelines import summary
from pipelines.console import ProgressDoFn, ProgressLine
from pipelines.handler import InferenceFailure, NoiseModelHandler, SceneModelHandler
from pipelines.options import (
    StylizeOptions,
    is_local,
    make_pipeline,
    new_run_id,
    parse_options,
    use_storage_emulator,
)
from pipelines.sources import Candidate, MatchInputs, read_again, read_input
from scenegan import artifact, dataset, imaging, inference, storage
from scenegan.registry import resolve_model_path

log = logging.getLogger(__name__)

NAMESPACE = "stylize"
IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")
METADATA_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("image_id", pa.string()),
        ("output_uri", pa.string()),
        ("model_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("run_id", pa.string()),
    ]
)
THUMBNAIL = 96
STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
REGISTRY_LEAF = re.compile(r"^(latest|v[0-9]{4,})$")


@dataclass(frozen=True)
class Style:
    """One `--model` of the job: its name (OUT/<name>/ when there are several), the MODEL
    path it resolved to at launch, and the model, loaded and verified."""

    name: str
    path: str
    model: artifact.LoadedModel


def style_name(value: str) -> tuple[str, str]:
    """`--model` value -> (style name, MODEL path): `NAME=PATH` names it; otherwise the
    registry name of REGISTRY/<name>/latest|vNNNN, or the MODEL folder's name."""
    name, equals, path = value.partition("=")
    if equals and STYLE_NAME.match(name) and not storage.exists(storage.join(value, "model.json")):
        return name, path
    parts = value.rstrip("/").split("/")
    if len(parts) > 1 and REGISTRY_LEAF.match(parts[-1]):
        return parts[-2], value
    return parts[-1], value


class Settings:
    """What the DoFns need from the options and one style: plain values, cheap to pickle."""

    def __init__(
        self, options: StylizeOptions, style: Style, run_id: str, several: bool = False
    ) -> None:
        output = options.output.rstrip("/")
        self.output = f"{output}/{style.name}" if several else output
        self.name, self.model_path = style.name, style.path
        self.counter_prefix = f"{style.name}/" if several else ""  # Beam counter names
        self.label = f" [{style.name}]" if several else ""  # Beam step names
        model_id, stride = style.model.model_id, style.model.stride
        self.model_id, self.run_id = model_id, run_id
        self.max_side = 512 if options.max_side is None else (options.max_side or None)
        self.multiple = inference.bucket_multiple(stride, options.bucket)
        self.tile_above = options.tile_above
        self.resize_back = options.resize_back
        self.image_format, self.quality = options.image_format, options.quality
        self.shards = max(1, options.shards)
        self.report = options.report_samples > 0  # thumbnails are made only for a sheet
        self.extension = imaging.ENCODE_EXTENSIONS[options.image_format]

    def output_uri(self, image_id: str) -> str:
        if not IMAGE_ID.match(image_id):  # never let input-derived text shape a path
            raise ValueError(f"not an image id: {image_id!r}")
        return f"{self.output}/images/{image_id}.{self.extension}"

    def row(
        self,
        item: dict[str, Any],
        status: str,
        reason: str = "",
        detail: str = "",
        size: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        image_id = item.get("image_id") or ""
        ok = status in ("ok", "skipped") and IMAGE_ID.match(image_id)
        return {
            "source_uri": item["source_uri"],
            "image_id": image_id,
            "output_uri": self.output_uri(image_id) if ok else "",
            "model_id": self.model_id,
            "status": status,
            "reason": reason,
            "detail": detail,
            "width": size[0] if size else None,
            "height": size[1] if size else None,
            "run_id": self.run_id,
        }


def rejected(
    styles: Sequence[Settings], item: dict[str, Any], reason: str, detail: str
) -> Iterator[Any]:
    """(style, `rejected` row) for each style: an input refused before any model ran
    counts in every style's OUT."""
    for settings in styles:
        row = settings.row(item, "rejected", reason, detail)
        yield beam.pvalue.TaggedOutput(ProbeInput.REJECTED, (settings.name, row))


class ProbeInput(ProgressDoFn):
    """Candidate -> (image_id, meta): id and the padded shape it will run at, from the
    header (padded to every style's multiple, for batching). Plain files drop their bytes
    here and are read again to decode. Rejects are (style, row), one per style."""

    REJECTED = "rejected"

    def __init__(self, styles: Sequence[Settings], progress: str | None = None) -> None:
        super().__init__(progress)
        self.styles = list(styles)
        self.multiple = math.lcm(*(settings.multiple for settings in self.styles))

    def setup(self) -> None:
        super().setup()
        use_storage_emulator()

    def process(self, item: Candidate) -> Iterator[Any]:
        Metrics.counter(NAMESPACE, "read").inc()
        for output in self._probe(item):
            if isinstance(output, beam.pvalue.TaggedOutput):
                self.progress.add("rejected")
            yield output

    def _probe(self, item: Candidate) -> Iterator[Any]:
        data, failure = read_input(item)
        if failure is not None:
            yield from rejected(self.styles, item, *failure)
            return
        image_id = item.get("image_id") or dataset.image_id_for(data)
        item = {**item, "image_id": image_id}
        if not IMAGE_ID.match(image_id):
            yield from rejected(self.styles, item, "unreadable", "the image_id is not a hash")
            return
        try:
            width, height, _ = imaging.probe_image(data)
        except imaging.ImageError as error:
            yield from rejected(self.styles, item, error.reason, error.detail)
            return
        w, h = imaging.max_side_size(width, height, self.styles[0].max_side)
        m = self.multiple
        shape = (-(-h // m) * m, -(-w // m) * m)
        keep = item["data"] if item["data"] is not None else None  # archive/dataset bytes
        yield image_id, {**item, "data": keep, "shape": shape, "orig": (width, height)}


def one_image(keyed: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The inputs of one image_id to stylize -> the one meta to process, carrying the
    other inputs with the same bytes, which share its output."""
    _, new = keyed
    new = sorted(new, key=lambda meta: meta["source_uri"])
    return {**new[0], "also": [meta["source_uri"] for meta in new[1:]]}


class SplitDoneStyles(ProgressDoFn):
    """(image_id, {"new": metas, "done": styles whose model made it earlier}) -> the one
    meta to process with the styles still to do (main), and (style, `skipped` row) for
    each input and each done style (SKIPPED). Keys without new inputs vanish."""

    SKIPPED = "skipped"

    def __init__(self, styles: Sequence[Settings], progress: str | None = None) -> None:
        super().__init__(progress)
        self.styles = list(styles)

    def process(self, joined: tuple[str, dict[str, Iterable]]) -> Iterator[Any]:
        image_id, groups = joined
        new = sorted(groups["new"], key=lambda meta: meta["source_uri"])
        if not new:
            return
        done = set(groups["done"])
        for settings in self.styles:
            if settings.name in done:
                for meta in new:
                    row = settings.row(
                        meta, "skipped", "already_stylized", "by this model_id in an earlier run"
                    )
                    self.progress.add("skipped")
                    yield beam.pvalue.TaggedOutput(self.SKIPPED, (settings.name, row))
        todo = [settings.name for settings in self.styles if settings.name not in done]
        if todo:
            yield {**one_image((image_id, new)), "styles": todo}


class KeyByShape(beam.DoFn):
    """meta -> ((H, W, shard), meta); images that will be tiled batch alone."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def process(self, meta: dict[str, Any]) -> Iterator[tuple[tuple, dict[str, Any]]]:
        height, width = meta["shape"]
        if max(height, width) > self.settings.tile_above:
            yield ("tiled", meta["image_id"]), meta
            return
        shard = int(meta["image_id"][:8], 16) % self.settings.shards
        yield (height, width, shard), meta


class DecodeInput(ProgressDoFn):
    """A batch of metas -> for each style still to do, (meta, padded uint8 pixels) on that
    style's output (`DecodeInput.tag(i)`); or (style, `rejected` row)s. Each image is
    decoded once; it is resized and padded once per distinct padding multiple."""

    REJECTED = "rejected"

    def __init__(self, styles: Sequence[Settings], progress: str | None = None) -> None:
        super().__init__(progress)
        self.styles = list(styles)
        self.report = styles[0].report

    @staticmethod
    def tag(index: int) -> str:
        return f"style_{index}"

    def setup(self) -> None:
        super().setup()
        use_storage_emulator()

    def process(self, keyed: tuple[Any, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        _, metas = keyed
        max_side = self.styles[0].max_side
        for meta in metas:
            todo = [(i, s) for i, s in enumerate(self.styles) if s.name in meta["styles"]]
            data, failure = read_again(meta)  # dataset rows keep their ingest-time id
            try:
                if failure is not None:
                    raise imaging.ImageError(*failure)
                decoded = imaging.decode_image(data, draft_max_side=max_side)
            except imaging.ImageError as error:
                for _, settings in todo:
                    for uri in [meta["source_uri"], *meta.get("also", [])]:
                        row = {**meta, "source_uri": uri}
                        row = settings.row(row, "rejected", error.reason, error.detail)
                        self.progress.add("rejected")
                        yield beam.pvalue.TaggedOutput(self.REJECTED, (settings.name, row))
                continue
            light = {k: v for k, v in meta.items() if k not in ("data", "styles")}
            if self.report:
                before = decoded.image.copy()
                before.thumbnail((THUMBNAIL, THUMBNAIL))  # for the contact sheet
                light["before"] = np.asarray(before)
            prepared: dict[int, inference.Prepared] = {}
            for index, settings in todo:
                if settings.multiple not in prepared:
                    prepared[settings.multiple] = inference.prepare(
                        decoded.image, max_side=max_side, multiple=settings.multiple
                    )
                ready = prepared[settings.multiple]
                yield beam.pvalue.TaggedOutput(
                    self.tag(index), ({**light, "box": ready.box}, ready.pixels)
                )


class WriteOutput(ProgressDoFn):
    """(meta, prediction) -> the image written atomically, its `ok` rows, and a thumbnail
    pair (before, after) for the contact sheet; or, where inference failed, `rejected` rows
    (`inference_failed` / `bad_output`) and no file."""

    THUMBNAILS = "thumbnails"

    def __init__(self, settings: Settings, progress: str | None = None) -> None:
        super().__init__(progress)
        self.settings = settings

    def setup(self) -> None:
        super().setup()
        use_storage_emulator()

    def process(self, keyed: tuple[dict[str, Any], Any]) -> Iterator[Any]:
        for output in self._write(keyed):
            if isinstance(output, dict):  # a row, not a thumbnail pair
                self.progress.add(output["status"])
            yield output

    def _write(self, keyed: tuple[dict[str, Any], Any]) -> Iterator[Any]:
        meta, prediction = keyed
        if isinstance(prediction.inference, InferenceFailure):
            failure = prediction.inference
            for uri in [meta["source_uri"], *meta.get("also", [])]:
                row = {**meta, "source_uri": uri}
                yield self.settings.row(row, "rejected", failure.reason, failure.detail)
            return
        box = meta["box"]
        resize_to = meta["orig"] if self.settings.resize_back else None
        image = inference.finish(prediction.inference, box, resize_to)
        data = imaging.encode_image(
            image, self.settings.image_format, quality=self.settings.quality
        )
        storage.write_bytes(self.settings.output_uri(meta["image_id"]), data)
        Metrics.counter(NAMESPACE, f"{self.settings.counter_prefix}ok").inc()
        yield self.settings.row(meta, "ok", size=image.size)
        for uri in meta.get("also", []):
            yield self.settings.row(
                {**meta, "source_uri": uri},
                "ok",
                "duplicate_input",
                "same bytes as another input of this run",
                image.size,
            )
        if "before" in meta:  # the run makes a contact sheet
            yield beam.pvalue.TaggedOutput(
                self.THUMBNAILS, (meta["image_id"], _thumbnails(meta, image))
            )


def _thumbnails(meta: dict[str, Any], after: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Small uint8 arrays of the source (thumbnailed when it was decoded) and of the output
    (plain arrays: encoding two PNGs per image cost more than encoding the output itself)."""
    small = after.copy()
    small.thumbnail((THUMBNAIL, THUMBNAIL))
    return meta["before"], np.asarray(small)


class WriteReport(beam.DoFn):
    """The sampled (before, after) pairs -> OUT/report/contact-<run_id>.png."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self) -> None:
        use_storage_emulator()

    def process(self, sample: list[tuple[str, tuple[np.ndarray, np.ndarray]]]) -> Iterator[str]:
        if not sample:
            return
        pairs = [[Image.fromarray(array) for array in pair] for _, pair in sorted(sample)]
        sheet = Image.new("RGB", (2 * THUMBNAIL, len(pairs) * THUMBNAIL), "white")
        for row, (before, after) in enumerate(pairs):
            sheet.paste(before, (0, row * THUMBNAIL))
            sheet.paste(after, (THUMBNAIL, row * THUMBNAIL))
        uri = f"{self.settings.output}/report/contact-{self.settings.run_id}.png"
        storage.write_bytes(uri, imaging.encode_image(sheet, "png"))
        yield uri


class CountRows(beam.DoFn):
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix  # "<style>/" when a job has several styles

    def process(self, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        Metrics.counter(NAMESPACE, f"{self.prefix}status_{row['status']}").inc()
        if row["reason"] and row["status"] == "rejected":
            Metrics.counter(NAMESPACE, f"{self.prefix}rejected_{row['reason']}").inc()
        yield row


class DoneImageIds(beam.PTransform):
    """(image_id, style) for each image this style's model_id made in earlier runs (its
    OUT's metadata)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, pipeline):
        return (
            pipeline
            | "ListMetadata" >> beam.Create([f"{self.settings.output}/metadata/run=*/*.parquet"])
            | "ReadMetadata" >> ReadAllFromParquet(columns=["image_id", "model_id", "status"])
            | "ThisModelOk" >> beam.Filter(_made_by, self.settings.model_id)
            | "KeyDone" >> beam.Map(_done_marker, self.settings.name)
        )


def _made_by(row: dict[str, Any], model_id: str) -> bool:
    return row["model_id"] == model_id and row["status"] == "ok"


def _done_marker(row: dict[str, Any], style: str) -> tuple[str, str]:
    return row["image_id"], style


# --- the graphs ---------------------------------------------------------------------------


def build(
    pipeline: beam.Pipeline,
    options: StylizeOptions,
    styles: list[Settings],
    progress: str | None = None,
) -> Any:
    """Add the stylize graph for one or more styles; returns each style's metadata rows.
    `progress`: a console.ProgressLine address the workers count inputs and rows to."""
    probe = ProbeInput(styles, progress)
    probed = (
        pipeline
        | "MatchInputs" >> MatchInputs(options.inputs, progress)
        | "ProbeInput" >> beam.ParDo(probe).with_outputs(ProbeInput.REJECTED, main="probed")
    )
    done = [
        pipeline | f"DoneImageIds{settings.label}" >> DoneImageIds(settings) for settings in styles
    ]
    joined = (
        {"new": probed.probed, "done": done | "AllDone" >> beam.Flatten()}
        | "SkipStylized" >> beam.CoGroupByKey()
        | "SplitDoneStyles"
        >> beam.ParDo(SplitDoneStyles(styles, progress)).with_outputs(
            SplitDoneStyles.SKIPPED, main="todo"
        )
    )
    tags = [DecodeInput.tag(index) for index in range(len(styles))]
    decoded = (
        joined.todo
        | "KeyByShape" >> beam.ParDo(KeyByShape(styles[0]))
        # A plain GroupByKey, not GroupIntoBatches: the local runner shares the latter's
        # state between workers and flushes what is left in it from one worker, at the end
        # (most of a run's images, measured: one of two workers idle). Grouped keys are dealt
        # out to the workers; RunInference cuts each group into batches of --batch-size.
        | "GroupByShape" >> beam.GroupByKey()
        | "DecodeInput"
        >> beam.ParDo(DecodeInput(styles, progress)).with_outputs(DecodeInput.REJECTED, *tags)
    )
    early = (  # (style, row) of inputs refused before inference, for every style
        (
            probed[ProbeInput.REJECTED],
            joined[SplitDoneStyles.SKIPPED],
            decoded[DecodeInput.REJECTED],
        )
        | "EarlyRows" >> beam.Flatten()
        | "ByStyle" >> beam.Partition(_style_index, len(styles), [s.name for s in styles])
    )
    return [
        _stylize_one(options, settings, decoded[tag], early[index], progress)
        for index, (settings, tag) in enumerate(zip(styles, tags, strict=True))
    ]


def _style_index(keyed: tuple[str, Any], _count: int, names: list[str]) -> int:
    return names.index(keyed[0])


def _row_of(keyed: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return keyed[1]


def _stylize_one(
    options: StylizeOptions, settings: Settings, decoded: Any, early: Any, progress: str | None
) -> Any:
    """One style's RunInference (its own handler: batches never mix models), writes,
    report and metadata."""
    label = settings.label
    handler = KeyedModelHandler(
        SceneModelHandler(
            settings.model_path,
            device=options.device,
            amp=options.amp,
            max_batch_size=options.batch_size,
            tile_above=options.tile_above,
            tile_size=options.tile_size,
            tile_overlap=options.tile_overlap,
            num_threads=threads_per_worker(options),
        )
    )
    written = (
        decoded
        | f"RunInference{label}" >> RunInference(handler)
        | f"WriteOutput{label}"
        >> beam.ParDo(WriteOutput(settings, progress)).with_outputs(
            WriteOutput.THUMBNAILS, main="rows"
        )
    )
    _report(written[WriteOutput.THUMBNAILS], options.report_samples, settings)
    others = early | f"RowOf{label}" >> beam.Map(_row_of)
    return _write_metadata((written.rows, others), settings)


def threads_per_worker(options: StylizeOptions) -> int | None:
    """torch threads for each local worker process: the cores shared out among the
    `--direct_num_workers` processes (None keeps torch's default: one per core)."""
    if not is_local(options):
        return None
    workers = options.view_as(DirectOptions).direct_num_workers
    cores = os.cpu_count() or 1
    workers = cores if workers == 0 else (workers or 1)
    return max(1, cores // workers) if workers > 1 else None


def _report(thumbnails, count: int, settings: Settings) -> None:
    if count <= 0:
        return
    (
        thumbnails
        | f"SampleForReport{settings.label}" >> beam.combiners.Top.Smallest(count, key=_first)
        | f"WriteReport{settings.label}" >> beam.ParDo(WriteReport(settings))
    )


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _write_metadata(rows: tuple, settings: Settings) -> Any:
    label = settings.label
    merged = (
        rows
        | f"AllRows{label}" >> beam.Flatten()
        | f"CountRows{label}" >> beam.ParDo(CountRows(settings.counter_prefix))
    )
    merged | f"WriteMetadata{label}" >> WriteToParquet(
        f"{settings.output}/metadata/run={settings.run_id}/part",
        schema=METADATA_SCHEMA,
        file_name_suffix=".parquet",
        record_batch_size=4096,
    )
    return merged


def build_generate(
    pipeline: beam.Pipeline,
    options: StylizeOptions,
    settings: Settings,
    progress: str | None = None,
) -> Any:
    """Unconditional generation: indices -> seeded noise -> images, same output contract."""
    handler = NoiseModelHandler(
        settings.model_path,
        seed=options.seed,
        device=options.device,
        max_batch_size=options.batch_size,
    )
    written = (
        pipeline
        | "Indices" >> beam.Create(range(options.count))
        | "Reshuffle" >> beam.Reshuffle()
        | "RunInference" >> RunInference(handler)
        | "WriteGenerated" >> beam.ParDo(WriteGenerated(settings, options.seed, progress))
    )
    return _write_metadata((written,), settings)


class WriteGenerated(ProgressDoFn):
    def __init__(self, settings: Settings, seed: int, progress: str | None = None) -> None:
        super().__init__(progress)
        self.settings, self.seed = settings, seed

    def setup(self) -> None:
        super().setup()
        use_storage_emulator()

    def process(self, prediction: Any) -> Iterator[dict[str, Any]]:
        index = int(prediction.example)
        source = f"noise://{self.settings.model_id}/seed={self.seed}/index={index}"
        image_id = dataset.image_id_for(source.encode())
        image = Image.fromarray(prediction.inference)
        data = imaging.encode_image(
            image, self.settings.image_format, quality=self.settings.quality
        )
        storage.write_bytes(self.settings.output_uri(image_id), data)
        self.progress.add("ok")
        yield self.settings.row({"source_uri": source, "image_id": image_id}, "ok", size=image.size)


# --- running ------------------------------------------------------------------------------


def validate(options: StylizeOptions, generate: bool = False) -> list[Style]:
    """Check flags and load every MODEL fully (weights verified) before any work is started."""
    need = [("--model", options.models), ("--output", options.output)]
    need += [("--count", options.count)] if generate else [("--input", options.inputs)]
    missing = [flag for flag, value in need if not value]
    if missing:
        raise ValueError(f"{'generate' if generate else 'stylize'} needs {', '.join(missing)}")
    if options.batch_size < 1 or not 1 <= options.quality <= 100:
        raise ValueError("--batch-size must be >= 1 and --quality in 1..100")
    if generate and len(options.models) > 1:
        raise ValueError("generate takes one --model")
    named = [style_name(value) for value in options.models]
    names = [name for name, _ in named]
    for name, path in named:
        if not STYLE_NAME.match(name):
            raise ValueError(
                f"--model {path}: {name!r} cannot name a style folder; name it with "
                "--model NAME=MODEL (letters, digits, '.', '_', '-')"
            )
        if names.count(name) > 1:
            raise ValueError(
                f"two --model flags are named {name!r}; tell them apart with --model NAME=MODEL"
            )
    # Resolve REGISTRY/<name>/latest once, here: every worker then loads the same version
    # even if a promote moves `latest` while the job runs.
    return [_load_style(name, path, generate) for name, path in named]


def _load_style(name: str, path: str, generate: bool) -> Style:
    resolved = resolve_model_path(path)
    model = artifact.load_model(resolved)
    if generate and not model.generates_from_noise:
        raise ValueError(
            f"{resolved} is an {model.kind} model; generate needs a noise-to-image "
            "one (use stylize)"
        )
    if not generate and model.generates_from_noise:
        raise ValueError(f"{resolved} is a {model.kind} model; use `scenegan generate`")
    return Style(name, resolved, model)


def remove_leftovers(output: str) -> None:
    """Partial files a killed run left behind: temporary image files and Beam's temp dirs."""
    images = f"{output}/images"
    if storage.exists(images) and not storage.is_remote(images):
        for uri in storage.list_files(images):
            if ".tmp-" in uri.rsplit("/", 1)[-1]:
                storage.delete(uri)
    for match in FileSystems.match([f"{output}/metadata/run=*/beam-temp-*/**"])[0].metadata_list:
        FileSystems.delete([match.path])


def run(
    argv: Sequence[str] | None = None, *, generate: bool = False, wait: bool = True
) -> dict[str, Any]:
    """Run stylize (or generate) to completion; returns counters, run id and timings (and,
    with several styles, `styles`: each style's counters). `wait=False` (Flex Template
    launches) returns once the job is submitted."""
    options = parse_options(argv, StylizeOptions)
    use_storage_emulator()
    styles = validate(options, generate)
    run_id = options.run_id or new_run_id()
    several = len(styles) > 1
    settings = [Settings(options, style, run_id, several) for style in styles]
    for each in settings:
        remove_leftovers(each.output)
    started = time.perf_counter()
    pipeline = make_pipeline(options)
    model_id = styles[0].model.model_id
    progress = ProgressLine(
        "generate" if generate else "stylize",
        ("ok", "rejected", "skipped"),
        per_input=len(settings),
        total=options.count if generate else None,
        enabled=wait and is_local(options),
    )
    with progress:
        if generate:
            build_generate(pipeline, options, settings[0], progress.address)
        else:
            build(pipeline, options, settings, progress.address)
        result = pipeline.run()
        if not wait:
            return {"run_id": run_id, "result": result, "model_id": model_id}
        result.wait_until_finish()
    seconds = time.perf_counter() - started
    counters = summary.counters(result, NAMESPACE)
    done = {"run_id": run_id, "counters": counters, "seconds": seconds, "model_id": model_id}
    if not several:
        print(summary.stylize_table(counters, seconds, settings[0].output, run_id))
        return done
    done["styles"] = {}
    for each in settings:
        own = {
            name.removeprefix(each.counter_prefix): value
            for name, value in counters.items()
            if name.startswith(each.counter_prefix)
        }
        own["read"] = counters.get("read", 0)
        done["styles"][each.name] = own
        print(summary.stylize_table(own, seconds, each.output, f"{run_id}, style {each.name}"))
    return done


def main(argv: Sequence[str] | None = None, *, generate: bool = False, wait: bool = True) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv, generate=generate, wait=wait)
    except (ValueError, artifact.ModelError) as error:
        print(f"stylize: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
