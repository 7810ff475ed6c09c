"""Training tasks, by name: `TASKS[config.task]` is the class that trains it.

A task owns everything that differs between tasks, so nothing else asks which task it is:
the domains it trains on, how it loads them, its networks and optimizers, its objective
(a generator loss and a discriminator loss), its held-out evaluation, its sample grid and
its named presets. The loop, the launchers, evaluation and export only call it.

Adding a task (the recipe, as CUT's models/__init__.py gives one):

1. Write `scenegan/training/tasks/<name>.py` with a subclass of `base.Task`:
   - `name = "<name>"`, and `domains` ({role: config field}; the default is
     {"A": "source_domain", "B": "target_domain"}; an unconditional task has only "B");
   - `presets = {"tiny": {...}, "small": {...}}`: TrainConfig values by preset name;
   - `options`: the TrainConfig fields only this task reads (add new hyperparameters to
     TrainConfig with a help text in their field metadata: the `scenegan train` flag,
     its validation and config.json follow from that);
   - `__init__`: build networks with `self._network(name, architecture, arguments)`,
     then `self._finish({"G": ([...], lr), "D": ([...], lr)})`; set `export_network`,
     `generator_names`, `discriminator_names` to match;
   - `generator_loss(batch)` and `discriminator_loss(batch)`, each returning (loss,
     {logged terms}); `batch.real[role]` holds the step's images and `batch.fake` carries
     what the generator made to the discriminator loss. Override `train_step` only for
     another update order (see `unconditional.py`), `step_batch` for other data streams,
     `evaluate` / `_score` for other metrics, `load_domains` for other data (`paired.py`);
   - `sample_rows()`: the rows of the sample grid.
   Random draws come from `data.step_generator(seed, step, purpose)`; take purpose
   numbers after `base.PENALTY`.
2. Register it below: `"<name>": <Name>Task`.
3. Add a tiny-preset case to tests/test_training.py's resume test.
"""

from __future__ import annotations

from scenegan.training.config import ConfigError
from scenegan.training.tasks.base import StepBatch, Task
from scenegan.training.tasks.contrastive import ContrastiveTask
from scenegan.training.tasks.paired import PairedTask
from scenegan.training.tasks.unconditional import UnconditionalTask
from scenegan.training.tasks.unpaired import UnpairedTask

TASKS: dict[str, type[Task]] = {
    "unpaired": UnpairedTask,
    "paired": PairedTask,
    "unconditional": UnconditionalTask,
    "contrastive": ContrastiveTask,
}


def task_class(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def build_task(config, device, rank: int, world_size: int, domains) -> Task:
    """The task of `config`, with its networks, on `domains` (`Task.load_domains`)."""
    return task_class(config.task)(config, device, rank, world_size, domains)


__all__ = ["TASKS", "StepBatch", "Task", "build_task", "task_class"]
