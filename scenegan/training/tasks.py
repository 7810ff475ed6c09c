"""The three training tasks: one generator/discriminator update per `train_step(step)`.

* `UnpairedTask` (CycleGAN): G: A -> B and F: B -> A, discriminators D_A and D_B, cycle
  and identity L1, a history pool of fakes per domain.
* `PairedTask` (pix2pix): G: A -> B, conditional PatchGAN on (A, B), L1 to the target.
* `UnconditionalTask` (DCGAN / WGAN-GP): G: z -> image, D or critic with `critic_steps`
  updates per G update and, for wgan-gp, the gradient penalty.

Every random draw inside a step comes from generators seeded by (seed, step, purpose)
(`data.step_generator`), so a step is a pure function of the state before it. Data-parallel
training (torchrun) averages gradients across ranks after each backward pass.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from scenegan import losses
from scenegan.models import architecture_name, build_model
from scenegan.models.layers import init_weights
from scenegan.training.components import (
    EMA,
    ImagePool,
    Precision,
    diff_augment,
    lr_factor,
    parse_policy,
    set_lr,
)
from scenegan.training.config import TrainConfig
from scenegan.training.data import DomainImages, indices_for_step, rank_slice, step_generator
from scenegan.training.stream import StreamedDomain

# `purpose` numbers for step generators: one independent stream per use.
_DATA_A, _DATA_B, _AUGMENT, _POOL, _NOISE, _PENALTY = range(6)


class Task:
    """Networks, optimizers and the update rule of one task; subclasses fill them in."""

    export_network: str = "G"  # the generator whose EMA becomes the MODEL
    generator_names: tuple[str, ...] = ("G",)

    def __init__(self, config: TrainConfig, device: torch.device, rank: int, world_size: int):
        self.config = config
        self.device = device
        self.rank = rank
        self.world_size = world_size
        self.policy = parse_policy(config.augment)
        self.networks: dict[str, nn.Module] = {}
        self.pools: dict[str, ImagePool] = {}
        self.domains: dict[str, DomainImages] = {}
        self.metrics: dict[str, float] = {}  # the latest held-out evaluation

    # --- construction ---------------------------------------------------------------

    def _network(self, name: str, architecture: str, arguments: dict[str, Any]) -> nn.Module:
        model = build_model(architecture, arguments)
        init_weights(model)
        if self.device.type == "cuda":
            model = model.to(self.device, memory_format=torch.channels_last)
        self.networks[name] = model.to(self.device)
        return self.networks[name]

    def _finish(self, optimizer_groups: dict[str, tuple[list[str], float]]) -> None:
        """Optimizers over named network groups, EMA copies of the generators, AMP."""
        config = self.config
        if self.world_size > 1:  # identical start on every rank
            for net in self.networks.values():
                for tensor in itertools.chain(net.parameters(), net.buffers()):
                    dist.broadcast(tensor.data, src=0)
        self.optimizers = {}
        self.base_lr = {}
        for name, (members, lr) in optimizer_groups.items():
            params = [p for m in members for p in self.networks[m].parameters()]
            self.optimizers[name] = torch.optim.Adam(
                params, lr=lr, betas=(config.beta1, config.beta2)
            )
            self.base_lr[name] = lr
        self.ema = {
            name: EMA(self.networks[name], config.ema_decay, config.ema_rampup)
            for name in self.generator_names
        }
        self.precision = Precision(config.amp, self.device, list(self.optimizers))

    # --- shared step machinery ------------------------------------------------------

    def _batch(self, domain: str, step: int, stream: int) -> torch.Tensor:
        """This rank's share of the global batch. Indices and crops are drawn for the whole
        global batch on every rank, then sliced, so N ranks see exactly the images (and
        crops) one process would at the same global batch."""
        images = self.domains[domain]
        if isinstance(images, StreamedDomain):  # already this rank's share, augmented
            batch = images.next_batch().to(self.device, torch.get_default_dtype())
            if self.device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            return batch
        count = self.config.batch_size * self.world_size
        indices = indices_for_step(len(images), count, step, seed=self.config.seed, stream=stream)
        crops = images.crop_params(count, step_generator(self.config.seed, step, stream))
        batch = images.batch(
            rank_slice(indices, self.rank, self.world_size),
            rank_slice(crops, self.rank, self.world_size),
        ).to(self.device)
        if self.device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return diff_augment(x, self.policy, generator) if self.policy else x

    def _update(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        scaler = self.precision.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.world_size > 1:
            _average_gradients(optimizer, self.world_size)
        scaler.step(optimizer)
        scaler.update()

    def set_learning_rates(self, step: int) -> dict[str, float]:
        factor = lr_factor(step, self.config.steps, self.config.decay_start)
        return {
            name: set_lr(optimizer, self.base_lr[name], factor)
            for name, optimizer in self.optimizers.items()
        }

    def _update_ema(self, done: int) -> None:
        """Average in the generators after `done` steps (the EMA warm-up reads it)."""
        for name in self.generator_names:
            self.ema[name].update(self.networks[name], done)

    def train_step(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        """Rows of (N, 3, H, W) images in [-1, 1] for the sample grid (EMA generators)."""
        raise NotImplementedError

    # --- state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {name: net.state_dict() for name, net in self.networks.items()},
            "ema": {name: ema.state_dict() for name, ema in self.ema.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scalers": self.precision.state_dict(),
            "pools": {name: pool.state_dict() for name, pool in self.pools.items()},
            "metrics": dict(self.metrics),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.networks.items():
            net.load_state_dict(state["networks"][name])
        for name, ema in self.ema.items():
            ema.load_state_dict(state["ema"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.precision.load_state_dict(state["scalers"])
        for name, pool in self.pools.items():
            pool.load_state_dict(state["pools"][name], self.device)
        self.metrics = dict(state.get("metrics", {}))

    def architectures(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"architecture": architecture_name(net), "arguments": dict(net.config)}
            for name, net in self.networks.items()
        }


def _average_gradients(optimizer: torch.optim.Optimizer, world_size: int) -> None:
    """All-reduce the gradients in one flat buffer and divide by the world size: the
    update every rank then applies is the one for the global batch."""
    grads = [
        p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    ]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


class UnpairedTask(Task):
    export_network = "G_AB"
    generator_names = ("G_AB", "G_BA")

    def __init__(
        self, config, device, rank, world_size, source: DomainImages, target: DomainImages
    ):
        super().__init__(config, device, rank, world_size)
        self.domains = {"A": source, "B": target}
        for name in self.generator_names:
            self._network(name, config.generator, config.generator_args)
        for name in ("D_A", "D_B"):
            self._network(name, config.discriminator, config.discriminator_args)
        self.pools = {"A": ImagePool(config.pool_size), "B": ImagePool(config.pool_size)}
        self._finish(
            {
                "G": (["G_AB", "G_BA"], config.lr_generator),
                "D": (["D_A", "D_B"], config.lr_discriminator),
            }
        )

    def train_step(self, step: int) -> dict[str, float]:
        c, nets = self.config, self.networks
        real_a, real_b = self._batch("A", step, _DATA_A), self._batch("B", step, _DATA_B)
        augment = step_generator(c.seed, step, _AUGMENT)
        g_ab, g_ba, d_a, d_b = nets["G_AB"], nets["G_BA"], nets["D_A"], nets["D_B"]
        d_a.requires_grad_(False)
        d_b.requires_grad_(False)
        with self.precision.autocast():
            fake_b, fake_a = g_ab(real_a), g_ba(real_b)  # (B, 3, S, S) each
            rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
            adv = losses.generator_loss(c.loss, d_b(self._augment(fake_b, augment))) + (
                losses.generator_loss(c.loss, d_a(self._augment(fake_a, augment)))
            )
            cycle = losses.cycle_loss(rec_a, real_a) + losses.cycle_loss(rec_b, real_b)
            loss_g = adv + c.cycle_weight * cycle
            identity = torch.zeros((), device=self.device)
            if c.identity_weight > 0:
                identity = losses.identity_loss(g_ab(real_b), real_b) + losses.identity_loss(
                    g_ba(real_a), real_a
                )
                loss_g = loss_g + c.cycle_weight * c.identity_weight * identity
        self._update("G", loss_g)
        self._update_ema(step + 1)

        d_a.requires_grad_(True)
        d_b.requires_grad_(True)
        pool = step_generator(c.seed, step, _POOL)
        penalty = step_generator(c.seed, step, _PENALTY)
        pooled_b = self.pools["B"].query(fake_b.detach(), pool)
        pooled_a = self.pools["A"].query(fake_a.detach(), pool)
        with self.precision.autocast():
            loss_d = self._critic_loss(d_b, real_b, pooled_b, augment, penalty) + (
                self._critic_loss(d_a, real_a, pooled_a, augment, penalty)
            )
        self._update("D", loss_d)
        return {
            "G_adv": adv.item(),
            "cycle": cycle.item(),
            "identity": identity.item(),
            "D": loss_d.item(),
        }

    def _critic_loss(self, critic, real, fake, augment, penalty) -> torch.Tensor:
        real_aug, fake_aug = self._augment(real, augment), self._augment(fake, augment)
        loss = 0.5 * losses.discriminator_loss(self.config.loss, critic(real_aug), critic(fake_aug))
        if self.config.loss == "wgan-gp":
            loss = loss + self.config.gp_weight * losses.gradient_penalty(
                critic, real_aug, fake_aug, penalty
            )
        return loss

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        a = self.domains["A"].batch(list(range(min(6, len(self.domains["A"])))))
        b = self.domains["B"].batch(list(range(min(6, len(self.domains["B"])))))
        a, b = a.to(self.device), b.to(self.device)
        g_ab, g_ba = self.ema["G_AB"].model, self.ema["G_BA"].model
        return [a, g_ab(a), g_ba(g_ab(a)), b, g_ba(b)]


class PairedTask(Task):
    def __init__(
        self, config, device, rank, world_size, source: DomainImages, target: DomainImages
    ):
        super().__init__(config, device, rank, world_size)
        if [i.key for i in source.images] != [i.key for i in target.images]:
            raise ValueError("paired task: the source and target images must pair up by file name")
        self.domains = {"A": source, "B": target}
        self._network("G", config.generator, config.generator_args)
        self._network("D", config.discriminator, {**config.discriminator_args, "in_channels": 6})
        self._finish({"G": (["G"], config.lr_generator), "D": (["D"], config.lr_discriminator)})

    def train_step(self, step: int) -> dict[str, float]:
        c, generator, critic = self.config, self.networks["G"], self.networks["D"]
        # One stream for both sides: the same indices, crops and flips keep pairs aligned.
        real_a, real_b = self._batch("A", step, _DATA_A), self._batch("B", step, _DATA_A)
        critic.requires_grad_(False)
        with self.precision.autocast():
            fake_b = generator(real_a)
            adv = losses.generator_loss(c.loss, critic(torch.cat([real_a, fake_b], 1)))
            l1 = losses.reconstruction_l1(fake_b, real_b)
            loss_g = adv + c.l1_weight * l1
        self._update("G", loss_g)
        self._update_ema(step + 1)
        critic.requires_grad_(True)
        with self.precision.autocast():
            loss_d = 0.5 * losses.discriminator_loss(
                c.loss,
                critic(torch.cat([real_a, real_b], 1)),
                critic(torch.cat([real_a, fake_b.detach()], 1)),
            )
        self._update("D", loss_d)
        return {"G_adv": adv.item(), "L1": l1.item(), "D": loss_d.item()}

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        count = min(6, len(self.domains["A"]))
        a = self.domains["A"].batch(list(range(count))).to(self.device)
        b = self.domains["B"].batch(list(range(count))).to(self.device)
        return [a, self.ema["G"].model(a), b]


class UnconditionalTask(Task):
    def __init__(self, config, device, rank, world_size, target: DomainImages):
        super().__init__(config, device, rank, world_size)
        self.domains = {"B": target}
        self.latent_dim = int(config.generator_args.get("latent_dim", 128))
        self._network("G", config.generator, config.generator_args)
        self._network("D", config.discriminator, config.discriminator_args)
        self._finish({"G": (["G"], config.lr_generator), "D": (["D"], config.lr_discriminator)})
        self.fixed_noise = torch.randn(
            12, self.latent_dim, generator=torch.Generator().manual_seed(config.seed)
        ).to(device)

    def _noise(self, step: int, round_: int) -> torch.Tensor:
        generator = step_generator(self.config.seed, step * 64 + round_, _NOISE)
        return torch.randn(self.config.batch_size, self.latent_dim, generator=generator).to(
            self.device
        )

    def train_step(self, step: int) -> dict[str, float]:
        c, generator, critic = self.config, self.networks["G"], self.networks["D"]
        augment = step_generator(c.seed, step, _AUGMENT)
        for round_ in range(c.critic_steps):  # fresh reals and noise for every critic update
            real = self._batch("B", step * c.critic_steps + round_, _DATA_B)
            with torch.no_grad(), self.precision.autocast():
                fake = generator(self._noise(step, round_))
            with self.precision.autocast():
                real_aug, fake_aug = self._augment(real, augment), self._augment(fake, augment)
                loss_d = losses.discriminator_loss(c.loss, critic(real_aug), critic(fake_aug))
                if c.loss == "wgan-gp":
                    penalty = step_generator(c.seed, step * 64 + round_, _PENALTY)
                    loss_d = loss_d + c.gp_weight * losses.gradient_penalty(
                        critic, real_aug, fake_aug, penalty
                    )
            self._update("D", loss_d)
        critic.requires_grad_(False)
        with self.precision.autocast():
            fake = generator(self._noise(step, c.critic_steps))
            loss_g = losses.generator_loss(c.loss, critic(self._augment(fake, augment)))
        self._update("G", loss_g)
        critic.requires_grad_(True)
        self._update_ema(step + 1)
        return {"G_adv": loss_g.item(), "D": loss_d.item()}

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        images = self.ema["G"].model(self.fixed_noise)
        return [images[:6], images[6:12]]


def build_task(
    config: TrainConfig,
    device: torch.device,
    rank: int,
    world_size: int,
    domains: dict[str, DomainImages],
) -> Task:
    if config.task == "unpaired":
        return UnpairedTask(config, device, rank, world_size, domains["A"], domains["B"])
    if config.task == "paired":
        return PairedTask(config, device, rank, world_size, domains["A"], domains["B"])
    if config.task == "contrastive":
        from scenegan.training.contrastive import ContrastiveTask  # it builds on Task

        return ContrastiveTask(config, device, rank, world_size, domains["A"], domains["B"])
    return UnconditionalTask(config, device, rank, world_size, domains["B"])
