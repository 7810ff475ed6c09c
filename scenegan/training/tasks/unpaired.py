"""The unpaired task (CycleGAN): G_AB: A -> B and G_BA: B -> A, discriminators D_A and D_B,
cycle and identity L1, a history pool of fakes per domain.

    generator loss     = adv(D_B(aug(G_AB(a)))) + adv(D_A(aug(G_BA(b))))
                         + cycle_weight * (|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|)
                         + cycle_weight * identity_weight * (|G_AB(b) - b| + |G_BA(a) - a|)
    discriminator loss = for D_B and D_A: 0.5 * adv(real, pooled fake) [+ gradient penalty]
"""

from __future__ import annotations

from typing import Any

import torch

from scenegan import losses
from scenegan.training.components import ImagePool
from scenegan.training.data import step_generator
from scenegan.training.tasks.base import PENALTY, POOL, StepBatch, Task

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        image_size=32,
        load_size=36,
        batch_size=4,
        generator="resnet",
        generator_args=dict(base_channels=16, num_blocks=3),
        discriminator_args=dict(base_channels=16, num_layers=2),
        steps=2500,
        sample_every=500,
        checkpoint_every=500,
        log_every=10,
        ema_decay=0.99,
        lr_generator=4e-4,
        lr_discriminator=4e-4,  # small nets, short runs: measured better
    ),
    "small": dict(
        image_size=128,
        load_size=144,
        batch_size=1,
        generator="resnet",
        generator_args=dict(base_channels=32, num_blocks=6),
        discriminator_args=dict(base_channels=32, num_layers=3),
        steps=20_000,
    ),
    "cyclegan": dict(
        image_size=256,
        load_size=286,
        batch_size=1,
        generator="resnet",
        generator_args=dict(base_channels=64, num_blocks=9),
        discriminator_args=dict(base_channels=64, num_layers=3),
        steps=200_000,
    ),
}


class UnpairedTask(Task):
    name = "unpaired"
    presets = PRESETS
    options = ("cycle_weight", "identity_weight", "pool_size")
    export_network = "G_AB"
    generator_names = ("G_AB", "G_BA")
    discriminator_names = ("D_A", "D_B")

    def __init__(self, config, device, rank, world_size, domains) -> None:
        super().__init__(config, device, rank, world_size, domains)
        for name in self.generator_names:
            self._network(name, config.generator, config.generator_args)
        for name in self.discriminator_names:
            self._network(name, config.discriminator, config.discriminator_args)
        self.pools = {"A": ImagePool(config.pool_size), "B": ImagePool(config.pool_size)}
        self._finish(
            {
                "G": (["G_AB", "G_BA"], config.lr_generator),
                "D": (["D_A", "D_B"], config.lr_discriminator),
            }
        )

    def generator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        c, nets, augment = self.config, self.networks, batch.augment
        real_a, real_b = batch.real["A"], batch.real["B"]
        g_ab, g_ba, d_a, d_b = nets["G_AB"], nets["G_BA"], nets["D_A"], nets["D_B"]
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)  # (B, 3, S, S) each
        rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
        adv = losses.generator_loss(c.loss, d_b(self._augment(fake_b, augment))) + (
            losses.generator_loss(c.loss, d_a(self._augment(fake_a, augment)))
        )
        cycle = losses.cycle_loss(rec_a, real_a) + losses.cycle_loss(rec_b, real_b)
        loss = adv + c.cycle_weight * cycle
        identity = torch.zeros((), device=self.device)
        if c.identity_weight > 0:
            identity = losses.identity_loss(g_ab(real_b), real_b) + losses.identity_loss(
                g_ba(real_a), real_a
            )
            loss = loss + c.cycle_weight * c.identity_weight * identity
        batch.fake.update(A=fake_a.detach(), B=fake_b.detach())
        return loss, {"G_adv": adv.item(), "cycle": cycle.item(), "identity": identity.item()}

    def discriminator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        c, nets, augment = self.config, self.networks, batch.augment
        pool = step_generator(c.seed, batch.step, POOL)
        penalty = step_generator(c.seed, batch.step, PENALTY)
        pooled_b = self.pools["B"].query(batch.fake["B"], pool)
        pooled_a = self.pools["A"].query(batch.fake["A"], pool)
        loss = self._critic_loss(nets["D_B"], batch.real["B"], pooled_b, augment, penalty, 0.5)
        loss = loss + self._critic_loss(
            nets["D_A"], batch.real["A"], pooled_a, augment, penalty, 0.5
        )
        return loss, {}

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        a, b = self._preview("A"), self._preview("B")
        g_ab, g_ba = self.ema["G_AB"].model, self.ema["G_BA"].model
        return [a, g_ab(a), g_ba(g_ab(a)), b, g_ba(b)]
