"""Held-out evaluation during training: the registered metrics on the test split.

The pieces each task's `evaluate` composes (`tasks.base.Task.evaluate`): the first images
of a held-out domain, a generator run over them in chunks, and the registered feature
metrics (`metrics.METRICS`) of generated against real images.
"""

from __future__ import annotations

import logging

import torch

from scenegan import metrics
from scenegan.features import FeatureExtractor, FeaturesUnavailable
from scenegan.training.data import DomainImages

log = logging.getLogger(__name__)

LIMIT = 256  # held-out images per domain


def first(domain: DomainImages, limit: int = LIMIT) -> torch.Tensor:
    """The first `limit` images of `domain`, centre-cropped: (N, 3, S, S) in [-1, 1]."""
    return domain.batch(list(range(min(limit, len(domain)))))


@torch.no_grad()
def translate(
    generator: torch.nn.Module, inputs: torch.Tensor, device: torch.device, chunk: int = 16
) -> torch.Tensor:
    """`generator` over `inputs` (images or noise) in chunks, as float on the CPU."""
    return torch.cat(
        [
            generator(inputs[i : i + chunk].to(device)).float().cpu()
            for i in range(0, inputs.shape[0], chunk)
        ]
    )


def feature_metrics(
    real: torch.Tensor, fake: torch.Tensor, device: torch.device
) -> dict[str, float] | None:
    """Every registered feature metric of `fake` against `real`; None (with a warning)
    when the feature network is unavailable."""
    try:
        extractor = FeatureExtractor(device)
    except FeaturesUnavailable as error:
        log.warning("metrics skipped: %s", error)
        return None
    real_features, fake_features = extractor(real), extractor(fake)
    return {name: metric(real_features, fake_features) for name, metric in metrics.METRICS.items()}
