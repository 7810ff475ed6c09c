"""Training parts with state: EMA of weights, the history pool of fakes, the learning-rate
schedule, DiffAugment and mixed precision. Each has `state_dict`/`load_state_dict` where
it carries state, so a checkpoint holds all of it."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class EMA:
    """Exponential moving average of a network's weights, the one exported for inference.

    The averaging horizon grows with training (StyleGAN2-ADA's ema_rampup): at step t the
    half-life is min(rampup * t, the half-life of `decay`) steps. With a fixed decay of
    0.999 the average of a 300-step run is still mostly the random initialisation (its
    half-life is 693 steps); with the ramp it always covers the recent part of the run,
    and a long run ends with the full horizon. `rampup=0` keeps the decay fixed.

    Buffers (batch-norm statistics, spectral-norm vectors) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float, rampup: float = 0.0) -> None:
        self.decay = decay
        self.rampup = rampup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay applied by the update after `step` steps (a pure function: resumable)."""
        if self.rampup <= 0 or self.decay <= 0:
            return self.decay
        half_life = math.log(0.5) / math.log(self.decay)
        half_life = min(half_life, self.rampup * step)
        return 0.5 ** (1.0 / half_life) if half_life > 0 else 0.0

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Blend in `model`'s weights; `step` is the number of steps done (for the ramp)."""
        decay = self.decay if step is None else self.decay_at(step)
        for ema_param, param in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_param.lerp_(param.detach(), 1.0 - decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


class ImagePool:
    """CycleGAN's history of generated images: the discriminator sees a mix of current and
    past fakes, so the generator cannot win by oscillating between modes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                slot = int(torch.randint(0, self.size, (), generator=generator))
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        stacked = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.size = int(state["size"])
        self.images = [image.to(device) for image in state["images"]]


def lr_factor(step: int, total_steps: int, decay_start: float) -> float:
    """1.0 for the first `decay_start` fraction of steps, then linear down towards 0.

    A pure function of the step: nothing to save, and a resume cannot drift from it.
    """
    start = int(total_steps * decay_start)
    if step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / max(1, total_steps - start))


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor
    return base_lr * factor


# --- DiffAugment (Zhao et al. 2020) -----------------------------------------------------
# The same random, differentiable transforms are applied to every image the discriminator
# sees, real or fake, in both the D and the G step. D cannot memorise a few hundred style
# images, yet G gets gradients through the transforms, so it does not learn to produce
# augmented-looking images.

AUGMENT_POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = set(names) - set(AUGMENT_POLICIES)
    if unknown:
        raise ValueError(f"unknown augment {sorted(unknown)}; choose from {AUGMENT_POLICIES}")
    return names


def diff_augment(
    x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator
) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> augmented, differentiable w.r.t. x."""
    for name in policy:
        x = _AUGMENTS[name](x, generator)
    return x


def _rand(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device=like.device, dtype=like.dtype)


def _color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    batch = x.shape[0]
    x = x + (_rand((batch, 1, 1, 1), generator, x) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand((batch, 1, 1, 1), generator, x) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand((batch, 1, 1, 1), generator, x) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    batch, _, height, width = x.shape
    max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (batch,), generator=generator).tolist()
    dx = torch.randint(-max_dx, max_dx + 1, (batch,), generator=generator).tolist()
    padded = F.pad(x, (max_dx, max_dx, max_dy, max_dy))  # zero padding: shifted-in borders
    shifted = []
    for i in range(batch):
        top, left = max_dy - dy[i], max_dx - dx[i]
        shifted.append(padded[i, :, top : top + height, left : left + width])
    return torch.stack(shifted)


def _cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    batch, _, height, width = x.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height - cut_h + 1, (batch,), generator=generator)
    left = torch.randint(0, width - cut_w + 1, (batch,), generator=generator)
    rows = torch.arange(height)[None, :, None]
    cols = torch.arange(width)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + cut_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + cut_w)[:, None, None])
    )
    return x * (~inside).to(device=x.device, dtype=x.dtype)[:, None]


_AUGMENTS = {"color": _color, "translation": _translation, "cutout": _cutout}


# --- mixed precision --------------------------------------------------------------------


class Precision:
    """Autocast + loss scaling for one device. CPU: plain fp32. CUDA: bf16 when the GPU
    supports it (no scaler needed), else fp16 with a GradScaler per optimizer. `fp64`: no
    autocast; the training loop makes float64 the default dtype (exactness checks)."""

    def __init__(self, mode: str, device: torch.device, names: list[str]) -> None:
        if mode not in ("auto", "bf16", "fp16", "off", "fp64"):
            raise ValueError(f"amp={mode!r}: choose auto, bf16, fp16, off or fp64")
        if device.type != "cuda" or mode in ("off", "fp64"):
            self.dtype = None
        elif mode == "auto":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.dtype = torch.bfloat16 if mode == "bf16" else torch.float16
        self.device = device
        enabled = self.dtype == torch.float16
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=enabled) for name in names}

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                yield

    def state_dict(self) -> dict:
        return {name: scaler.state_dict() for name, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, scaler in self.scalers.items():
            if state.get(name):
                scaler.load_state_dict(state[name])
