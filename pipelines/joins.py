"""The anti-join both pipelines run: "skip what an earlier run already did".

    {"new": (key, element), "done": (key, marker)} | AntiJoin()
        -> main:  (key, [elements]) for keys with new elements and no marker
        -> done:  (key, [elements]) for keys an earlier run already has

Ingest keys inputs by `source_uri` against the dataset's rows. (Stylize, which can run
several models, joins `image_id` with each style's done markers in its own
`SplitDoneStyles`.) Only keys and small dicts cross it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam


class AntiJoin(beam.PTransform):
    """Split keyed new elements into those with no `done` marker (main output, "todo")
    and those an earlier run did (the DONE output); keys without new elements vanish."""

    DONE = "done"

    def expand(self, inputs: dict[str, Any]) -> Any:
        return (
            inputs
            | "CoGroupByKey" >> beam.CoGroupByKey()
            | "SplitDone" >> beam.ParDo(_SplitDone()).with_outputs(self.DONE, main="todo")
        )


class _SplitDone(beam.DoFn):
    def process(self, joined: tuple[Any, dict[str, Iterable]]) -> Iterator[Any]:
        key, groups = joined
        new = list(groups["new"])
        if not new:
            return
        if any(True for _ in groups["done"]):
            yield beam.pvalue.TaggedOutput(AntiJoin.DONE, (key, new))
            return
        yield key, new
