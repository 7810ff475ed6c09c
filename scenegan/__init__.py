"""scenegan: GAN-based stylization of natural-scene images at scale.

Stages (see DESIGN.md): ingest (Beam) -> train (torch) -> export -> stylize (Beam).
The library is importable without Beam; `pipelines/` holds the Beam graphs.
"""

__version__ = "0.1.0"
