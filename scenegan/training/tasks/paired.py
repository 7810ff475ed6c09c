"""The paired task (pix2pix): G: A -> B, a conditional PatchGAN on (A, B), L1 to the target.

    generator loss     = adv(D(a, G(a))) + l1_weight * |G(a) - b|
    discriminator loss = 0.5 * adv(D(a, b), D(a, G(a)))

Pairs are matched by file name, so the images are read into memory (no streaming).
"""

from __future__ import annotations

from typing import Any

import torch

from scenegan import losses, metrics
from scenegan.training.config import TrainConfig, generator_arguments
from scenegan.training.data import DomainImages, step_generator
from scenegan.training.tasks.base import AUGMENT, DATA_A, StepBatch, Task, _in_memory, _sources
from scenegan.training.tasks.unpaired import PRESETS as UNPAIRED_PRESETS


def _presets() -> dict[str, dict[str, Any]]:
    presets = {}
    for name, values in UNPAIRED_PRESETS.items():
        values = {**values, "generator": "unet", "pool_size": 0}
        values["generator_args"] = generator_arguments("unet", values)
        presets[name] = values
    return presets


class PairedTask(Task):
    name = "paired"
    presets = _presets()
    options = ("l1_weight",)
    streams = False

    @classmethod
    def load_domains(
        cls,
        config: TrainConfig,
        split: str = "train",
        *,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> dict[str, DomainImages]:
        """The source image's id decides the split; its target is found by file name."""
        cls.uses_stream(config)  # refuses --reader stream
        source, target = str(config.source_domain), str(config.target_domain)
        targets = {t.key: t for t in _sources(config, target, None)}
        pairs = [(s, targets[s.key]) for s in _sources(config, source, split) if s.key in targets]
        if not pairs:
            raise ValueError(
                f"paired task: no {source} image has a {target} image of the same name"
            )
        return {
            "A": _in_memory(config, source, [a for a, _ in pairs]),
            "B": _in_memory(config, target, [b for _, b in pairs]),
        }

    def __init__(self, config, device, rank, world_size, domains) -> None:
        super().__init__(config, device, rank, world_size, domains)
        keys = [[image.key for image in domains[role].images] for role in ("A", "B")]
        if keys[0] != keys[1]:
            raise ValueError("paired task: the source and target images must pair up by file name")
        self._network("G", config.generator, config.generator_args)
        self._network("D", config.discriminator, {**config.discriminator_args, "in_channels": 6})
        self._finish({"G": (["G"], config.lr_generator), "D": (["D"], config.lr_discriminator)})

    def step_batch(self, step: int) -> StepBatch:
        # One stream for both sides: the same indices, crops and flips keep pairs aligned.
        real = {role: self._batch(role, step, DATA_A) for role in ("A", "B")}
        return StepBatch(step, real, step_generator(self.config.seed, step, AUGMENT))

    def generator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        c, real_a, real_b = self.config, batch.real["A"], batch.real["B"]
        fake_b = self.networks["G"](real_a)
        adv = losses.generator_loss(c.loss, self.networks["D"](torch.cat([real_a, fake_b], 1)))
        l1 = losses.reconstruction_l1(fake_b, real_b)
        batch.fake["B"] = fake_b.detach()
        return adv + c.l1_weight * l1, {"G_adv": adv.item(), "L1": l1.item()}

    def discriminator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        critic, real_a = self.networks["D"], batch.real["A"]
        loss = 0.5 * losses.discriminator_loss(
            self.config.loss,
            critic(torch.cat([real_a, batch.real["B"]], 1)),
            critic(torch.cat([real_a, batch.fake["B"]], 1)),
        )
        return loss, {}

    def _score(
        self, source: torch.Tensor | None, fake: torch.Tensor, target: torch.Tensor
    ) -> dict[str, float]:
        """The image-to-image metrics, plus PSNR to the true targets."""
        results = super()._score(source, fake, target)
        if results:
            results["psnr"] = round(metrics.psnr(fake, target), 6)
        return results

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        a, b = self._preview("A"), self._preview("B")
        return [a, self.ema["G"].model(a), b]
