"""The unconditional task (DCGAN / WGAN-GP): G: z -> image, a discriminator or critic with
`critic_steps` updates per generator update and, for wgan-gp, the gradient penalty.

    discriminator loss = adv(D(aug(x)), D(aug(G(z))))  [+ gp_weight * gradient penalty],
                         `critic_steps` times, each with fresh reals and noise
    generator loss     = adv(D(aug(G(z))))
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from scenegan import losses
from scenegan.models import NOISE_TO_IMAGE
from scenegan.training import evaluate
from scenegan.training.data import DomainImages, step_generator
from scenegan.training.tasks.base import AUGMENT, DATA_B, NOISE, PENALTY, StepBatch, Task

_TABLE: dict[str, dict[str, Any]] = {
    "tiny": dict(
        image_size=32,
        load_size=32,
        batch_size=16,
        loss="bce",
        generator_args=dict(latent_dim=32, image_size=32, base_channels=16),
        discriminator_args=dict(image_size=32, base_channels=16),
        steps=400,
        sample_every=100,
        checkpoint_every=100,
        ema_decay=0.99,
    ),
    "small": dict(
        image_size=64,
        load_size=64,
        batch_size=32,
        loss="bce",
        generator_args=dict(latent_dim=128, image_size=64, base_channels=32),
        discriminator_args=dict(image_size=64, base_channels=32),
        steps=20_000,
    ),
    "cyclegan": dict(  # the big preset: DCGAN at 128 px
        image_size=128,
        load_size=128,
        batch_size=64,
        loss="bce",
        generator_args=dict(latent_dim=128, image_size=128, base_channels=64),
        discriminator_args=dict(image_size=128, base_channels=64),
        steps=100_000,
    ),
}
PRESETS = {
    name: {
        **values,
        "generator": "dcgan_generator",
        "discriminator": "dcgan_discriminator",
        "lr_generator": 2e-4,
        "lr_discriminator": 2e-4,
        "decay_start": 1.0,
    }
    for name, values in _TABLE.items()
}


class UnconditionalTask(Task):
    name = "unconditional"
    domains: ClassVar[dict[str, str]] = {"B": "target_domain"}
    generator_kind = NOISE_TO_IMAGE
    presets = PRESETS
    options = ("critic_steps",)

    def __init__(self, config, device, rank, world_size, domains) -> None:
        super().__init__(config, device, rank, world_size, domains)
        self.latent_dim = int(config.generator_args.get("latent_dim", 128))
        self._network("G", config.generator, config.generator_args)
        self._network("D", config.discriminator, config.discriminator_args)
        self._finish({"G": (["G"], config.lr_generator), "D": (["D"], config.lr_discriminator)})
        self.fixed_noise = torch.randn(
            12, self.latent_dim, generator=torch.Generator().manual_seed(config.seed)
        ).to(device)

    def _noise(self, step: int, round_: int) -> torch.Tensor:
        generator = step_generator(self.config.seed, step * 64 + round_, NOISE)
        return torch.randn(self.config.batch_size, self.latent_dim, generator=generator).to(
            self.device
        )

    def train_step(self, step: int) -> dict[str, float]:
        """`critic_steps` critic updates (fresh reals and noise each), then one generator
        update with the critic frozen."""
        c = self.config
        augment = step_generator(c.seed, step, AUGMENT)
        for round_ in range(c.critic_steps):
            real = self._batch("B", step * c.critic_steps + round_, DATA_B)
            batch = StepBatch(step, {"B": real}, augment, round=round_)
            with torch.no_grad(), self.precision.autocast():
                batch.fake["B"] = self.networks["G"](self._noise(step, round_))
            with self.precision.autocast():
                loss_d, _ = self.discriminator_loss(batch)
            self._update("D", loss_d)
        self._requires_grad(self.discriminator_names, False)
        with self.precision.autocast():
            loss_g, logged = self.generator_loss(StepBatch(step, {}, augment))
        self._update("G", loss_g)
        self._requires_grad(self.discriminator_names, True)
        self._update_ema(step + 1)
        return {**logged, "D": loss_d.item()}

    def generator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        fake = self.networks["G"](self._noise(batch.step, self.config.critic_steps))
        loss = losses.generator_loss(
            self.config.loss, self.networks["D"](self._augment(fake, batch.augment))
        )
        return loss, {"G_adv": loss.item()}

    def discriminator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        penalty = step_generator(self.config.seed, batch.step * 64 + batch.round, PENALTY)
        real, fake = batch.real["B"], batch.fake["B"]
        return self._critic_loss(self.networks["D"], real, fake, batch.augment, penalty), {}

    @torch.no_grad()
    def evaluate(self, held_out: dict[str, DomainImages]) -> dict[str, float]:
        """Fixed-noise samples against the held-out images."""
        target = evaluate.first(held_out["B"])
        noise = torch.randn(
            target.shape[0], self.latent_dim, generator=torch.Generator().manual_seed(1)
        )
        fake = evaluate.translate(self.ema["G"].model, noise, self.device)
        return self._score(None, fake, target)

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        images = self.ema["G"].model(self.fixed_noise)
        return [images[:6], images[6:12]]
