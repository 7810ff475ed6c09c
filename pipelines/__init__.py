"""Beam pipelines of scenegan: one module per pipeline, `build(pipeline, options)` apart
from `run(argv)`. The ingest and stylize pipelines land with their issues (#4, #5)."""
