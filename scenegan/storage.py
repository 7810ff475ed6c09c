"""One file layer for local paths and gs:// URIs, on pyarrow.fs.

Every stage that reads or writes run directories, models or datasets goes through these
few functions, so the same code runs on a laptop and against buckets. For `gs://`,
`STORAGE_EMULATOR_HOST` (e.g. http://127.0.0.1:9023) points the client at an emulator with
anonymous access, which is how the tests run without credentials or network.
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache
from urllib.parse import urlparse

import pyarrow.fs as pafs


def is_remote(uri: str) -> bool:
    return uri.startswith("gs://")


def join(base: str, *parts: str) -> str:
    """Join path parts with '/', for local paths and URIs alike."""
    joined = base.rstrip("/")
    for part in parts:
        joined = f"{joined}/{part.strip('/')}"
    return joined


@lru_cache(maxsize=4)
def _gcs(emulator: str | None) -> pafs.FileSystem:
    if emulator:
        parsed = urlparse(emulator if "://" in emulator else f"http://{emulator}")
        return pafs.GcsFileSystem(
            anonymous=True, scheme=parsed.scheme or "http", endpoint_override=parsed.netloc
        )
    return pafs.GcsFileSystem()


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or gs:// URI."""
    if is_remote(uri):
        return _gcs(os.environ.get("STORAGE_EMULATOR_HOST")), uri[len("gs://") :]
    if "://" in uri:
        raise ValueError(f"unsupported URI scheme in {uri!r}: use a local path or gs://")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def exists(uri: str) -> bool:
    filesystem, path = resolve(uri)
    return filesystem.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(uri: str) -> bytes:
    filesystem, path = resolve(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {uri}") from None


def write_bytes(uri: str, data: bytes) -> None:
    """Write `data` so readers see the old object or the whole new one, never a part.

    Local: a temporary sibling, fsync, then rename over the target. GCS: an object upload
    only becomes visible once it is complete, so a plain write has the same guarantee.
    """
    filesystem, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    if parent:
        filesystem.create_dir(parent, recursive=True)
    if is_remote(uri):
        with filesystem.open_output_stream(path) as stream:
            stream.write(data)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def list_files(uri: str) -> list[str]:
    """The files directly under `uri` (a directory or prefix), as full URIs, sorted."""
    filesystem, path = resolve(uri)
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
    prefix = "gs://" if is_remote(uri) else ""
    infos = filesystem.get_file_info(selector)
    return sorted(prefix + info.path for info in infos if info.type == pafs.FileType.File)


def delete(uri: str) -> None:
    filesystem, path = resolve(uri)
    filesystem.delete_file(path)


def create_exclusive(uri: str, data: bytes) -> bool:
    """Create `uri` holding `data` only if it does not exist yet; True if this call made it.

    The one primitive the registry's lock is built on. Local: `O_CREAT | O_EXCL`, atomic on
    one host (and on NFSv3+). GCS: an upload with `ifGenerationMatch=0`, which the service
    rejects (412) when the object exists. The GCS emulator used by the tests ignores that
    precondition, so there a check-then-create stands in, which is not atomic; the lock's
    concurrency is tested on local paths.
    """
    if not is_remote(uri):
        path = os.path.abspath(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        return True
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        if exists(uri):
            return False
        write_bytes(uri, data)
        return True
    return _gcs_create_if_absent(uri, data)


def _gcs_create_if_absent(uri: str, data: bytes) -> bool:
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud import storage as gcs

    bucket, _, name = uri[len("gs://") :].partition("/")
    blob = gcs.Client().bucket(bucket).blob(name)
    try:
        blob.upload_from_string(data, if_generation_match=0)
    except PreconditionFailed:
        return False
    return True


def list_dirs(uri: str) -> list[str]:
    """The names of the directories (prefixes) directly under `uri`, sorted.

    Listed recursively: an object store has no directories, only key prefixes, and a
    non-recursive GCS listing through pyarrow does not report them (seen on the emulator).
    Meant for small trees such as a model registry."""
    filesystem, path = resolve(uri)
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=True)
    base = path.rstrip("/") + "/"
    names = set()
    for info in filesystem.get_file_info(selector):
        relative = info.path[len(base) :] if info.path.startswith(base) else ""
        if "/" in relative or info.type == pafs.FileType.Directory:
            names.add(relative.split("/", 1)[0])
    return sorted(name for name in names if name)


def delete_tree(uri: str) -> None:
    """Remove the directory (or prefix) `uri` and everything under it; no error if absent."""
    filesystem, path = resolve(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        filesystem.delete_dir(path)
