"""Export a training run as the shipped model, judged on the bundled sample's held-out photos.

    python bench/ship_model.py --run RUN --output scenegan/shipped/photo-to-painting \\
        --command "the scenegan train command line that made RUN"

Writes the run's EMA generator as a MODEL whose model.json records the training command
(`training.command`) and the held-out scores (`metrics`: KID against the sample's paintings
on Lite0 features, the same KID for the untouched photos, the content score), and checks
the size the repository allows (5 MB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scenegan import artifact, dataset, judging
from scenegan.training.data import DomainImages
from scenegan.training.export import exportable

SAMPLE = Path(__file__).resolve().parents[1] / "scenegan" / "sample"
LIMIT_BYTES = 5 * 1024 * 1024


def held_out_scores(generator, size: int, test_fraction: float) -> dict[str, float]:
    def images(domain: str, split: str | None):
        sources = list(dataset.iter_domain(str(SAMPLE), domain, split, test_fraction=test_fraction))
        loaded = DomainImages(domain, sources, image_size=size, load_size=size)
        return loaded.batch(list(range(len(loaded))))

    photos, paintings = images("photo", "test"), images("painting", None)
    scores = judging.style_scores(photos, judging.translate(generator, photos), paintings)
    return {f"sample_{name}": round(value, 4) for name, value in scores.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--command", required=True, help="how RUN was trained")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args()
    generator, fields = exportable(args.run)
    fields["training"] = {**fields["training"], "command": args.command, "run": None}
    fields["metrics"] = held_out_scores(generator, fields["image_size"], args.test_fraction)
    info = artifact.save_model(args.output, generator, **fields)
    size = sum(path.stat().st_size for path in Path(args.output).iterdir())
    print(f"shipped {info['model_id'][:16]} -> {args.output} ({size / 1e6:.2f} MB)")
    print(f"metrics on the sample's held-out photos: {fields['metrics']}")
    if size > LIMIT_BYTES:
        print(f"error: {size} bytes is over the {LIMIT_BYTES} allowed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
