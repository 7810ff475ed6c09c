"""The contrastive task (CUT, Park et al. 2020): one-sided photo -> painting translation.

    G: A -> B (the exported generator), P: the patch projector of PatchNCE, D: judges B.

    generator loss  = adversarial(D(aug(G(a))))
                      + nce_weight * PatchNCE(encoder(a), encoder(G(a)))
                      [+ PatchNCE(encoder(b), encoder(G(b))), averaged, with nce_identity]
    discriminator   = adversarial(D(aug(b)), D(aug(G(a))))

No inverse generator and no cycle: content is kept by PatchNCE, which asks that each patch
of the output be recognisable (in G's own encoder features, through P) as the patch at the
same place in the input rather than any other patch of the image. A step costs about half
of CycleGAN's. `nce_identity` (CUT) also maps paintings through G and asks them to keep
their patches, which keeps G from changing what is already a painting; without it and with
`nce_weight=10` this is the FastCUT setting (cheaper, bolder changes).

Paired with the projected discriminator (frozen pretrained features) and DiffAugment on
real and fake alike, it learns a painting style from a few dozen paintings.
"""

from __future__ import annotations

import torch

from scenegan import losses
from scenegan.models.nce import sample_locations
from scenegan.training.data import DomainImages, step_generator
from scenegan.training.tasks import Task

# `purpose` numbers for step generators, after tasks.py's (0-5).
_DATA_A, _DATA_B, _AUGMENT, _PATCHES = 0, 1, 2, 6


class ContrastiveTask(Task):
    export_network = "G"
    generator_names = ("G",)

    def __init__(
        self, config, device, rank, world_size, source: DomainImages, target: DomainImages
    ):
        super().__init__(config, device, rank, world_size)
        self.domains = {"A": source, "B": target}
        generator = self._network("G", config.generator, config.generator_args)
        if not hasattr(generator, "nce_features"):
            raise ValueError(
                f"the contrastive task reads its generator's encoder features: "
                f"use --generator resnet or light, not {config.generator}"
            )
        self._network(
            "P", "patch_projector", {"channels": generator.nce_channels, "dim": config.nce_dim}
        )
        self._network("D", config.discriminator, config.discriminator_args)
        self._finish(
            {"G": (["G", "P"], config.lr_generator), "D": (["D"], config.lr_discriminator)}
        )

    def train_step(self, step: int) -> dict[str, float]:
        c, nets = self.config, self.networks
        generator, critic = nets["G"], nets["D"]
        real_a, real_b = self._batch("A", step, _DATA_A), self._batch("B", step, _DATA_B)
        augment = step_generator(c.seed, step, _AUGMENT)
        patches = step_generator(c.seed, step, _PATCHES)
        count = real_a.shape[0]
        critic.requires_grad_(False)
        with self.precision.autocast():
            # One forward for both: instance norm keeps the images independent.
            inputs = torch.cat([real_a, real_b]) if c.nce_identity else real_a
            outputs = generator(inputs)
            fake_b = outputs[:count]
            adv = losses.generator_loss(c.loss, critic(self._augment(fake_b, augment)))
            nce = self._patch_nce(inputs, outputs, patches)
            loss_g = adv + c.nce_weight * nce
        self._update("G", loss_g)
        self._update_ema(step + 1)

        critic.requires_grad_(True)
        with self.precision.autocast():
            loss_d = losses.discriminator_loss(
                c.loss,
                critic(self._augment(real_b, augment)),
                critic(self._augment(fake_b.detach(), augment)),
            )
        self._update("D", loss_d)
        return {"G_adv": adv.item(), "NCE": nce.item(), "D": loss_d.item()}

    def _patch_nce(
        self, inputs: torch.Tensor, outputs: torch.Tensor, patches: torch.Generator
    ) -> torch.Tensor:
        """PatchNCE averaged over G's encoder layers (and over the images of the batch:
        the photos, plus the paintings with nce_identity)."""
        generator, projector = self.networks["G"], self.networks["P"]
        source_maps = generator.nce_features(inputs)
        output_maps = generator.nce_features(outputs)
        locations = sample_locations(source_maps, self.config.nce_patches, patches)
        keys = projector(source_maps, locations)
        queries = projector(output_maps, locations)
        per_layer = [
            losses.patch_nce_loss(q, k, self.config.nce_temperature)
            for q, k in zip(queries, keys, strict=True)
        ]
        return torch.stack(per_layer).mean()

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        a = self.domains["A"].batch(list(range(min(6, len(self.domains["A"])))))
        b = self.domains["B"].batch(list(range(min(6, len(self.domains["B"])))))
        a, b = a.to(self.device), b.to(self.device)
        return [a, self.ema["G"].model(a), b]
