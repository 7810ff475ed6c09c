"""The stylize pipeline: a MODEL over folders, buckets, manifests or a dataset, nightly.

    PATTERNs -> ExpandInputs -> Reshuffle -> ProbeInput (hash, header size)
             -> SkipStylized (anti-join on image_id with OUT's metadata for this model_id)
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

`generate` (unconditional models) uses the same output contract, from seeded noise.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
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
from pipelines.handler import InferenceFailure, NoiseModelHandler, SceneModelHandler
from pipelines.joins import AntiJoin
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


class Settings:
    """What the DoFns need from the options: plain values, cheap to pickle."""

    def __init__(self, options: StylizeOptions, model_id: str, stride: int, run_id: str):
        self.output = options.output.rstrip("/")
        self.model_id, self.run_id = model_id, run_id
        self.max_side = 512 if options.max_side is None else (options.max_side or None)
        self.multiple = inference.bucket_multiple(stride, options.bucket)
        self.tile_above = options.tile_above
        self.resize_back = options.resize_back
        self.image_format, self.quality = options.image_format, options.quality
        self.shards = max(1, options.shards)
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


class ProbeInput(beam.DoFn):
    """Candidate -> (image_id, meta): id and the padded shape it will run at, from the
    header. Plain files drop their bytes here and are read again to decode."""

    REJECTED = "rejected"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self) -> None:
        use_storage_emulator()

    def process(self, item: Candidate) -> Iterator[Any]:
        Metrics.counter(NAMESPACE, "read").inc()
        data, failure = read_input(item)
        if failure is not None:
            yield beam.pvalue.TaggedOutput(
                self.REJECTED, self.settings.row(item, "rejected", *failure)
            )
            return
        image_id = item.get("image_id") or dataset.image_id_for(data)
        item = {**item, "image_id": image_id}
        if not IMAGE_ID.match(image_id):
            row = self.settings.row(item, "rejected", "unreadable", "the image_id is not a hash")
            yield beam.pvalue.TaggedOutput(self.REJECTED, row)
            return
        try:
            width, height, _ = imaging.probe_image(data)
        except imaging.ImageError as error:
            row = self.settings.row(item, "rejected", error.reason, error.detail)
            yield beam.pvalue.TaggedOutput(self.REJECTED, row)
            return
        w, h = imaging.max_side_size(width, height, self.settings.max_side)
        m = self.settings.multiple
        shape = (-(-h // m) * m, -(-w // m) * m)
        keep = item["data"] if item["data"] is not None else None  # archive/dataset bytes
        yield image_id, {**item, "data": keep, "shape": shape, "orig": (width, height)}


def one_image(keyed: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The inputs of one image_id to stylize -> the one meta to process, carrying the
    other inputs with the same bytes, which share its output."""
    _, new = keyed
    new = sorted(new, key=lambda meta: meta["source_uri"])
    return {**new[0], "also": [meta["source_uri"] for meta in new[1:]]}


class SkippedRows(beam.DoFn):
    """The inputs of an image this model_id already made -> their `skipped` rows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def process(self, keyed: tuple[str, list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        _, new = keyed
        for meta in sorted(new, key=lambda meta: meta["source_uri"]):
            yield self.settings.row(
                meta, "skipped", "already_stylized", "by this model_id in an earlier run"
            )


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


class DecodeInput(beam.DoFn):
    """A batch of metas -> (meta, padded uint8 pixels), or `rejected` rows."""

    REJECTED = "rejected"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self) -> None:
        use_storage_emulator()

    def process(self, keyed: tuple[Any, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        _, metas = keyed
        for meta in metas:
            data, failure = read_again(meta)  # dataset rows keep their ingest-time id
            try:
                if failure is not None:
                    raise imaging.ImageError(*failure)
                decoded = imaging.decode_image(data, draft_max_side=self.settings.max_side)
            except imaging.ImageError as error:
                yield beam.pvalue.TaggedOutput(
                    self.REJECTED, self.settings.row(meta, "rejected", error.reason, error.detail)
                )
                continue
            prepared = inference.prepare(
                decoded.image, max_side=self.settings.max_side, multiple=self.settings.multiple
            )
            light = {k: v for k, v in meta.items() if k != "data"}
            before = decoded.image.copy()
            before.thumbnail((THUMBNAIL, THUMBNAIL))  # for the contact sheet
            yield {**light, "box": prepared.box, "before": np.asarray(before)}, prepared.pixels


class WriteOutput(beam.DoFn):
    """(meta, prediction) -> the image written atomically, its `ok` rows, and a thumbnail
    pair (before, after) for the contact sheet; or, where inference failed, `rejected` rows
    (`inference_failed` / `bad_output`) and no file."""

    THUMBNAILS = "thumbnails"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self) -> None:
        use_storage_emulator()

    def process(self, keyed: tuple[dict[str, Any], Any]) -> Iterator[Any]:
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
        Metrics.counter(NAMESPACE, "ok").inc()
        yield self.settings.row(meta, "ok", size=image.size)
        for uri in meta.get("also", []):
            yield self.settings.row(
                {**meta, "source_uri": uri},
                "ok",
                "duplicate_input",
                "same bytes as another input of this run",
                image.size,
            )
        yield beam.pvalue.TaggedOutput(
            self.THUMBNAILS, (meta["image_id"], _thumbnails(meta, image))
        )


def _thumbnails(meta: dict[str, Any], after: Image.Image) -> tuple[bytes, bytes]:
    """Small PNGs of the source (thumbnailed when it was decoded) and of the output."""
    small = after.copy()
    small.thumbnail((THUMBNAIL, THUMBNAIL))
    before = Image.fromarray(meta["before"])
    return imaging.encode_image(before, "png"), imaging.encode_image(small, "png")


class WriteReport(beam.DoFn):
    """The sampled (before, after) pairs -> OUT/report/contact-<run_id>.png."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self) -> None:
        use_storage_emulator()

    def process(self, sample: list[tuple[str, tuple[bytes, bytes]]]) -> Iterator[str]:
        if not sample:
            return
        pairs = [
            [imaging.decode_image(b, limits=imaging.DecodeLimits(min_side=1)).image for b in p]
            for _, p in sorted(sample)
        ]
        sheet = Image.new("RGB", (2 * THUMBNAIL, len(pairs) * THUMBNAIL), "white")
        for row, (before, after) in enumerate(pairs):
            sheet.paste(before, (0, row * THUMBNAIL))
            sheet.paste(after, (THUMBNAIL, row * THUMBNAIL))
        uri = f"{self.settings.output}/report/contact-{self.settings.run_id}.png"
        storage.write_bytes(uri, imaging.encode_image(sheet, "png"))
        yield uri


class CountRows(beam.DoFn):
    def process(self, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        Metrics.counter(NAMESPACE, f"status_{row['status']}").inc()
        if row["reason"] and row["status"] == "rejected":
            Metrics.counter(NAMESPACE, f"rejected_{row['reason']}").inc()
        yield row


class DoneImageIds(beam.PTransform):
    """(image_id, True) for each image this model_id made in earlier runs (OUT's metadata)."""

    def __init__(self, output: str, model_id: str) -> None:
        super().__init__()
        self.output, self.model_id = output, model_id

    def expand(self, pipeline):
        return (
            pipeline
            | "ListMetadata" >> beam.Create([f"{self.output}/metadata/run=*/*.parquet"])
            | "ReadMetadata" >> ReadAllFromParquet(columns=["image_id", "model_id", "status"])
            | "ThisModelOk" >> beam.Filter(_made_by, self.model_id)
            | "KeyDone" >> beam.Map(_done_marker)
        )


def _made_by(row: dict[str, Any], model_id: str) -> bool:
    return row["model_id"] == model_id and row["status"] == "ok"


def _done_marker(row: dict[str, Any]) -> tuple[str, bool]:
    return row["image_id"], True


# --- the graphs ---------------------------------------------------------------------------


def build(pipeline: beam.Pipeline, options: StylizeOptions, settings: Settings) -> Any:
    """Add the stylize graph; returns the metadata rows."""
    probed = (
        pipeline
        | "MatchInputs" >> MatchInputs(options.inputs)
        | "ProbeInput"
        >> beam.ParDo(ProbeInput(settings)).with_outputs(ProbeInput.REJECTED, main="probed")
    )
    done = pipeline | "DoneImageIds" >> DoneImageIds(settings.output, settings.model_id)
    joined = {"new": probed.probed, "done": done} | "SkipStylized" >> AntiJoin()
    skipped = joined[AntiJoin.DONE] | "SkippedRows" >> beam.ParDo(SkippedRows(settings))
    decoded = (
        joined.todo
        | "OneInputPerImage" >> beam.Map(one_image)
        | "KeyByShape" >> beam.ParDo(KeyByShape(settings))
        # A plain GroupByKey, not GroupIntoBatches: the local runner shares the latter's
        # state between workers and flushes what is left in it from one worker, at the end
        # (most of a run's images, measured: one of two workers idle). Grouped keys are dealt
        # out to the workers; RunInference cuts each group into batches of --batch-size.
        | "GroupByShape" >> beam.GroupByKey()
        | "DecodeInput"
        >> beam.ParDo(DecodeInput(settings)).with_outputs(DecodeInput.REJECTED, main="decoded")
    )
    handler = KeyedModelHandler(
        SceneModelHandler(
            options.model,
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
        decoded.decoded
        | "RunInference" >> RunInference(handler)
        | "WriteOutput"
        >> beam.ParDo(WriteOutput(settings)).with_outputs(WriteOutput.THUMBNAILS, main="rows")
    )
    _report(written[WriteOutput.THUMBNAILS], options.report_samples, settings)
    rows = (
        written.rows,
        skipped,
        probed[ProbeInput.REJECTED],
        decoded[DecodeInput.REJECTED],
    )
    return _write_metadata(rows, settings)


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
        | "SampleForReport" >> beam.combiners.Top.Smallest(count, key=_first)
        | "WriteReport" >> beam.ParDo(WriteReport(settings))
    )


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _write_metadata(rows: tuple, settings: Settings) -> Any:
    merged = rows | "AllRows" >> beam.Flatten() | "CountRows" >> beam.ParDo(CountRows())
    merged | "WriteMetadata" >> WriteToParquet(
        f"{settings.output}/metadata/run={settings.run_id}/part",
        schema=METADATA_SCHEMA,
        file_name_suffix=".parquet",
        record_batch_size=4096,
    )
    return merged


def build_generate(pipeline: beam.Pipeline, options: StylizeOptions, settings: Settings) -> Any:
    """Unconditional generation: indices -> seeded noise -> images, same output contract."""
    handler = NoiseModelHandler(
        options.model, seed=options.seed, device=options.device, max_batch_size=options.batch_size
    )
    written = (
        pipeline
        | "Indices" >> beam.Create(range(options.count))
        | "Reshuffle" >> beam.Reshuffle()
        | "RunInference" >> RunInference(handler)
        | "WriteGenerated" >> beam.ParDo(WriteGenerated(settings, options.seed))
    )
    return _write_metadata((written,), settings)


class WriteGenerated(beam.DoFn):
    def __init__(self, settings: Settings, seed: int) -> None:
        self.settings, self.seed = settings, seed

    def setup(self) -> None:
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
        yield self.settings.row({"source_uri": source, "image_id": image_id}, "ok", size=image.size)


# --- running ------------------------------------------------------------------------------


def validate(options: StylizeOptions, generate: bool = False) -> artifact.LoadedModel:
    """Check flags and load MODEL fully (weights verified) before any work is started."""
    need = [("--model", options.model), ("--output", options.output)]
    need += [("--count", options.count)] if generate else [("--input", options.inputs)]
    missing = [flag for flag, value in need if not value]
    if missing:
        raise ValueError(f"{'generate' if generate else 'stylize'} needs {', '.join(missing)}")
    if options.batch_size < 1 or not 1 <= options.quality <= 100:
        raise ValueError("--batch-size must be >= 1 and --quality in 1..100")
    # Resolve REGISTRY/<name>/latest once, here: every worker then loads the same version
    # even if a promote moves `latest` while the job runs.
    options.model = resolve_model_path(options.model)
    model = artifact.load_model(options.model)
    if generate and not model.generates_from_noise:
        raise ValueError(
            f"{options.model} is an {model.kind} model; generate needs a noise-to-image "
            "one (use stylize)"
        )
    if not generate and model.generates_from_noise:
        raise ValueError(f"{options.model} is a {model.kind} model; use `scenegan generate`")
    return model


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
    """Run stylize (or generate) to completion; returns counters, run id and timings.
    `wait=False` (Flex Template launches) returns once the job is submitted."""
    options = parse_options(argv, StylizeOptions)
    use_storage_emulator()
    model = validate(options, generate)
    run_id = options.run_id or new_run_id()
    settings = Settings(options, model.model_id, model.stride, run_id)
    remove_leftovers(settings.output)
    started = time.perf_counter()
    pipeline = make_pipeline(options)
    (build_generate if generate else build)(pipeline, options, settings)
    result = pipeline.run()
    if not wait:
        return {"run_id": run_id, "result": result, "model_id": model.model_id}
    result.wait_until_finish()
    seconds = time.perf_counter() - started
    counters = summary.counters(result, NAMESPACE)
    print(summary.stylize_table(counters, seconds, settings.output, run_id))
    return {"run_id": run_id, "counters": counters, "seconds": seconds, "model_id": model.model_id}


def main(argv: Sequence[str] | None = None, *, generate: bool = False, wait: bool = True) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(sys.argv[1:] if argv is None else argv, generate=generate, wait=wait)
    except (ValueError, artifact.ModelError) as error:
        print(f"stylize: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
