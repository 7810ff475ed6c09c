"""Generators and discriminators, by architecture name.

A model is fully described by (architecture name, constructor arguments): `build_model`
rebuilds it from those two, which is all a checkpoint or `model.json` stores besides the
weights. No code is ever pickled.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scenegan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from scenegan.models.flops import count_flops, count_macs, count_parameters
from scenegan.models.identity import IdentityGenerator
from scenegan.models.light import LightGenerator
from scenegan.models.nce import PatchProjector
from scenegan.models.patchgan import PatchDiscriminator
from scenegan.models.projected import ProjectedDiscriminator
from scenegan.models.resnet import ResnetGenerator
from scenegan.models.unet import UnetGenerator

# What a generator maps (each architecture's `kind`; discriminators are "discriminator"):
# inference and export ask this, never the task a model was trained by.
IMAGE_TO_IMAGE = "image-to-image"
NOISE_TO_IMAGE = "noise-to-image"

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "resnet": ResnetGenerator,
    "unet": UnetGenerator,
    "light": LightGenerator,
    "identity": IdentityGenerator,
    "dcgan_generator": DCGANGenerator,
    "patchgan": PatchDiscriminator,
    "dcgan_discriminator": DCGANDiscriminator,
    "projected": ProjectedDiscriminator,
    "patch_projector": PatchProjector,
}


def build_model(architecture: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate `architecture` with `config` (its constructor's keyword arguments)."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    try:
        return cls(**config)
    except TypeError as error:
        raise ValueError(f"bad arguments for architecture {architecture!r}: {error}") from None


def kind_of(architecture: str) -> str | None:
    """The `kind` architecture `architecture` declares (None: it declares none)."""
    return getattr(ARCHITECTURES.get(architecture), "kind", None)


def architecture_name(model: nn.Module) -> str:
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered scenegan architecture")


__all__ = [
    "ARCHITECTURES",
    "IMAGE_TO_IMAGE",
    "NOISE_TO_IMAGE",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "IdentityGenerator",
    "LightGenerator",
    "PatchDiscriminator",
    "PatchProjector",
    "ProjectedDiscriminator",
    "ResnetGenerator",
    "UnetGenerator",
    "architecture_name",
    "build_model",
    "count_flops",
    "count_macs",
    "count_parameters",
    "kind_of",
]
