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
