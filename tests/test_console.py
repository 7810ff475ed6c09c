"""What a person sees of a local run: no harmless Beam warnings, one live progress line,
rates with sensible precision; real runs captured from a subprocess, and the line's pacing
checked on a fake clock."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_model
from PIL import Image

from pipelines import console

ROOT = Path(__file__).resolve().parents[1]


def _photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo-{index:02d}.jpg", quality=90)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


def _run(*argv: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "scenegan.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=300,
        check=False,
    )


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line or "WARN " in line]


def test_a_local_stylize_run_shows_one_progress_line_then_the_summary(tmp_path):
    model = make_model(str(tmp_path / "model"))
    photos = _photos(tmp_path / "photos", 6)
    argv = ["stylize", "--model", model, "--input", str(photos), "--output", str(tmp_path / "out")]
    argv += ["--max-side", "64", "--direct_num_workers", "1"]
    done = _run(*argv)
    assert done.returncode == 0, done.stderr
    assert _warnings(done.stderr) == [], done.stderr
    lines = done.stderr.splitlines()
    assert lines == [
        "stylize: 7 matched, 7 done (100%): 6 ok, 1 rejected, 0 skipped; "
        + lines[0].rsplit("; ", 1)[1]
    ], done.stderr
    assert lines[0].endswith(" img/s") and " 0.0 " not in lines[0]
    summary = done.stdout.splitlines()
    assert summary[0].startswith("stylize summary (run ")
    assert "ok" in done.stdout and "images/s (ok)" in done.stdout

    # --verbose shows what is hidden by default; an unknown flag is named once, by us
    again = _run(*argv, "--verbose", "--colour", "blue")
    assert again.returncode == 0, again.stderr
    assert "Discarding unparseable args" in again.stderr
    unknown = [line for line in again.stderr.splitlines() if "no scenegan or Beam option" in line]
    assert len(unknown) == 1 and "--colour" in unknown[0]
    assert "7 matched, 7 done (100%): 0 ok, 1 rejected, 6 skipped" in again.stderr


def test_a_local_ingest_run_shows_one_progress_line_then_the_summary(tmp_path):
    photos = _photos(tmp_path / "photos", 5)
    done = _run(
        "ingest",
        "--input",
        str(photos),
        "--output",
        str(tmp_path / "data"),
        "--domain",
        "photo",
        "--direct_num_workers",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert _warnings(done.stderr) == [], done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "ingest: 6 matched, 6 done (100%): 5 accepted, 1 rejected, 0 skipped; "
    ), done.stderr
    assert done.stdout.startswith("ingest summary")


def test_the_harmless_filter_hides_only_known_warnings():
    hide = console.HideHarmless()

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("apache_beam.x", level, __file__, 1, message, (), None)

    assert not hide.filter(record(logging.WARNING, "Discarding unparseable args: ['--model']"))
    assert not hide.filter(
        record(
            logging.WARNING,
            'Worker: message: "Resource module is not available for '
            'current platform, memory usage cannot be fetched."',
        )
    )
    assert hide.filter(record(logging.WARNING, "a batch of 8 failed (boom); retrying"))
    assert hide.filter(record(logging.ERROR, "Discarding unparseable args, but as an error"))


def test_unknown_flags_are_those_no_option_class_declares():
    import pipelines.options  # noqa: F401  (registers scenegan's option classes)

    flags = ["--model", "m", "--runner", "DirectRunner", "--max-side", "64", "--colour", "blue"]
    assert console.unknown_flags(flags) == ["--colour"]


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (0.0, "0"),
        (0.01234, "0.0123"),
        (0.5, "0.500"),
        (1.234, "1.23"),
        (12.34, "12.3"),
        (99.94, "99.9"),
        (123.4, "123"),
        (12345.6, "12,346"),
    ],
)
def test_rates_keep_three_significant_digits(rate, text):
    assert console.format_rate(rate) == text


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_the_line_is_rewritten_at_most_once_a_second():
    clock, stream = FakeClock(), io.StringIO()
    line = console.ProgressLine(
        "stylize",
        ("ok", "rejected", "skipped"),
        stream=stream,
        clock=clock,
        tty=True,
        enabled=False,
    )
    line.add({"matched": 20})
    for step in range(40):  # counts arrive every 0.1 s for 4 s
        clock.now = step * 0.1
        line.add({"ok": 1} if step % 4 == 0 else {})
        line.tick()
    updates = stream.getvalue().split("\r")[1:]
    assert 4 <= len(updates) <= 5  # at t = 0, 1, 2, 3 (and not more often)
    assert "20 matched" in updates[-1] and "ETA" in updates[-1]


def test_into_a_file_a_short_run_prints_nothing_until_the_end():
    clock, stream = FakeClock(), io.StringIO()
    line = console.ProgressLine(
        "ingest",
        ("accepted", "rejected", "skipped"),
        stream=stream,
        clock=clock,
        tty=False,
        enabled=False,
    )
    for step in range(30):
        clock.now = step
        line.add({"matched": 1, "accepted": 1})
        line.tick()
    assert stream.getvalue() == ""
    clock.now = 61.0
    line.tick()
    assert stream.getvalue().count("\n") == 1 and "30 accepted" in stream.getvalue()


def test_worker_counts_reach_the_line_over_its_socket(tmp_path):
    stream = io.StringIO()
    with console.ProgressLine(
        "stylize", ("ok", "rejected", "skipped"), per_input=2, stream=stream, tty=False
    ) as line:
        counter = console.ProgressCounter(line.address, interval=0)
        counter.add("matched", 3)
        for status in ("ok", "ok", "rejected", "ok", "skipped", "ok"):
            counter.add(status)
        counter.flush()
    assert stream.getvalue().startswith(
        "stylize: 3 matched, 6 done (100%): 4 ok, 1 rejected, 1 skipped; "
    )
    assert not os.path.exists(line.address)  # the socket's folder is removed
    console.ProgressCounter(line.address).add("ok")  # a late worker: no error, no effect
