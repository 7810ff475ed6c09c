"""End-of-run reporting: Beam metric counters read back and printed as a table."""

from __future__ import annotations

from typing import Any

from apache_beam.metrics.metric import MetricsFilter

from pipelines.console import format_rate


def counters(result: Any, namespace: str) -> dict[str, int]:
    """Committed counter values of `namespace` (attempted where a runner has no committed)."""
    query = result.metrics().query(MetricsFilter().with_namespace(namespace))
    totals: dict[str, int] = {}
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        name = counter.key.metric.name
        totals[name] = totals.get(name, 0) + int(value or 0)
    return totals


def table(rows: list[tuple[str, Any]], title: str) -> str:
    width = max([len(name) for name, _ in rows] + [len(title)])
    lines = [title, "-" * (width + 12)]
    lines += [f"{name:<{width}}  {value:>10}" for name, value in rows]
    return "\n".join(lines)


def ingest_table(totals: dict[str, int], domain: dict | None, seconds: float) -> str:
    """The run's counts, then what the domain holds now."""
    rejected = sorted((k, v) for k, v in totals.items() if k.startswith("rejected_"))
    rows: list[tuple[str, Any]] = [
        ("inputs read", totals.get("read", 0)),
        ("already ingested (skipped)", totals.get("already_ingested", 0)),
        ("accepted", totals.get("accepted", 0)),
    ]
    rows += [(f"rejected: {name.removeprefix('rejected_')}", n) for name, n in rejected]
    processed = totals.get("read", 0)
    rows.append(("images/s", format_rate(processed / max(seconds, 1e-9))))
    if domain:
        for split, count in sorted(domain["images"].items()):
            rows.append((f"domain total: {split}", count))
        rows.append(("domain total: rejects", sum(domain["rejects"].values())))
    return table(rows, "ingest summary")


def stylize_table(totals: dict[str, int], seconds: float, output: str, run_id: str) -> str:
    """Counts by status (and reject reason), images/s, and where the report went."""
    rows: list[tuple[str, Any]] = [
        (status, totals.get(f"status_{status}", 0)) for status in ("ok", "skipped", "rejected")
    ]
    rejected = sorted((k, v) for k, v in totals.items() if k.startswith("rejected_"))
    rows += [(f"  rejected: {name.removeprefix('rejected_')}", n) for name, n in rejected]
    rows.append(("images/s (ok)", format_rate(totals.get("ok", 0) / max(seconds, 1e-9))))
    rows.append(("seconds", f"{seconds:.1f}"))
    table_text = table(rows, f"stylize summary (run {run_id})")
    return f"{table_text}\nmetadata: {output}/metadata/run={run_id}/\nreport: {output}/report/"
