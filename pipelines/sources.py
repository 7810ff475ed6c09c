"""Pipeline inputs: PATTERNs to one element per input file, and reading those files.

A PATTERN is a local path, directory or glob, a `gs://` glob, a manifest (a `.txt` file with
one URI a line, or a `.parquet` file with a `uri` column), or a `.zip` / `.tar` archive of
images. Each input file becomes one *candidate*, a dict:

    {"source_uri": str, "data": bytes | None, "reason": str | None, "detail": str}

`data` is filled for archive members (an archive is read once, front to back); plain files
are read later, after the reshuffle, with `read_input`. A candidate that already failed
(`reason` set: a pattern that matched nothing, an unreadable manifest line, a missing file)
still flows through the pipeline and ends as a reject row, so every input is accounted for.

Archive members are named `<archive uri>!/<member path>`. Hidden files (a name starting with
'.') found by listing a directory or glob are not inputs; they are skipped, as `ls` does.
"""

from __future__ import annotations

import io
import logging
import tarfile
import zipfile
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipelines.console import ProgressCounter
from pipelines.options import use_storage_emulator
from scenegan import dataset
from scenegan.dataset import image_id_for

log = logging.getLogger(__name__)

TEXT_MANIFEST_SUFFIXES = (".txt", ".lst", ".manifest")
PARQUET_SUFFIX = ".parquet"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MEMBER_SEPARATOR = "!/"
WILDCARDS = set("*?[")
MANIFEST_BATCH_ROWS = 65_536

Candidate = dict[str, Any]


def candidate(source_uri: str, data: bytes | None = None) -> Candidate:
    return {"source_uri": source_uri, "data": data, "reason": None, "detail": ""}


def failed(source_uri: str, reason: str, detail: str) -> Candidate:
    return {"source_uri": source_uri, "data": None, "reason": reason, "detail": detail}


def absolute(pattern: str) -> str:
    """Local patterns made absolute, so source URIs do not depend on the working directory."""
    import os

    if "://" in pattern:
        return pattern
    return os.path.abspath(os.path.expanduser(pattern))


def is_archive(uri: str) -> bool:
    return uri.lower().endswith(ARCHIVE_SUFFIXES)


def manifest_kind(pattern: str) -> str | None:
    """'text' or 'parquet' when PATTERN names a manifest file (not a glob), else None."""
    if WILDCARDS & set(pattern):
        return None
    lower = pattern.lower()
    if lower.endswith(TEXT_MANIFEST_SUFFIXES):
        return "text"
    if lower.endswith(PARQUET_SUFFIX):
        return "parquet"
    return None


def open_raw(uri: str):
    """A binary file object for `uri`, never decompressed on the fly (a .gz stays bytes)."""
    return FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED)


def match_files(pattern: str) -> list[str]:
    """The files PATTERN names: a glob's matches, a file, or everything under a directory."""
    matches = _match(pattern)
    if not matches and not (WILDCARDS & set(pattern)):
        matches = _match(pattern.rstrip("/") + "/**")  # a directory
    elif matches == [pattern.rstrip("/")] and _is_local_directory(pattern):
        matches = _match(pattern.rstrip("/") + "/**")
    visible = [uri for uri in matches if not _basename(uri).startswith(".")]
    return sorted(visible)


def _match(pattern: str) -> list[str]:
    result = FileSystems.match([pattern])[0]
    return [metadata.path for metadata in result.metadata_list]


def _is_local_directory(pattern: str) -> bool:
    import os

    return "://" not in pattern and os.path.isdir(pattern)


def _basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


class ExpandInputs(beam.DoFn):
    """PATTERN -> candidates: the files it matches, a manifest's lines, an archive's members."""

    def __init__(self, progress: str | None = None) -> None:
        self.patterns = Metrics.counter("inputs", "patterns")
        self.progress_address = progress

    def setup(self) -> None:
        use_storage_emulator()
        self.progress = ProgressCounter(self.progress_address)

    def process(self, pattern: str) -> Iterator[Candidate]:
        self.patterns.inc()
        for item in self._expand(pattern):
            self.progress.add("matched")
            yield item

    def finish_bundle(self) -> None:
        self.progress.flush()

    def _expand(self, pattern: str) -> Iterator[Candidate]:
        if is_dataset_partition(pattern):
            yield from dataset_rows(pattern)
            return
        kind = manifest_kind(pattern)
        if kind == "text":
            yield from text_manifest(pattern)
            return
        if kind == "parquet":
            yield from parquet_manifest(pattern)
            return
        try:
            files = match_files(pattern)
        except Exception as error:  # a bad bucket or pattern: one reject, not a crash
            yield failed(pattern, "not_found", f"matching the pattern failed: {error}")
            return
        if not files:
            yield failed(pattern, "not_found", "the pattern matched no files")
            return
        for uri in files:
            if is_archive(uri):
                yield from archive_members(uri)
            else:
                yield candidate(uri)


def is_dataset_partition(pattern: str) -> bool:
    """A folder of an ingested dataset, e.g. DATASET/images/domain=photo/split=test."""
    return dataset.is_partition(pattern) and not (WILDCARDS & set(pattern))


def dataset_rows(pattern: str) -> Iterator[Candidate]:
    """The image rows under a dataset folder: their stored bytes, ids and source URIs."""
    files = [uri for uri in match_files(pattern) if uri.endswith(PARQUET_SUFFIX)]
    if not files:
        yield failed(pattern, "not_found", "no Parquet files in this dataset folder")
    for uri in files:
        with open_raw(uri) as handle:
            parquet = pq.ParquetFile(handle)
            for batch in parquet.iter_batches(
                batch_size=256, columns=["image_id", "source_uri", "image"]
            ):
                for row in batch.to_pylist():
                    item = candidate(row["source_uri"], row["image"])
                    item["image_id"] = row["image_id"]
                    yield item


def _manifest_entry(manifest: str, number: int, line: str) -> Candidate | None:
    """The candidate for one manifest line: None for blank lines and '#' comments."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    where = f"{manifest}#L{number}"
    if any(ord(char) < 32 for char in text):
        return failed(where, "unreadable", f"manifest line {number} has control characters")
    if "://" in text and not text.startswith("gs://"):
        scheme = text.split("://", 1)[0]
        return failed(where, "unreadable", f"manifest line {number}: {scheme}:// is not read")
    if "://" not in text and not text.startswith("/"):
        text = manifest.rsplit("/", 1)[0] + "/" + text  # relative to the manifest
    if WILDCARDS & set(text):
        return failed(where, "unreadable", f"manifest line {number} is a glob, not a URI")
    return candidate(text)


def _entries(manifest: str, lines: Iterator[tuple[int, str | None, str]]) -> Iterator[Candidate]:
    """Candidates from (number, text, problem) lines: text None means the line itself is
    unreadable (`problem` says why)."""
    for number, text, problem in lines:
        if text is None:
            yield failed(f"{manifest}#L{number}", "unreadable", problem)
            continue
        entry = _manifest_entry(manifest, number, text)
        if entry is not None:
            yield entry


def text_manifest(manifest: str) -> Iterator[Candidate]:
    """One candidate per line of a UTF-8 text manifest; a line that is not text is a reject."""
    try:
        handle = open_raw(manifest)
    except Exception as error:
        yield failed(manifest, "not_found", f"cannot open the manifest: {error}")
        return

    def lines() -> Iterator[tuple[int, str | None, str]]:
        for number, raw in enumerate(io.BufferedReader(handle), start=1):
            try:
                yield number, raw.decode("utf-8"), ""
            except UnicodeDecodeError:
                yield number, None, f"manifest line {number} is not UTF-8"

    with handle:
        yield from _entries(manifest, lines())


def parquet_manifest(manifest: str) -> Iterator[Candidate]:
    """One candidate per row of a Parquet manifest's `uri` column, read in batches."""
    try:
        handle = open_raw(manifest)
        parquet = pq.ParquetFile(handle)
    except Exception as error:
        yield failed(manifest, "unreadable", f"cannot read the Parquet manifest: {error}")
        return

    def rows() -> Iterator[tuple[int, str | None, str]]:
        number = 0
        for batch in parquet.iter_batches(batch_size=MANIFEST_BATCH_ROWS, columns=["uri"]):
            for value in batch.column(0).to_pylist():
                number += 1
                if isinstance(value, str):
                    yield number, value, ""
                else:
                    yield number, None, f"row {number}: uri is {value!r}"

    with handle:
        if "uri" not in parquet.schema_arrow.names:
            columns = ", ".join(parquet.schema_arrow.names)
            yield failed(manifest, "unreadable", f"no 'uri' column (columns: {columns})")
            return
        yield from _entries(manifest, rows())


def archive_members(archive: str) -> Iterator[Candidate]:
    """The regular files in a .zip or .tar archive, with their bytes, read in one pass.

    A damaged archive yields the members read before the damage, then one reject for the
    archive itself."""
    try:
        handle = open_raw(archive)
    except Exception as error:
        yield failed(archive, "not_found", f"cannot open the archive: {error}")
        return
    count = 0
    try:
        with handle:
            members = _zip_members if archive.lower().endswith(".zip") else _tar_members
            for name, data in members(handle):
                count += 1
                yield candidate(f"{archive}{MEMBER_SEPARATOR}{name}", data)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        yield failed(archive, "unreadable", f"archive damaged after {count} members: {error}")


def _visible_member(name: str) -> bool:
    parts = name.split("/")
    return not any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _zip_members(handle) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(handle) as archive:
        for info in archive.infolist():
            if not info.is_dir() and _visible_member(info.filename):
                yield info.filename, archive.read(info)


def _tar_members(handle) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=handle, mode="r|*") as archive:
        for info in archive:
            if info.isfile() and _visible_member(info.name):
                extracted = archive.extractfile(info)
                yield info.name, extracted.read() if extracted else b""


def read_input(item: Candidate) -> tuple[bytes | None, tuple[str, str] | None]:
    """(bytes, None) for a candidate, or (None, (reason, detail)) when it cannot be read."""
    if item["reason"] is not None:
        return None, (item["reason"], item["detail"])
    if item["data"] is not None:
        return item["data"], None
    try:
        with open_raw(item["source_uri"]) as handle:
            return handle.read(), None
    except FileNotFoundError:
        return None, ("not_found", "the file does not exist")
    except Exception as error:
        kind = "not_found" if "not found" in str(error).lower() else "unreadable"
        return None, (kind, f"reading failed: {type(error).__name__}: {error}")


def read_again(item: Candidate) -> tuple[bytes | None, tuple[str, str] | None]:
    """A second read of a candidate hashed earlier (`image_id` set), as `read_input`. Bytes
    carried along (archive members, dataset rows) are used as they are; a file read again
    must still hash to its id, or it changed in between and is `unreadable`."""
    data, failure = read_input(item)
    if failure is None and item["data"] is None and image_id_for(data or b"") != item["image_id"]:
        return None, ("unreadable", "the file changed during the run")
    return data, failure


class MatchInputs(beam.PTransform):
    """PATTERNs -> candidates, reshuffled so that reading and decoding spread over workers."""

    def __init__(self, patterns: list[str], progress: str | None = None) -> None:
        super().__init__()
        self.patterns = [absolute(pattern) for pattern in patterns]
        self.progress = progress  # a console.ProgressLine address: count "matched" there

    def expand(self, pipeline):
        return (
            pipeline
            | "ListPatterns" >> beam.Create(self.patterns)
            | "ExpandInputs" >> beam.ParDo(ExpandInputs(self.progress))
            | "Reshuffle" >> beam.Reshuffle()
        )
