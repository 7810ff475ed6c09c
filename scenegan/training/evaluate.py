"""Held-out evaluation during training: the registered metrics on the test split.

Image-to-image: G's EMA translates the held-out source images; KID and FID compare them
with held-out target images, and the content score with their inputs (paired tasks add
PSNR to the true targets). Unconditional: fixed-noise samples against held-out images.
"""

from __future__ import annotations

import logging

import torch

from scenegan import metrics
from scenegan.features import FeatureExtractor, FeaturesUnavailable
from scenegan.training.config import TrainConfig
from scenegan.training.data import DomainImages
from scenegan.training.tasks import Task

log = logging.getLogger(__name__)


def _all(domain: DomainImages, limit: int) -> torch.Tensor:
    return domain.batch(list(range(min(limit, len(domain)))))


@torch.no_grad()
def _translate(
    generator: torch.nn.Module, images: torch.Tensor, device: torch.device
) -> torch.Tensor:
    return torch.cat(
        [
            generator(images[i : i + 16].to(device)).float().cpu()
            for i in range(0, images.shape[0], 16)
        ]
    )


def evaluate(
    task: Task, config: TrainConfig, held_out: dict[str, DomainImages], limit: int = 256
) -> dict[str, float]:
    """The metrics of the task's EMA generator on `held_out` (the test split)."""
    try:
        extractor = FeatureExtractor(task.device)
    except FeaturesUnavailable as error:
        log.warning("metrics skipped: %s", error)
        return {}
    target = _all(held_out["B"], limit)
    if config.task == "unconditional":
        generator = task.ema["G"].model
        noise = torch.randn(
            target.shape[0], task.latent_dim, generator=torch.Generator().manual_seed(1)
        )
        fake = _translate(generator, noise, task.device)
        source = None
    else:
        source = _all(held_out["A"], limit)
        fake = _translate(task.ema[task.export_network].model, source, task.device)
    real_features, fake_features = extractor(target), extractor(fake)
    results = {
        name: metric(real_features, fake_features) for name, metric in metrics.METRICS.items()
    }
    if source is not None:
        results["content"] = metrics.content_score(source, fake)
    if config.task == "paired":
        results["psnr"] = metrics.psnr(fake, target)
    return {name: round(value, 6) for name, value in results.items()}
