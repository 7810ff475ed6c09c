"""The contrastive task (CUT, Park et al. 2020): one-sided photo -> painting translation.

    G: A -> B (the exported generator), P: the patch projector of PatchNCE, D: judges B.

    generator loss  = adversarial(D(aug(G(a))))
                      + nce_weight * PatchNCE(encoder(a), encoder(G(a)))
                      [+ PatchNCE(encoder(b), encoder(G(b))), averaged, with nce_identity]
                      [+ saturation_weight * mean(relu(|logits of G's outputs| - 2.65)^2)]
                      [+ tv_weight * total variation(G(a))]
                      [+ structure_weight * L1(coarse luminance of G(a), of a)]
                      [+ style_weight * |statistics of F(G(a)) - of F(b)|]
                      [+ content_weight * L1(F16(blur(G(a))), F16(blur(a)))]
                      [+ palette_weight * SW1(colours of G(a), colours of b)]
                      [+ pixel_weight * adversarial(D_pixel(aug(G(a))))]
    discriminator   = adversarial(D(aug(b)), D(aug(G(a))))
                      [+ pixel_weight * adversarial(D_pixel(aug(b)), D_pixel(aug(G(a))))]

D_pixel (with `pixel_weight`) is a PatchGAN on the pixels beside the projected D, as
vision-aided GAN keeps the original discriminator beside the pretrained one: the frozen
features are fooled by pure saturated colour (blobs, a whole image gone green), which a
critic of the paintings' own pixels sees at once.

F (with `style_weight` or `content_weight`) is a frozen EfficientNet-Lite1 (strides 4, 8,
16; the KID uses Lite0), never trained and kept out of the task's networks: the
per-channel mean and spread of its early features (AdaIN's style statistics) describe
colours and marks wherever they are. Matching them asks for the paintings' look everywhere
in G(a), where the adversarial loss alone, from a few dozen paintings, learns their salient
objects and paints those.
With `content_weight` the same network keeps the scene: its stride-16 features of the
low-passed output must stay those of the low-passed photo (CartoonGAN's content loss, on
blurred images so that flattening texture into colour fields costs a third of what
replacing rocks with a grass-green fill does). `palette_weight` compares colours alone:
the sliced Wasserstein distance between the pixel colours of G(a) and of the paintings,
against colours no painting has (the pretrained features take a pure neon green for the
paintings' grass).

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

from typing import Any

import torch

from scenegan import features, losses
from scenegan.models import ARCHITECTURES
from scenegan.models.nce import sample_locations
from scenegan.training.config import ConfigError, TrainConfig
from scenegan.training.data import step_generator
from scenegan.training.tasks.base import PENALTY, StepBatch, Task

PATCHES = PENALTY + 1  # the step generator of the PatchNCE locations
PIXEL_CRITIC = {"base_channels": 32}  # D_pixel: a PatchGAN at half CycleGAN's width
STYLE_NETWORK, STYLE_DEPTH = 1, 3  # F: EfficientNet-Lite1, feature maps at strides 4, 8, 16
PALETTE = PATCHES + 1  # the step generator of the palette term's projection directions
CONTENT_BLUR = 5  # the content term compares twice-low-passed images (binomial, 5 taps)

# Contrastive (CUT) presets. "fewshot" is the recipe for real photos and a few dozen
# paintings, chosen by measurement (README, "Few-shot style"): a generator that starts at
# the identity and upsamples without transposed convolutions, the projected discriminator
# on frozen Lite1 features with hinge loss, DiffAugment (colour too) on everything D sees.
# Without colour augmentation the generator learnt to paint pure saturated blobs (and, with
# the ResNet, thin vertical stripes) that fool the pretrained features; see the README.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        image_size=32,
        load_size=36,
        batch_size=2,
        generator="resnet",
        generator_args=dict(base_channels=16, num_blocks=3, residual=True, upsample="nearest"),
        discriminator="projected",
        discriminator_args=dict(head_channels=16),
        loss="hinge",
        augment="color,translation,cutout",
        nce_patches=64,
        steps=300,
        sample_every=100,
        checkpoint_every=100,
        pool_size=0,
        decay_start=0.5,
    ),
    "fewshot": dict(
        image_size=128,
        load_size=144,
        batch_size=1,
        generator="resnet",
        generator_args=dict(base_channels=32, num_blocks=6, residual=True, upsample="nearest"),
        discriminator="projected",
        discriminator_args=dict(head_channels=64),
        loss="hinge",
        augment="color,translation,cutout",
        steps=4000,
        sample_every=500,
        checkpoint_every=500,
        pool_size=0,
        decay_start=0.5,
    ),
}


class ContrastiveTask(Task):
    name = "contrastive"
    presets = PRESETS
    options = (
        "nce_weight",
        "nce_identity",
        "nce_patches",
        "nce_temperature",
        "nce_dim",
        "saturation_weight",
        "tv_weight",
        "structure_weight",
        "style_weight",
        "content_weight",
        "palette_weight",
        "pixel_weight",
    )

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        super().check_config(config)
        if config.loss == "wgan-gp":
            raise ConfigError(
                "task contrastive: use --loss hinge, lsgan or bce (no gradient penalty)"
            )
        if not all(
            hasattr(ARCHITECTURES.get(config.generator), method)
            for method in ("nce_features", "logits")
        ):
            raise ConfigError(
                "task contrastive reads the generator's encoder: use resnet or light, "
                f"not {config.generator}"
            )

    def __init__(self, config, device, rank, world_size, domains) -> None:
        super().__init__(config, device, rank, world_size, domains)
        generator = self._network("G", config.generator, config.generator_args)
        self._network(
            "P", "patch_projector", {"channels": generator.nce_channels, "dim": config.nce_dim}
        )
        self._network("D", config.discriminator, config.discriminator_args)
        if config.pixel_weight:
            self._network("D_pixel", "patchgan", PIXEL_CRITIC)
            self.discriminator_names = ("D", "D_pixel")
        self._lite1 = None  # F: frozen, no parameters of the task's (not trained or saved)
        if config.style_weight or config.content_weight:
            network = features.fold_batch_norm(features.load_pretrained(STYLE_NETWORK))
            self._lite1 = network.to(self.device, torch.get_default_dtype())
        self._finish(
            {
                "G": (["G", "P"], config.lr_generator),
                "D": (list(self.discriminator_names), config.lr_discriminator),
            }
        )

    def generator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        c, generator, critic = self.config, self.networks["G"], self.networks["D"]
        real_a, real_b = batch.real["A"], batch.real["B"]
        patches = step_generator(c.seed, batch.step, PATCHES)
        # One forward for both: instance norm keeps the images independent.
        inputs = torch.cat([real_a, real_b]) if c.nce_identity else real_a
        logits = generator.logits(inputs)
        outputs = torch.tanh(logits)
        fake_b = outputs[: real_a.shape[0]]
        seen = self._augment(fake_b, batch.augment)
        adv = losses.generator_loss(c.loss, critic(seen))
        nce = self._patch_nce(inputs, outputs, patches)
        batch.fake["B"] = fake_b.detach()
        total, logged = adv + c.nce_weight * nce, {"G_adv": adv.item(), "NCE": nce.item()}
        optional = (  # (logged as, weight, the term): computed only when weighted
            ("G_pixel", c.pixel_weight, lambda: self._pixel_adversarial(seen)),
            ("saturation", c.saturation_weight, lambda: losses.saturation_penalty(logits)),
            ("TV", c.tv_weight, lambda: losses.total_variation(fake_b)),
            ("structure", c.structure_weight, lambda: losses.luminance_moved(real_a, fake_b)),
            ("style", c.style_weight, lambda: self._style_distance(fake_b, real_b)),
            ("content", c.content_weight, lambda: self._content_distance(fake_b, real_a)),
            ("palette", c.palette_weight, lambda: self._palette_distance(fake_b, real_b, batch)),
        )
        for name, weight, term in optional:
            if weight:
                value = term()
                total = total + weight * value
                logged[name] = value.item()
        return total, logged

    def _style_distance(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._lite1.pyramid(features.normalize(real), STYLE_DEPTH)
        return losses.feature_statistics_distance(
            self._lite1.pyramid(features.normalize(fake), STYLE_DEPTH), target
        )

    def _content_distance(self, fake: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        def stride16(images: torch.Tensor) -> torch.Tensor:
            smooth = losses.low_pass(losses.low_pass(images, CONTENT_BLUR), CONTENT_BLUR)
            return self._lite1.pyramid(features.normalize(smooth), STYLE_DEPTH)[-1]

        with torch.no_grad():
            target = stride16(photo)
        return (stride16(fake) - target).abs().mean()

    def _palette_distance(
        self, fake: torch.Tensor, real: torch.Tensor, batch: StepBatch
    ) -> torch.Tensor:
        directions = step_generator(self.config.seed, batch.step, PALETTE)
        return losses.sliced_wasserstein(fake, real, directions)

    def _pixel_adversarial(self, seen: torch.Tensor) -> torch.Tensor:
        return losses.generator_loss(self.config.loss, self.networks["D_pixel"](seen))

    def discriminator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        c, critic, augment = self.config, self.networks["D"], batch.augment
        real, fake = (
            self._augment(batch.real["B"], augment),
            self._augment(batch.fake["B"], augment),
        )
        loss = losses.discriminator_loss(c.loss, critic(real), critic(fake))
        if not c.pixel_weight:
            return loss, {}
        pixel_critic = self.networks["D_pixel"]
        pixel = losses.discriminator_loss(c.loss, pixel_critic(real), pixel_critic(fake))
        return loss + c.pixel_weight * pixel, {"D_pixel": pixel.item()}

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
        a, b = self._preview("A"), self._preview("B")
        return [a, self.ema["G"].model(a), b]
