"""Training launch: `scenegan train --launcher local|torchrun|vertex`.

Every launcher first checks the dataset against its `_manifest.json` (domains, splits and
counts the task needs, `dataset.check_dataset`), so a bad dataset is refused on the user's
machine, not an hour later on a cloud GPU.

- local: trains in this process (CUDA when present, else the CPU).
- torchrun: N processes with DDP through torch's own launcher (`torch.distributed.run`);
  on Vertex AI the node rank and master come from the `CLUSTER_SPEC` it sets.
- vertex: a Vertex AI custom job whose container runs the torchrun launcher
  (`scenegan.training.vertex`).

With `--registry REGISTRY --name NAME` a finished run is promoted to the model registry.
The training loop is imported only when this process trains.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from scenegan import registry
from scenegan.training.checks import check_dataset, default_name
from scenegan.training.config import TrainConfig
from scenegan.training.flags import add_training_arguments, config_from_args

LAUNCHERS = ("local", "torchrun", "vertex")
EXIT_PREEMPTED = 143  # 128 + SIGTERM: what a supervisor expects of a job it stopped
DEFAULT_MACHINE = "g2-standard-8"  # 1 x L4
DEFAULT_ACCELERATOR = "NVIDIA_L4"


# --- flags --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags (what a run is) and the launch flags (where it runs)."""
    add_training_arguments(parser.add_argument_group("training"))
    _add_launch_arguments(parser.add_argument_group("launch"))


def _add_launch_arguments(group: Any) -> None:
    group.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: this process; torchrun: N DDP processes; vertex: a Vertex "
        "AI custom job (default: local)",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config (local), the command (torchrun) or the "
        "Vertex job spec (vertex) as JSON and exit",
    )
    group.add_argument(
        "--registry",
        metavar="REGISTRY",
        help="promote the finished run to REGISTRY/NAME (local or gs://)",
    )
    group.add_argument("--name", metavar="NAME", help="the model's name in --registry")
    group.add_argument(
        "--metric",
        default=registry.DEFAULT_METRIC,
        choices=sorted(registry.LOWER_IS_BETTER),
        help="quality metric a promotion must not make worse (default: kid)",
    )
    group.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="N",
        help="torchrun processes per machine (default: GPUs, else 1)",
    )
    group.add_argument("--nnodes", type=int, metavar="N", help="torchrun machines (default: 1)")
    group.add_argument("--node-rank", type=int, metavar="R")
    group.add_argument("--master-addr", metavar="HOST")
    group.add_argument("--master-port", type=int, metavar="PORT")
    group.add_argument("--project", metavar="PROJECT", help="vertex: Google Cloud project")
    group.add_argument("--region", default="us-central1", metavar="REGION")
    group.add_argument("--machine-type", default=DEFAULT_MACHINE, metavar="TYPE")
    group.add_argument(
        "--accelerator-type",
        default=DEFAULT_ACCELERATOR,
        metavar="TYPE",
        help="e.g. NVIDIA_L4, NVIDIA_TESLA_A100, NVIDIA_H100_80GB; NONE for CPU",
    )
    group.add_argument("--accelerator-count", type=int, default=1, metavar="N")
    group.add_argument(
        "--replica-count", type=int, default=1, metavar="N", help="machines for multi-node DDP"
    )
    group.add_argument("--image", metavar="URI", help="vertex: the container (deploy/Dockerfile)")
    group.add_argument(
        "--staging-bucket",
        metavar="gs://BUCKET/PATH",
        help="vertex: the job's base output directory",
    )
    group.add_argument("--service-account", metavar="EMAIL")
    group.add_argument("--job-name", metavar="NAME")


def split_argv(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """(launch flags, the training flags exactly as given): what a launcher forwards."""
    launch = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_launch_arguments(launch)
    options, training = launch.parse_known_args(list(argv))
    return options, training


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, argparse.Namespace, list[str]]:
    launch, training_argv = split_argv(argv)
    parser = argparse.ArgumentParser(prog="scenegan train", allow_abbrev=False)
    add_training_arguments(parser)
    return launch, parser.parse_args(training_argv), training_argv


def resolve(args: argparse.Namespace) -> TrainConfig:
    """The checked config of the training flags (a ConfigError says what is wrong)."""
    return config_from_args(args)


# --- launchers ----------------------------------------------------------------------


def run(argv: Sequence[str], *, vertex_client: Any = None) -> int:
    """`scenegan train ...`: check, then train here, under torchrun, or on Vertex AI."""
    launch, args, training_argv = parse(argv)
    config = resolve(args)
    if launch.launcher == "local":
        if launch.dry_run:
            print(json.dumps(config.to_json(), indent=2))
            return 0
        check_dataset(config, world_size=int(os.environ.get("WORLD_SIZE", "1")))
        return train_here(config, args.resume, launch)
    if launch.launcher == "torchrun":
        return run_torchrun(launch, config, training_argv)
    from scenegan.training import vertex

    return vertex.run_vertex(launch, config, training_argv, client=vertex_client)


def train_here(config: TrainConfig, resume: bool, launch: argparse.Namespace) -> int:
    from scenegan.training import Preempted, training_loop

    try:
        result = training_loop(config, resume=resume)
    except Preempted as stop:
        print(
            f"preempted at step {stop.step} ({stop}): checkpoint saved to {config.output}; "
            "rerun with --resume to continue",
            file=sys.stderr,
        )
        return stop.exit_code
    print(
        f"trained {config.output} to step {result.step} (resumed from {result.resumed_from}; "
        f"{result.images_per_second:.1f} img/s)"
    )
    # Under --launcher torchrun the launching process promotes (its workers never see
    # --registry); under a hand-started torchrun every rank would get it: only rank 0 acts.
    if int(os.environ.get("RANK", "0")) == 0:
        promote_finished(config, launch)
    return 0


def promote_finished(config: TrainConfig, launch: argparse.Namespace) -> None:
    if not launch.registry:
        return
    name = launch.name or default_name(config)
    promotion = registry.promote(launch.registry, name, run=config.output, metric=launch.metric)
    print(f"registry: {name} {promotion.version} ({promotion.message}) -> {promotion.uri}")


def run_torchrun(launch: argparse.Namespace, config: TrainConfig, training_argv: list[str]) -> int:
    """`python -m torch.distributed.run ... -m scenegan.cli train` with the same flags; the
    registry promote happens here, once, after every process has finished."""
    command, env = torchrun_command(launch, training_argv)
    nodes = int(command[command.index("--nnodes") + 1])
    per_node = int(command[command.index("--nproc-per-node") + 1])
    if launch.dry_run:
        print(json.dumps({"command": command}, indent=2))
        return 0
    check_dataset(config, world_size=nodes * per_node)
    returncode = _run_forwarding_sigterm(command, env)
    if returncode != 0:
        return returncode
    if int(command[command.index("--node-rank") + 1]) == 0:
        promote_finished(config, launch)
    return 0


def torchrun_command(
    launch: argparse.Namespace, training_argv: list[str], environ: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The torchrun command line and environment. Explicit flags win; then Vertex AI's
    CLUSTER_SPEC; else one node on loopback."""
    env = dict(os.environ if environ is None else environ)
    cluster = cluster_from_spec(env.get("CLUSTER_SPEC"))
    nnodes = launch.nnodes or cluster.get("nnodes", 1)
    node_rank = launch.node_rank if launch.node_rank is not None else cluster.get("node_rank", 0)
    master = launch.master_addr or cluster.get("master_addr", "127.0.0.1")
    port = launch.master_port or cluster.get("master_port") or _free_port()
    per_node = launch.nproc_per_node or _gpu_count() or 1
    if master == "127.0.0.1":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo picks the loopback interface too
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // per_node)))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nnodes),
        "--nproc-per-node",
        str(per_node),
        "--node-rank",
        str(node_rank),
        "--master-addr",
        master,
        "--master-port",
        str(port),
        "-m",
        "scenegan.cli",
        "train",
        *training_argv,
    ]
    return command, env


def _run_forwarding_sigterm(command: list[str], env: dict[str, str]) -> int:
    """Run `command`; a SIGTERM to this process (a preempted VM, a stopped job) is passed on
    to it, so its workers checkpoint and stop instead of being orphaned."""
    import signal

    process = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def cluster_from_spec(spec: str | None) -> dict[str, Any]:
    """Node count, this node's rank and the master from Vertex AI's CLUSTER_SPEC, e.g.
    {"cluster": {"workerpool0": ["host0:2222"], "workerpool1": ["host1:2222"]},
     "task": {"type": "workerpool1", "index": 0}}: workerpool0 holds the master."""
    if not spec:
        return {}
    parsed = json.loads(spec)
    cluster, task = parsed["cluster"], parsed["task"]
    primary, others = cluster["workerpool0"], cluster.get("workerpool1", [])
    host, _, port = primary[0].partition(":")
    index = int(task.get("index", 0))
    node_rank = index if task["type"] == "workerpool0" else len(primary) + index
    return {
        "nnodes": len(primary) + len(others),
        "node_rank": node_rank,
        "master_addr": host,
        "master_port": int(port) if port else None,
    }


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
