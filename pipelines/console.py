"""What a person sees of a pipeline run: Beam's known-harmless warnings hidden, flags
nobody knows named once, a live progress line, and rates printed with sensible precision.

Hidden by default (`--verbose` shows them, and INFO logs too), all from Beam 2.77 and all
about our own flags or the local machine, never about the run's work:
  - "Discarding unparseable args" / "Discarding invalid overrides" / "Unparseable
    argument": Beam's parsers do not know scenegan's own flags (a truly unknown flag is
    reported by `warn_unknown_flags` instead, once, by name);
  - "No semi_persistent_directory found" (each local worker, at start);
  - "Resource module is not available for current platform" (once per bundle).
Local workers' log lines reach the launching process through Beam's job service logger, so
one filter on the root handlers covers the workers too. Errors and other warnings show.

The progress line: local runs only (a remote runner has its own console). Worker DoFns
(`ProgressDoFn`) count what they did where they do it (a count after a Flatten would only
run once the whole stage before it had) into a `ProgressCounter`, which sends small JSON
datagrams to a Unix socket the launching process listens on (`ProgressLine`); losing one
only makes the line lag, never the run's counts, which come from Beam's metrics. On a terminal the
line is rewritten in place at most once a second; into a file or pipe it is printed once
a minute, and always once at the end, so a captured run shows one line per minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import apache_beam as beam

HARMLESS = (
    "Discarding unparseable args",
    "Discarding invalid overrides",
    "Unparseable argument",
    "No semi_persistent_directory found",
    "Resource module is not available for current platform",
)
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
log = logging.getLogger(__name__)


class HideHarmless(logging.Filter):
    """Drops warning-or-lower records that carry one of the HARMLESS texts."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True
        message = record.getMessage()
        return not any(text in message for text in HARMLESS)


def configure_logging(verbose: bool = False) -> None:
    """Root logging for a pipeline command: WARNING with the harmless ones hidden, or
    (`--verbose`) INFO and everything."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for handler in root.handlers:
        for old in [f for f in handler.filters if isinstance(f, HideHarmless)]:
            handler.removeFilter(old)
        if not verbose:
            handler.addFilter(HideHarmless())


def unknown_flags(flags: Sequence[str]) -> list[str]:
    """The flags in `flags` that no PipelineOptions class (Beam's or scenegan's) declares."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False, conflict_handler="resolve")
    pending = list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if "_add_argparse_args" in cls.__dict__:
            cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(flags))
    return [flag for flag in unknown if flag.startswith("-")]


def warn_unknown_flags(flags: Sequence[str]) -> None:
    unknown = unknown_flags(flags)
    if unknown:
        log.warning(
            "no scenegan or Beam option is called %s: local runs ignore it, a remote runner "
            "receives it as given",
            ", ".join(unknown),
        )


# --- rates ----------------------------------------------------------------------------


def format_rate(per_second: float) -> str:
    """3 significant digits below 100 (0.0123, 1.23, 12.3), whole numbers above."""
    if per_second <= 0:
        return "0"
    if per_second >= 100:
        return f"{per_second:,.0f}"
    digits = max(0, 2 - int(_floor_log10(per_second)))
    return f"{per_second:.{digits}f}"


def _floor_log10(value: float) -> float:
    import math

    return math.floor(math.log10(value))


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


# --- progress: worker side --------------------------------------------------------------


class ProgressCounter:
    """Counts (`add`) and sends them to the launching process's `ProgressLine` at most
    every `interval` seconds and on `flush` (a DoFn's finish_bundle). No address: no-op."""

    def __init__(self, address: str | None, interval: float = 0.25) -> None:
        self.address, self.interval = address, interval
        self.pending: dict[str, int] = {}
        self.sent_at = 0.0
        self.socket: socket.socket | None = None

    def add(self, key: str, count: int = 1) -> None:
        if not self.address:
            return
        self.pending[key] = self.pending.get(key, 0) + count
        if time.monotonic() - self.sent_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        if not self.address or not self.pending:
            return
        self.sent_at = time.monotonic()
        message, self.pending = json.dumps(self.pending).encode(), {}
        try:
            if self.socket is None:
                self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self.socket.setblocking(False)
            self.socket.sendto(message, self.address)
        except OSError:  # the listener is gone or its queue is full: the line lags, no more
            pass


class ProgressDoFn(beam.DoFn):
    """A DoFn that counts what it did into the live progress line: `self.progress.add(...)`
    (a subclass's own `setup` calls `super().setup()`)."""

    def __init__(self, progress: str | None = None) -> None:
        self.progress_address = progress

    def setup(self) -> None:
        self.progress = ProgressCounter(self.progress_address)

    def finish_bundle(self) -> None:
        self.progress.flush()


# --- progress: the launching process ------------------------------------------------------


class ProgressLine:
    """Listens for the workers' counts and prints the run's progress line to `stream`.

    `statuses`: the row statuses counted, in display order; `per_input`: rows per matched
    input (the number of styles); `total`: the inputs, when known upfront (generate's
    count) rather than counted as "matched" by the workers. Use as a context manager
    around the run; `address` is what the DoFns' ProgressCounters send to (None when
    `enabled` is false)."""

    def __init__(
        self,
        command: str,
        statuses: Sequence[str],
        *,
        per_input: int = 1,
        total: int | None = None,
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
        file_interval: float = 60.0,
    ) -> None:
        self.command, self.statuses, self.per_input = command, list(statuses), per_input
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.clock = clock
        self.tty = _isatty(self.stream) if tty is None else tty
        self.interval = 1.0 if self.tty else file_interval
        self.totals: dict[str, int] = {}
        self.started = self.clock()
        self.updated_at = self.started  # when counts last came in: rates stop there
        self.printed_at: float | None = None
        self.width = 0
        self._folder: str | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def address(self) -> str | None:
        return os.path.join(self._folder, "progress") if self._folder else None

    def __enter__(self) -> ProgressLine:
        if not self.enabled:
            return self
        self._folder = tempfile.mkdtemp(prefix="scenegan-progress-")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.address)
        self._socket.settimeout(0.2)
        self.started = self.updated_at = self.clock()
        self._thread = threading.Thread(target=self._listen, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, error_type: Any, *_: Any) -> None:
        if not self.enabled or self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._drain()
        self._socket.close()
        shutil.rmtree(self._folder, ignore_errors=True)
        if error_type is None and self.totals:
            self._print(final=True)

    def add(self, counts: dict[str, int]) -> None:
        with self._lock:
            for key, value in counts.items():
                if isinstance(value, int):
                    self.totals[key] = self.totals.get(key, 0) + value
            self.updated_at = self.clock()

    def tick(self) -> None:
        """Print the line if its interval has passed since the last one."""
        now = self.clock()
        due = self.printed_at is None or now - self.printed_at >= self.interval
        # into a file, the first line waits one interval too: a short run prints one line
        first_due = self.tty or self.printed_at is not None or now - self.started >= self.interval
        if self.totals and due and first_due:
            self._print()

    def line(self) -> str:
        with self._lock:
            totals = dict(self.totals)
        matched = totals.get("matched", 0) if self.total is None else self.total
        done = sum(totals.get(status, 0) for status in self.statuses)
        expected = matched * self.per_input
        seconds = max(self.updated_at - self.started, 1e-9)
        noun = "matched" if self.total is None else "to make"
        parts = [f"{self.command}: {matched:,} {noun}", f"{done:,} done"]
        if expected:
            parts[-1] += f" ({min(100, 100 * done // expected)}%)"
        counts = ", ".join(f"{totals.get(status, 0):,} {status}" for status in self.statuses)
        rate = totals.get(self.statuses[0], 0) / seconds
        text = f"{', '.join(parts)}: {counts}; {format_rate(rate)} img/s"
        if done and expected > done:
            text += f", ETA {format_duration((expected - done) * seconds / done)}"
        return text

    def _print(self, final: bool = False) -> None:
        text = self.line()
        self.printed_at = self.clock()
        if self.tty:
            padding = " " * max(0, self.width - len(text))
            self.width = len(text)
            self.stream.write(f"\r{text}{padding}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _listen(self) -> None:
        while not self._stop.is_set():
            self._receive()
            self.tick()

    def _receive(self) -> bool:
        """Take one message if one comes within the socket's timeout; False if none did."""
        try:
            message = self._socket.recv(65536)
        except OSError:  # timeout, or nothing left when draining
            return False
        with contextlib.suppress(ValueError, AttributeError):  # not ours: ignore it
            self.add(json.loads(message))
        return True

    def _drain(self) -> None:
        self._socket.setblocking(False)
        while self._receive():
            pass


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
