"""Judging a stylization the way a user would: held-out photos in, paintings as reference.

* `style_scores`: KID of the outputs against the paintings (on EfficientNet-Lite0
  features, which no discriminator trains against), the same KID for the untouched photos
  (the do-nothing baseline every model must beat), and the edge-correlation content score.
* `labelled_sheet`: a contact sheet with one labelled row per image set (input row, then
  one row per model), for a person to look at.

Used by `bench/quality.py` and the demo.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from scenegan import metrics
from scenegan.features import FeatureExtractor
from scenegan.pixels import quantize, to_pixels

LABEL_WIDTH = 150


@torch.no_grad()
def translate(generator: torch.nn.Module, images: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] through `generator` in eval mode, as 8-bit images become."""
    generator = generator.eval()
    outputs = torch.cat([generator(images[i : i + batch]) for i in range(0, len(images), batch)])
    return quantize(outputs)


def style_scores(
    photos: torch.Tensor, outputs: torch.Tensor, paintings: torch.Tensor
) -> dict[str, float]:
    """KID(outputs, paintings), KID(photos, paintings) and content(photos, outputs)."""
    extractor = FeatureExtractor()
    reference = extractor(paintings)
    return {
        "kid": metrics.kid(reference, extractor(outputs)),
        "identity_kid": metrics.kid(reference, extractor(photos)),
        "content": metrics.content_score(photos, outputs),
    }


def labelled_sheet(rows: list[tuple[str, torch.Tensor]], gap: int = 4) -> Image.Image:
    """Rows of (label, (N, 3, H, W) images in [-1, 1]) -> one RGB sheet, label at left."""
    height, width = rows[0][1].shape[-2:]
    columns = max(images.shape[0] for _, images in rows)
    sheet = Image.new(
        "RGB",
        (LABEL_WIDTH + columns * (width + gap) + gap, len(rows) * (height + gap) + gap),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        top = gap + r * (height + gap)
        draw.multiline_text((6, top + height // 2 - 12), label, fill="black", spacing=2)
        for c, image in enumerate(to_pixels(images)):
            sheet.paste(Image.fromarray(image), (LABEL_WIDTH + c * (width + gap), top))
    return sheet
