"""The Task base class: what a training task owns, and the step machinery they share.

A task owns its pieces: the domains it trains on (`domains`), how it loads them
(`load_domains`), its networks and optimizers (`__init__`), its objective split into a
generator loss and a discriminator loss, its held-out evaluation (`evaluate`), its sample
grid, its preset defaults (`presets`) and the config fields only it reads (`options`).
Nothing outside the task asks which task it is.

Every random draw inside a step comes from generators seeded by (seed, step, purpose)
(`data.step_generator`), so a step is a pure function of the state before it. Data-parallel
training (torchrun) averages gradients across ranks after each backward pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import nn

from scenegan import dataset, losses, metrics
from scenegan.models import IMAGE_TO_IMAGE, architecture_name, build_model
from scenegan.models.layers import init_weights
from scenegan.training import evaluate
from scenegan.training.components import (
    EMA,
    ImagePool,
    Precision,
    diff_augment,
    lr_factor,
    parse_policy,
    set_lr,
)
from scenegan.training.config import ConfigError, TrainConfig
from scenegan.training.data import DomainImages, indices_for_step, rank_slice, step_generator
from scenegan.training.stream import DatasetStream, StreamedDomain

# `purpose` numbers for step generators: one independent stream per use. A new task takes
# numbers after these for its own draws.
DATA_A, DATA_B, AUGMENT, POOL, NOISE, PENALTY = range(6)
# Each domain role's data order (memory reader) and reader seed (streaming reader).
ROLE_STREAMS = {"A": DATA_A, "B": DATA_B}
READER_SEEDS = {"A": 1, "B": 2}

Domains = dict[str, DomainImages] | dict[str, StreamedDomain]


@dataclass
class StepBatch:
    """One step's inputs, shared by the generator and the discriminator loss: the real
    images by domain role, the step's augmentation generator (the generator loss draws
    from it first, the discriminator loss continues it), what the generator made, and the
    critic round within the step (for tasks that update the critic several times)."""

    step: int
    real: dict[str, torch.Tensor]
    augment: torch.Generator
    fake: dict[str, torch.Tensor] = field(default_factory=dict)
    round: int = 0


class Task:
    """Networks, optimizers and the update rule of one task; subclasses fill them in."""

    name: ClassVar[str] = ""
    # domain role ("A": translated from, "B": learnt) -> the config field naming its domain
    domains: ClassVar[dict[str, str]] = {"A": "source_domain", "B": "target_domain"}
    generator_kind: ClassVar[str] = IMAGE_TO_IMAGE  # what the exported generator maps
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    options: ClassVar[tuple[str, ...]] = ()  # TrainConfig fields only this task reads
    streams: ClassVar[bool] = True  # can train from the streaming reader
    export_network: ClassVar[str] = "G"  # the generator whose EMA becomes the MODEL
    generator_names: ClassVar[tuple[str, ...]] = ("G",)
    discriminator_names: ClassVar[tuple[str, ...]] = ("D",)

    # --- before construction: config, data -----------------------------------------

    @classmethod
    def preset_defaults(cls, preset: str) -> dict[str, Any]:
        if preset not in cls.presets:
            raise ConfigError(
                f"unknown preset {preset!r} for task {cls.name}; choose one of "
                f"{', '.join(cls.presets)}"
            )
        values = dict(cls.presets[preset])
        for key, value in values.items():  # callers may change nested arguments
            if isinstance(value, dict):
                values[key] = dict(value)
        return values

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        """Refuse a config this task cannot train with (domains it needs, say)."""
        missing = [
            "--" + name.replace("_", "-")
            for name in cls.domains.values()
            if not getattr(config, name)
        ]
        if missing:
            raise ConfigError(f"task {cls.name} needs {' and '.join(missing)}")
        if config.reader == "stream" and not cls.streams:
            raise ConfigError(
                f"the {cls.name} task reads its images into memory: use --reader memory"
            )

    @classmethod
    def required_domains(cls, config: TrainConfig) -> list[str]:
        """The dataset domains this task trains on, in role order."""
        return [str(getattr(config, name)) for name in cls.domains.values()]

    @classmethod
    def model_name(cls, config: TrainConfig) -> tuple[str | None, str | None]:
        """(source, target) domain names for the model's default registry name."""
        return (
            getattr(config, cls.domains["A"]) if "A" in cls.domains else None,
            getattr(config, cls.domains["B"]) if "B" in cls.domains else None,
        )

    @classmethod
    def uses_stream(cls, config: TrainConfig) -> bool:
        """Stream from Parquet (`reader=stream`, or `auto` on an ingested dataset)."""
        if config.reader == "memory" or not cls.streams:
            if config.reader == "stream":
                raise ConfigError(
                    f"the {cls.name} task reads its images into memory: use --reader memory"
                )
            return False
        ingested = dataset.is_ingested(config.data)
        if config.reader == "stream" and not ingested:
            raise ConfigError(
                f"--reader stream needs an ingested dataset; {config.data} is not one"
            )
        return ingested

    @classmethod
    def load_domains(
        cls,
        config: TrainConfig,
        split: str = "train",
        *,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> Domains:
        """{role: images} for `split`: streamed (training on an ingested dataset) or read
        into memory."""
        roles = {role: str(getattr(config, name)) for role, name in cls.domains.items()}
        if split == "train" and cls.uses_stream(config):
            return {
                role: _streamed(config, name, READER_SEEDS[role], start_step, rank, world_size)
                for role, name in roles.items()
            }
        return {
            role: _in_memory(config, name, _sources(config, name, split))
            for role, name in roles.items()
        }

    # --- construction ---------------------------------------------------------------

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        rank: int,
        world_size: int,
        domains: Domains,
    ) -> None:
        self.config = config
        self.device = device
        self.rank = rank
        self.world_size = world_size
        self.policy = parse_policy(config.augment)
        self.networks: dict[str, nn.Module] = {}
        self.pools: dict[str, ImagePool] = {}
        self.domains: Domains = domains
        self.metrics: dict[str, float] = {}  # the latest held-out evaluation

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

    # --- the step -------------------------------------------------------------------

    def train_step(self, step: int) -> dict[str, float]:
        """One update: the generator loss and its update (discriminators frozen), the EMA,
        then the discriminator loss on what the generator made and its update. A task
        with another order (critic first, several critic rounds) overrides this."""
        batch = self.step_batch(step)
        self._requires_grad(self.discriminator_names, False)
        with self.precision.autocast():
            loss_g, logged = self.generator_loss(batch)
        self._update("G", loss_g)
        self._update_ema(step + 1)
        self._requires_grad(self.discriminator_names, True)
        with self.precision.autocast():
            loss_d, logged_d = self.discriminator_loss(batch)
        self._update("D", loss_d)
        return {**logged, **logged_d, "D": loss_d.item()}

    def step_batch(self, step: int) -> StepBatch:
        """The step's real batch of every domain role, and its augmentation generator."""
        real = {role: self._batch(role, step, ROLE_STREAMS[role]) for role in self.domains}
        return StepBatch(step, real, step_generator(self.config.seed, step, AUGMENT))

    def generator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """(the loss the generators minimise, its logged terms); fills `batch.fake`."""
        raise NotImplementedError

    def discriminator_loss(self, batch: StepBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """(the loss the discriminators minimise, its logged terms besides "D")."""
        raise NotImplementedError

    # --- shared step machinery ------------------------------------------------------

    def _batch(self, role: str, step: int, stream: int) -> torch.Tensor:
        """This rank's share of the global batch. Indices and crops are drawn for the whole
        global batch on every rank, then sliced, so N ranks see exactly the images (and
        crops) one process would at the same global batch."""
        images = self.domains[role]
        if isinstance(images, StreamedDomain):  # already this rank's share, augmented
            batch = images.next_batch().to(self.device, torch.get_default_dtype())
        else:
            count = self.config.batch_size * self.world_size
            seed = self.config.seed
            indices = indices_for_step(len(images), count, step, seed=seed, stream=stream)
            crops = images.crop_params(count, step_generator(seed, step, stream))
            batch = images.batch(
                rank_slice(indices, self.rank, self.world_size),
                rank_slice(crops, self.rank, self.world_size),
            ).to(self.device)
        if self.device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return diff_augment(x, self.policy, generator) if self.policy else x

    def _critic_loss(
        self,
        critic: nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        augment: torch.Generator,
        penalty: torch.Generator,
        weight: float = 1.0,
    ) -> torch.Tensor:
        """`weight` x the adversarial loss of one critic on augmented reals and fakes, plus
        the gradient penalty for wgan-gp."""
        real_aug, fake_aug = self._augment(real, augment), self._augment(fake, augment)
        adversarial = losses.discriminator_loss(
            self.config.loss, critic(real_aug), critic(fake_aug)
        )
        loss = weight * adversarial
        if self.config.loss == "wgan-gp":
            loss = loss + self.config.gp_weight * losses.gradient_penalty(
                critic, real_aug, fake_aug, penalty
            )
        return loss

    def _requires_grad(self, names: tuple[str, ...], flag: bool) -> None:
        for name in names:
            self.networks[name].requires_grad_(flag)

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
        """Average in the generators after `done` steps."""
        for name in self.generator_names:
            self.ema[name].update(self.networks[name], done)

    # --- evaluation and samples -----------------------------------------------------

    @torch.no_grad()
    def evaluate(self, held_out: dict[str, DomainImages]) -> dict[str, float]:
        """Held-out metrics of the exported generator's EMA: it translates the held-out
        source images; KID and FID compare them with held-out targets, and the content
        score with their inputs."""
        source, target = evaluate.first(held_out["A"]), evaluate.first(held_out["B"])
        fake = evaluate.translate(self.ema[self.export_network].model, source, self.device)
        return self._score(source, fake, target)

    def _score(
        self, source: torch.Tensor | None, fake: torch.Tensor, target: torch.Tensor
    ) -> dict[str, float]:
        """The registered metrics of `fake` against `target` ({} without features), and
        the content score against `source` when the generator had one."""
        results = evaluate.feature_metrics(target, fake, self.device)
        if results is None:
            return {}
        if source is not None:
            results["content"] = metrics.content_score(source, fake)
        return {name: round(value, 6) for name, value in results.items()}

    @torch.no_grad()
    def sample_rows(self) -> list[torch.Tensor]:
        """Rows of (N, 3, H, W) images in [-1, 1] for the sample grid (EMA generators)."""
        raise NotImplementedError

    def _preview(self, role: str, count: int = 6) -> torch.Tensor:
        images = self.domains[role]
        return images.batch(list(range(min(count, len(images))))).to(self.device)

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


def _sources(config: TrainConfig, domain: str, split: str | None) -> list[dataset.SourceImage]:
    return list(dataset.iter_domain(config.data, domain, split, test_fraction=config.test_fraction))


def _in_memory(
    config: TrainConfig, domain: str, sources: list[dataset.SourceImage]
) -> DomainImages:
    return DomainImages(domain, sources, image_size=config.image_size, load_size=config.load_size)


def _streamed(
    config: TrainConfig, domain: str, stream_id: int, start_step: int, rank: int, world_size: int
) -> StreamedDomain:
    stream = DatasetStream(
        config.data,
        domain,
        "train",
        image_size=config.image_size,
        load_size=config.load_size,
        seed=config.seed * 1000 + stream_id,
        rank=rank,
        world_size=world_size,
        shuffle_buffer=config.shuffle_buffer,
        start_batch=start_step,
        batch_size=config.batch_size,
    )
    return StreamedDomain(stream, num_workers=config.loader_workers)
