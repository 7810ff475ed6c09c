"""`training_loop(config)`: data -> task -> steps, with stats, samples and checkpoints.

The loop knows no task by name: the task (`tasks.TASKS[config.task]`) loads its data,
builds its networks, steps and evaluates itself.

Launched plainly it trains in this process, on CUDA when present. Launched by `torchrun`
(RANK / WORLD_SIZE / LOCAL_RANK in the environment) every process trains on its share of
the global batch, gradients are averaged across ranks (gloo on CPU, nccl on CUDA), and
rank 0 alone writes the run directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from scenegan.training import checkpoint as ckpt
from scenegan.training.config import TrainConfig
from scenegan.training.data import DomainImages
from scenegan.training.run import RunDirectory
from scenegan.training.stream import StreamedDomain
from scenegan.training.tasks import Task, task_class

log = logging.getLogger(__name__)


class Preempted(Exception):
    """Training stopped on a stop signal after checkpointing the step it had reached;
    `--resume` continues from exactly there. SIGTERM: a preempted VM, a stopped job,
    `timeout`, systemd; SIGINT: Ctrl-C. `exit_code` is the shell's 128 + signal number
    (143, 130), what supervisors expect of a job they stopped."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at step {step} (checkpointed)")
        self.step = step
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass(frozen=True)
class TrainResult:
    run: str
    step: int
    resumed_from: int
    images_per_second: float
    last_losses: dict[str, float]


def training_loop(
    config: TrainConfig,
    *,
    resume: bool = False,
    on_step: Callable[[int, Task], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train to `config.steps`. `on_step(step, task)` runs after each step (tests, hooks).

    `config.amp == "fp64"` trains in float64 throughout (default dtype for the run)."""
    previous = torch.get_default_dtype()
    if config.amp == "fp64":
        torch.set_default_dtype(torch.float64)
    try:
        return _training_loop(config, resume=resume, on_step=on_step, progress=progress)
    finally:
        torch.set_default_dtype(previous)


def _training_loop(
    config: TrainConfig,
    *,
    resume: bool,
    on_step: Callable[[int, Task], None] | None,
    progress: bool,
) -> TrainResult:
    rank, world_size = _init_distributed()
    run = RunDirectory(config.output)
    start, state = _starting_point(run, config, resume)
    seed_everything(config.seed)  # network initialisation: the same on every rank
    task_type = task_class(config.task)
    domains = task_type.load_domains(config, start_step=start, rank=rank, world_size=world_size)
    with closing_streams(domains):
        return _train(task_type, config, run, (start, state), domains, on_step, progress)


@contextlib.contextmanager
def closing_streams(domains: dict) -> Iterator[None]:
    """Stop the streamed domains' loader workers however the run ends."""
    try:
        yield
    finally:
        for images in domains.values():
            if isinstance(images, StreamedDomain):
                images.close()


def _train(
    task_type: type[Task],
    config: TrainConfig,
    run: RunDirectory,
    restart: tuple[int, dict | None],
    domains: dict,
    on_step: Callable[[int, Task], None] | None,
    progress: bool,
) -> TrainResult:
    (start, state), (rank, world_size) = restart, _init_distributed()  # idempotent
    device = _device()
    task = task_type(config, device, rank, world_size, domains)
    fingerprint = data_fingerprint(domains)
    held_out = _held_out(task_type, config) if rank == 0 and config.eval_every >= 0 else None
    _restore_or_start(run, config, task, state, start, rank)
    bar = Progress(config.steps, start, enabled=progress and rank == 0)
    window = RateWindow(config.batch_size * world_size)
    losses: dict[str, float] = {}
    with StopRequest(world_size, device) as stop:
        for step in range(start, config.steps):
            torch.manual_seed(config.seed * 1_000_003 + step)  # dropout etc.: per step
            rates = task.set_learning_rates(step)
            losses = task.train_step(step)
            done = step + 1
            window.add_step()
            bar.update(done, losses)
            if rank == 0:
                _log_step(run, task, config, held_out, done, window, losses, rates)
            _write_periodic(run, task, config, done, rank, fingerprint)
            if on_step is not None:
                on_step(done, task)
            signum = stop.requested()
            if signum and done < config.steps:
                _checkpoint_now(run, task, config, done, rank, fingerprint)
                raise Preempted(done, signum)
    bar.close()
    if world_size > 1:
        dist.barrier()
    rate = _overall_rate(run.stats)
    return TrainResult(config.output, config.steps, start, rate, losses)


def _restore_or_start(
    run: RunDirectory, config: TrainConfig, task: Task, state: dict | None, start: int, rank: int
) -> None:
    """Resume `task` from `state` (a checkpoint), or write a fresh run's config.json."""
    if state is not None:
        ckpt.check_compatible(state, task.architectures(), config.task)
        task.load_state_dict(state)
        ckpt.restore_rng_state(state["rng"])
        run.load_stats(up_to_step=start)
    elif rank == 0:
        run.write_config(config.to_json())


class RateWindow:
    """Images per second since the last `rate()` call."""

    def __init__(self, images_per_step: int) -> None:
        self.images_per_step = images_per_step
        self.start, self.images = time.perf_counter(), 0

    def add_step(self) -> None:
        self.images += self.images_per_step

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        rate = round(self.images / max(elapsed, 1e-9), 3)
        self.start, self.images = time.perf_counter(), 0
        return rate


def _log_step(
    run: RunDirectory,
    task: Task,
    config: TrainConfig,
    held_out: dict[str, DomainImages] | None,
    done: int,
    window: RateWindow,
    losses: dict[str, float],
    rates: dict[str, float],
) -> None:
    """Rank 0's stats record of step `done`: losses, lr and img/s, held-out metrics when due."""
    record: dict[str, Any] = {}
    if _due(done, config.log_every, config.steps):
        record.update(losses=losses, lr=rates, images_per_second=window.rate())
    if held_out and _due(done, config.eval_every, config.steps):
        task.metrics = task.evaluate(held_out)
        record["metrics"] = task.metrics
    if record:
        run.log({"step": done, **record})


def _due(done: int, every: int, total: int) -> bool:
    return done == total or (every > 0 and done % every == 0)


def _held_out(task_type: type[Task], config: TrainConfig) -> dict[str, DomainImages] | None:
    """The test split, or None (with a warning) when it is too small to measure on."""
    try:
        held_out = task_type.load_domains(config, split="test")
    except (FileNotFoundError, ValueError) as error:
        log.warning("no held-out metrics: %s", error)
        return None
    if min(len(domain) for domain in held_out.values()) < 2:
        log.warning("no held-out metrics: fewer than 2 test images in a domain")
        return None
    return held_out


def _starting_point(
    run: RunDirectory, config: TrainConfig, resume: bool
) -> tuple[int, dict | None]:
    existing = ckpt.list_checkpoints(run.root)
    if not resume:
        if existing:
            raise ckpt.CheckpointError(
                f"{run.root} already holds checkpoints (last: step {existing[-1][0]}); pass "
                "--resume to continue it or choose a new --output"
            )
        return 0, None
    state = ckpt.load_latest(run.root)
    if state is None:
        return 0, None  # --resume on a fresh run directory simply starts
    return int(state["step"]), state


def _write_periodic(
    run: RunDirectory, task: Task, config: TrainConfig, done: int, rank: int, fingerprint: str
) -> None:
    if rank != 0:
        return
    final = done == config.steps
    if done % config.sample_every == 0 or final:
        run.write_samples(done, task.sample_rows())
    if done % config.checkpoint_every == 0 or final:
        state = checkpoint_state(task, config, done, fingerprint)
        ckpt.save_checkpoint(run.root, state, config.keep_checkpoints)
        run.flush()


def _checkpoint_now(
    run: RunDirectory, task: Task, config: TrainConfig, done: int, rank: int, fingerprint: str
) -> None:
    if rank == 0 and done % config.checkpoint_every != 0:  # else it was just written
        ckpt.save_checkpoint(
            run.root, checkpoint_state(task, config, done, fingerprint), config.keep_checkpoints
        )
        run.flush()
    if dist.is_initialized():
        dist.barrier()


class StopRequest:
    """SIGTERM and SIGINT set a flag that the loop reads between steps: the step under way
    finishes, is checkpointed, and training stops with `Preempted`. A second signal stops
    at once (no checkpoint), for a user who means it. Under DDP the ranks agree (one
    all-reduce of the signal number per step), so all stop after the same step; the signal
    may reach them between different steps.

    A signal sent to the whole process group (Ctrl-C, `timeout`, systemd, a VM shutdown)
    also reaches the data loader's workers; they ignore it (`stream.ignore_stop_signals`)
    and leave stopping to this process."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, world_size: int, device: torch.device) -> None:
        import threading

        self.world_size, self.device = world_size, device
        self.signum = 0
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._set)

    def _set(self, signum: int, _frame: Any) -> None:
        if self.signum:  # the second one: stop now
            raise SystemExit(128 + signum)
        self.signum = signum

    def requested(self) -> int:
        """The signal number to stop for, or 0."""
        if self.world_size == 1 or not dist.is_initialized():
            return self.signum
        flag = torch.tensor([float(self.signum)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def __enter__(self) -> StopRequest:
        return self

    def __exit__(self, *_: Any) -> None:
        for signum, previous in self.previous.items():  # the handlers from before training
            signal.signal(signum, previous)
        self.previous = {}


def data_fingerprint(domains: dict[str, DomainImages | StreamedDomain]) -> str:
    """sha256 over the domains' fingerprints: the exact training set."""
    digest = hashlib.sha256()
    for name in sorted(domains):
        digest.update(f"{name}={domains[name].fingerprint()};".encode())
    return digest.hexdigest()


def checkpoint_state(
    task: Task, config: TrainConfig, step: int, fingerprint: str
) -> dict[str, Any]:
    return {
        "step": step,
        "task": config.task,
        "config": config.to_json(),
        "config_hash": config.config_hash(),
        "architectures": task.architectures(),
        "export_network": task.export_network,
        "data_fingerprint": fingerprint,
        **task.state_dict(),
        "schedule": {
            "kind": "constant-then-linear",
            "decay_start": config.decay_start,
            "steps": config.steps,
        },
        "rng": ckpt.rng_state(),
        "data_order": {"seed": config.seed, "next_step": step},
    }


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _init_distributed() -> tuple[int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _overall_rate(stats: list[dict[str, Any]]) -> float:
    rates = [r["images_per_second"] for r in stats if "images_per_second" in r]
    return float(np.median(rates)) if rates else 0.0


class Progress:
    """One status line: step, losses, images/s and ETA. A line per update when stderr is
    not a terminal (CI logs), rate-limited to one every few seconds."""

    def __init__(self, total: int, start: int, *, enabled: bool) -> None:
        self.total, self.start = total, start
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.began = self.last_print = time.perf_counter()

    def update(self, step: int, losses: dict[str, float]) -> None:
        now = time.perf_counter()
        if not self.enabled or (
            now - self.last_print < (0.2 if self.tty else 5.0) and step < self.total
        ):
            return
        self.last_print = now
        rate = (step - self.start) / max(now - self.began, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        shown = " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        width = 20
        filled = int(width * step / self.total)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} {shown} "
            f"| {rate:.2f} step/s | ETA {_duration(eta)}"
        )
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
