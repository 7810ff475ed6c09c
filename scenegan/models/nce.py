"""The patch projector of contrastive unpaired translation (CUT, Park et al. 2020).

PatchNCE compares the generator's encoder features of an input photo with those of its
translation, location by location. Each compared layer gets a small MLP that maps a
feature vector at one location to a unit vector in a shared embedding space:

    features (B, C_l, H_l, W_l), locations (N,) -> (B, N, dim), L2-normalised

Trained with the generator (the contrastive loss is the generator's), and discarded at
export: stylize never runs it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scenegan.models.layers import constructor_arguments


class PatchProjector(nn.Module):
    def __init__(self, channels: tuple[int, ...] | list[int] = (3,), dim: int = 256) -> None:
        super().__init__()
        self.config = constructor_arguments(locals())
        self.config["channels"] = list(channels)  # JSON-friendly
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
            for c in channels
        )

    def forward(
        self, feature_maps: list[torch.Tensor], locations: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per layer: the embeddings (B, N, dim) at flat locations (N,) of its H_l * W_l."""
        outputs = []
        for mlp, feature_map, where in zip(self.mlps, feature_maps, locations, strict=True):
            flat = feature_map.flatten(2).transpose(1, 2)  # (B, H_l * W_l, C_l)
            picked = flat[:, where.to(flat.device)]  # (B, N, C_l)
            if picked.dtype != torch.float64:  # fp32 under autocast; fp64 stays fp64
                picked = picked.float()
            outputs.append(F.normalize(mlp(picked), dim=-1))
        return outputs


def sample_locations(
    feature_maps: list[torch.Tensor], count: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """`count` distinct random locations per layer (all of them if a layer has fewer)."""
    locations = []
    for feature_map in feature_maps:
        size = feature_map.shape[-2] * feature_map.shape[-1]
        locations.append(torch.randperm(size, generator=generator)[: min(count, size)])
    return locations
