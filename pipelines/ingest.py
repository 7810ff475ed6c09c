"""The ingest pipeline: scene images (folders, buckets, manifests, archives) to a dataset.

    PATTERNs -> ExpandInputs -> Reshuffle -> SkipIngested (anti-join on source_uri)
             -> HashInput -> ResolveDuplicates (join on image_id)
             -> DecodeImage (decode, validate, resize, encode) -> images / rejects Parquet

Only ids and URIs cross the two joins; image bytes are read where they are hashed and read
again where they are decoded, so the runner never holds the images of a run (the local
runner keeps grouped data in memory). Decoding and writing image rows are fused in one
stage, so encoded images never leave it except as Parquet files; only the small reject rows
of the earlier stages are merged (a Flatten) before their sink.

Every input file ends as exactly one image row or one reject row of DESIGN.md's dataset.
A rerun is idempotent: an input whose `source_uri` already has a row in this domain (image
or reject) is skipped, so rerunning the same inputs writes nothing new, and adding files
adds exactly those. An image whose bytes (`image_id`) are already in the domain, or repeat
another input of the run, becomes a `duplicate` reject naming the id it repeats; within a
run the smallest `source_uri` keeps the image. Each run writes new files named after its
run id, so nothing written earlier (or by another domain) is touched.

Run with `python -m pipelines.ingest --input ... --domain ... --output ...` or
`scenegan ingest`, plus any Beam option (e.g. `--runner DataflowRunner ...`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import ReadAllFromParquet, WriteToParquet
from apache_beam.metrics import Metrics

from pipelines import summary
from pipelines.console import ProgressDoFn, ProgressLine
from pipelines.joins import AntiJoin
from pipelines.options import (
    IngestOptions,
    is_local,
    make_pipeline,
    new_run_id,
    parse_options,
    use_storage_emulator,
)
from pipelines.sources import Candidate, MatchInputs, read_again, read_input
from scenegan import dataset, imaging

log = logging.getLogger(__name__)

NAMESPACE = "ingest"
ROWS_PER_RECORD_BATCH = 32  # image rows are large: keep the sink's in-memory batches small


def settings_from(options: IngestOptions) -> dataset.PrepareSettings:
    return dataset.PrepareSettings(
        size=options.size,
        crop=options.crop,
        max_side=options.max_side or None,
        encoding=options.encoding,
        quality=options.quality,
        max_pixels=options.max_pixels,
        min_side=options.min_side,
    )


def validate(options: IngestOptions) -> None:
    missing = [
        flag
        for flag, value in (
            ("--input", options.inputs),
            ("--domain", options.domain),
            ("--output", options.output),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"ingest needs {', '.join(missing)}")
    if not options.domain.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"--domain {options.domain!r}: use letters, digits, '-' and '_' only")
    dataset.split_for("0" * 64, options.test_fraction)  # raises on a bad fraction
    settings_from(options)  # raises on inconsistent size flags
    manifest = dataset.read_manifest(options.output) or {}
    previous = manifest.get("domains", {}).get(options.domain, {}).get("settings", {})
    fraction = previous.get("test_fraction")
    if fraction is not None and fraction != options.test_fraction:
        raise ValueError(
            f"domain {options.domain!r} in {options.output} was ingested with "
            f"--test-fraction {fraction}; use the same value, or the splits would disagree"
        )


# --- steps ------------------------------------------------------------------------------


def _reject(source_uri: str, reason: str, detail: str, now: datetime) -> dict[str, Any]:
    return {"source_uri": source_uri, "reason": reason, "detail": detail, "ingested_at": now}


def one_input(keyed: tuple[str, list[Candidate]]) -> Candidate:
    """The candidates of one source_uri not yet in the domain -> one input: the same file
    named twice (overlapping patterns) is one input, readable rather than failed."""
    _, new = keyed
    return min(new, key=lambda item: (item["reason"] is not None, item["detail"]))


class CountIngested(ProgressDoFn):
    """An input that already has a row in the domain is accounted for: count, skip it."""

    def __init__(self, progress: str | None = None) -> None:
        super().__init__(progress)
        self.skipped = Metrics.counter(NAMESPACE, "already_ingested")

    def process(self, _: Any) -> Iterator[None]:
        self.skipped.inc()
        self.progress.add("skipped")
        return iter(())


class HashInput(ProgressDoFn):
    """Candidate -> (image_id, candidate): reads the bytes to hash them, then lets go of
    them (archive members keep theirs), so the duplicate join moves ids, not images.

    Candidates that cannot be read go to the `failed` output as reject rows."""

    FAILED = "failed"

    def __init__(self, now: datetime, progress: str | None = None) -> None:
        super().__init__(progress)
        self.now = now
        self.read = Metrics.counter(NAMESPACE, "read")

    def setup(self) -> None:
        super().setup()
        use_storage_emulator()

    def process(self, item: Candidate) -> Iterator[Any]:
        self.read.inc()
        data, failure = read_input(item)
        if failure is not None:
            reason, detail = failure
            self.progress.add("rejected")
            yield beam.pvalue.TaggedOutput(
                self.FAILED, _reject(item["source_uri"], reason, detail, self.now)
            )
            return
        image_id = dataset.image_id_for(data)
        yield image_id, {**item, "image_id": image_id}


class ResolveDuplicates(ProgressDoFn):
    """(image_id, {"new": candidates, "old": markers}) -> the one candidate that keeps the
    id, and `duplicate` rejects for the rest (all of them, when the domain has the id)."""

    DUPLICATE = "duplicate"

    def __init__(self, now: datetime, progress: str | None = None) -> None:
        super().__init__(progress)
        self.now = now

    def process(self, joined: tuple[str, dict[str, Iterable]]) -> Iterator[Any]:
        image_id, groups = joined
        new = sorted(groups["new"], key=lambda item: item["source_uri"])
        if not new:
            return
        already = any(True for _ in groups["old"])
        keep = [] if already else new[:1]
        yield from keep
        for item in new[len(keep) :]:
            row = _reject(item["source_uri"], "duplicate", image_id, self.now)
            self.progress.add("rejected")
            yield beam.pvalue.TaggedOutput(self.DUPLICATE, row)


class DecodeImage(beam.DoFn):
    """Candidate -> an image row (decoded, validated, resized, encoded) or a reject row.

    Plain files are read a second time here (the first read only hashed them), with
    `read_again`: a file whose bytes changed in between is rejected as `unreadable` rather
    than stored under an id that is not its own."""

    def __init__(self, settings: dataset.PrepareSettings, now: datetime) -> None:
        self.settings = settings
        self.now = now

    def setup(self) -> None:
        use_storage_emulator()

    def process(self, item: Candidate) -> Iterator[dict[str, Any]]:
        uri = item["source_uri"]
        data, failure = read_again(item)
        if failure is not None:
            yield _reject(uri, *failure, self.now)
            return
        try:
            prepared = dataset.prepare_image(data, self.settings)
        except imaging.ImageError as error:
            yield _reject(uri, error.reason, error.detail, self.now)
            return
        image_id = item["image_id"]
        yield {"image_id": image_id, "source_uri": uri, **vars(prepared), "ingested_at": self.now}


class RouteRows(ProgressDoFn):
    """Decoded rows -> the `train` / `test` image outputs and the `rejects` output.

    Accepted images are counted here; rejects are counted once, where all of them meet
    (`CountRejects`)."""

    def __init__(self, test_fraction: float, progress: str | None = None) -> None:
        super().__init__(progress)
        self.test_fraction = test_fraction
        self.accepted = Metrics.counter(NAMESPACE, "accepted")

    def process(self, row: dict[str, Any]) -> Iterator[Any]:
        if "reason" in row:
            self.progress.add("rejected")
            yield beam.pvalue.TaggedOutput("rejects", row)
            return
        self.accepted.inc()
        self.progress.add("accepted")
        yield beam.pvalue.TaggedOutput(dataset.split_for(row["image_id"], self.test_fraction), row)


class CountRejects(beam.DoFn):
    def process(self, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        Metrics.counter(NAMESPACE, f"rejected_{row['reason']}").inc()
        yield row


class ExistingKeys(beam.PTransform):
    """(key, True) for every `column` value already stored under `patterns`."""

    def __init__(self, patterns: list[str], column: str) -> None:
        super().__init__()
        self.patterns = patterns
        self.column = column

    def expand(self, pipeline):
        return (
            pipeline
            | "ListExisting" >> beam.Create(self.patterns)
            | "ReadExisting" >> ReadAllFromParquet(columns=[self.column])
            | "KeyExisting" >> beam.Map(_key_row, self.column)
        )


def _key_row(row: dict[str, Any], column: str) -> tuple[str, bool]:
    return row[column], True


def _key_by_source(item: Candidate) -> tuple[str, Candidate]:
    return item["source_uri"], item


# --- the graph ----------------------------------------------------------------------------


def build(
    pipeline: beam.Pipeline, options: IngestOptions, run_id: str, progress: str | None = None
) -> dict[str, Any]:
    """Add the ingest graph to `pipeline`; returns the written-file PCollections by output."""
    root, domain = options.output.rstrip("/"), options.domain
    now = datetime.now(UTC).replace(microsecond=0)
    images_dir = dataset.images_dir(root, domain)
    rejects_dir = dataset.rejects_dir(root, domain)
    old_images = f"{images_dir}/split=*/*.parquet"
    old_rejects = f"{rejects_dir}/*.parquet"

    candidates = pipeline | "MatchInputs" >> MatchInputs(options.inputs, progress)
    seen_sources = (
        (pipeline | "OldImageSources" >> ExistingKeys([old_images], "source_uri")),
        (pipeline | "OldRejectSources" >> ExistingKeys([old_rejects], "source_uri")),
    ) | "MergeOldSources" >> beam.Flatten()
    joined = {
        "new": candidates | "KeyBySource" >> beam.Map(_key_by_source),
        "done": seen_sources,
    } | "SkipIngested" >> AntiJoin()
    _ = joined[AntiJoin.DONE] | "CountIngested" >> beam.ParDo(CountIngested(progress))
    fresh = joined.todo | "OneInputPerSource" >> beam.Map(one_input)
    hashed = fresh | "HashInput" >> beam.ParDo(HashInput(now, progress)).with_outputs(
        HashInput.FAILED, main="hashed"
    )
    old_ids = pipeline | "OldImageIds" >> ExistingKeys([old_images], "image_id")
    resolved = (
        {"new": hashed.hashed, "old": old_ids}
        | "JoinOnImageId" >> beam.CoGroupByKey()
        | "ResolveDuplicates"
        >> beam.ParDo(ResolveDuplicates(now, progress)).with_outputs(
            ResolveDuplicates.DUPLICATE, main="kept"
        )
    )
    # Image rows (which carry the encoded images) are routed and written in the stage that
    # decodes them. A Flatten of them with the rejects of the earlier stages would not fuse:
    # the local runner would ship every encoded image out of the workers and back in.
    routed = (
        resolved.kept
        | "DecodeImage" >> beam.ParDo(DecodeImage(settings_from(options), now))
        | "RouteRows"
        >> beam.ParDo(RouteRows(options.test_fraction, progress)).with_outputs(
            "train", "test", "rejects"
        )
    )
    rejects = (
        (routed.rejects, resolved[ResolveDuplicates.DUPLICATE], hashed[HashInput.FAILED])
        | "AllRejects" >> beam.Flatten()
        | "CountRejects" >> beam.ParDo(CountRejects())
    )
    row_group = options.row_group_mb << 20
    written = {}
    for split in dataset.SPLITS:
        written[split] = routed[split] | f"Write{split.title()}" >> WriteToParquet(
            f"{dataset.images_dir(root, domain, split)}/part-{run_id}",
            schema=dataset.IMAGE_SCHEMA,
            file_name_suffix=".parquet",
            row_group_buffer_size=row_group,
            record_batch_size=ROWS_PER_RECORD_BATCH,
        )
    written["rejects"] = rejects | "WriteRejects" >> WriteToParquet(
        f"{rejects_dir}/part-{run_id}",
        schema=dataset.REJECT_SCHEMA,
        file_name_suffix=".parquet",
        record_batch_size=1024,
    )
    # The manifest is part of the job, not of its launcher: on Dataflow (a Flex Template
    # launch returns as soon as the job is submitted) nobody waits to write it afterwards.
    # Each sink emits its file names only after finalizing them, so this runs once, last.
    _ = (
        list(written.values())
        | "AllWritten" >> beam.Flatten()
        | "CountWritten" >> beam.combiners.Count.Globally()
        | "FinishDataset" >> beam.ParDo(FinishDataset(options, run_id))
    )
    return written


class FinishDataset(beam.DoFn):
    """After every write of the run: drop its empty part files and rewrite `_manifest.json`
    (counts, settings, fingerprints recounted from the Parquet files themselves)."""

    def __init__(self, options: IngestOptions, run_id: str) -> None:
        self.root, self.domain, self.run_id = options.output, options.domain, run_id
        self.settings = {**settings_from(options).to_json(), "test_fraction": options.test_fraction}

    def setup(self) -> None:
        use_storage_emulator()

    def process(self, _: int) -> Iterator[str]:
        remove_empty_parts(self.root, self.domain, self.run_id)
        dataset.write_manifest(self.root, self.domain, self.settings)
        yield self.root


def run(argv: Sequence[str] | None = None, *, wait: bool = True) -> dict[str, Any]:
    """Run ingest; returns the counters, the manifest and the run id. `wait=False` (Flex
    Template launches) returns once the job is submitted, with only the run id and result."""
    options = parse_options(argv, IngestOptions)
    validate(options)
    run_id = new_run_id()  # names this run's files
    started = time.perf_counter()
    pipeline = make_pipeline(options)
    progress = ProgressLine(
        "ingest", ("accepted", "rejected", "skipped"), enabled=wait and is_local(options)
    )
    with progress:
        build(pipeline, options, run_id, progress.address)
        result = pipeline.run()
        if not wait:
            return {"run_id": run_id, "result": result}
        result.wait_until_finish()
    seconds = time.perf_counter() - started
    counters = summary.counters(result, NAMESPACE)
    manifest = dataset.read_manifest(options.output) or {"domains": {}}
    print(summary.ingest_table(counters, manifest["domains"].get(options.domain), seconds))
    return {"run_id": run_id, "counters": counters, "manifest": manifest, "seconds": seconds}


def remove_empty_parts(root: str, domain: str, run_id: str) -> None:
    """Beam's file sink writes one empty file for an empty output; drop this run's."""
    import pyarrow.parquet as pq

    pattern = f"{root.rstrip('/')}/*/domain={domain}/**part-{run_id}*.parquet"
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(metadata.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            rows = pq.ParquetFile(f).metadata.num_rows
        if rows == 0:
            FileSystems.delete([metadata.path])


def main(argv: Sequence[str] | None = None, *, wait: bool = True) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv, wait=wait)
    except ValueError as error:
        print(f"ingest: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
