"""Training launch: `scenegan train --launcher local|torchrun|vertex`.

Every launcher first checks the dataset against its `_manifest.json` (domains, splits and
counts the task needs), so a bad dataset is refused on the user's machine, not an hour
later on a cloud GPU.

- local: trains in this process (CUDA when present, else the CPU).
- torchrun: N processes with DDP through torch's own launcher (`torch.distributed.run`);
  on Vertex AI the node rank and master come from the `CLUSTER_SPEC` it sets.
- vertex: a Vertex AI custom job whose container runs the torchrun launcher; `--dry-run`
  prints the job spec, and submission goes through one seam (`JobServiceClient`).

With `--registry REGISTRY --name NAME` a finished run is promoted to the model registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from scenegan import dataset, registry, storage
from scenegan.training.config import PRESETS, TASKS, TrainConfig

log = logging.getLogger(__name__)

LAUNCHERS = ("local", "torchrun", "vertex")
EXIT_PREEMPTED = 143  # 128 + SIGTERM: what a supervisor expects of a job it stopped
DEFAULT_MACHINE = "g2-standard-8"  # 1 x L4
DEFAULT_ACCELERATOR = "NVIDIA_L4"


class DatasetError(ValueError):
    """A dataset the requested training cannot run on, with what to do about it."""


# --- flags --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags (what a run is) and the launch flags (where it runs)."""
    _add_training_arguments(parser.add_argument_group("training"))
    _add_launch_arguments(parser.add_argument_group("launch"))


def _add_training_arguments(group: Any) -> None:
    group.add_argument("--data", required=True, metavar="DATASET", help="ingest output")
    group.add_argument("--output", required=True, metavar="RUN", help="run directory")
    group.add_argument("--task", choices=TASKS, default="unpaired")
    group.add_argument("--source-domain", metavar="NAME")
    group.add_argument("--target-domain", metavar="NAME")
    group.add_argument("--preset", default="small", metavar="NAME", help=" | ".join(PRESETS))
    group.add_argument("--steps", type=int, metavar="N")
    group.add_argument(
        "--resume", action="store_true", help="continue from the run's last checkpoint"
    )
    group.add_argument(
        "--generator",
        choices=("resnet", "light", "unet"),
        help="image-to-image generator (default: the preset's)",
    )
    group.add_argument("--loss", choices=("lsgan", "bce", "wgan-gp", "hinge"))
    group.add_argument(
        "--augment",
        metavar="POLICY",
        help="DiffAugment policy for small style sets, e.g. color,translation,cutout",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="per process; under torchrun the global batch is N x processes",
    )
    group.add_argument(
        "--pool-size", type=int, metavar="N", help="history pool of fakes per domain (0: off)"
    )
    group.add_argument("--image-size", type=int, metavar="PX")
    group.add_argument("--seed", type=int)
    group.add_argument("--amp", choices=("auto", "bf16", "fp16", "off", "fp64"))
    group.add_argument("--checkpoint-every", type=int, metavar="N")
    group.add_argument("--sample-every", type=int, metavar="N")
    group.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="held-out metrics every N steps (0: at the end; -1: never)",
    )
    group.add_argument(
        "--reader",
        choices=("auto", "memory", "stream"),
        help="stream an ingested dataset's row groups (auto: stream when --data "
        "is ingested and the task is not paired) or read every image into memory",
    )
    group.add_argument("--loader-workers", type=int, metavar="N", help="streaming reader workers")
    group.add_argument("--shuffle-buffer", type=int, metavar="N", help="streaming shuffle buffer")


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
    _add_training_arguments(parser)
    return launch, parser.parse_args(training_argv), training_argv


def resolve(args: argparse.Namespace) -> TrainConfig:
    from scenegan.training import resolve_config

    overrides = {
        "data": args.data,
        "output": args.output,
        "source_domain": args.source_domain,
        "target_domain": args.target_domain,
        "steps": args.steps,
        "loss": args.loss,
        "augment": args.augment,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "pool_size": args.pool_size,
        "amp": args.amp,
        "checkpoint_every": args.checkpoint_every,
        "sample_every": args.sample_every,
        "eval_every": args.eval_every,
        "reader": args.reader,
        "loader_workers": args.loader_workers,
        "shuffle_buffer": args.shuffle_buffer,
    }
    if args.image_size:
        overrides.update(image_size=args.image_size, load_size=round(args.image_size * 1.12))
    if args.generator:
        overrides["generator"] = args.generator
    return resolve_config(args.task, args.preset, **overrides)


# --- dataset checks -----------------------------------------------------------------


def required_domains(config: TrainConfig) -> list[str]:
    if config.task == "unconditional":
        return [str(config.target_domain)]
    return [str(config.source_domain), str(config.target_domain)]


def check_dataset(config: TrainConfig, world_size: int = 1) -> dict[str, dict[str, int]]:
    """Refuse a dataset the task cannot train on; returns {domain: {split: count}}.

    Ingested datasets are checked from `_manifest.json` alone (no image is read);
    a folder of domain folders is checked by listing them."""
    root = config.data
    if not storage.exists(root):
        raise DatasetError(
            f"no dataset at {root}: make one with scenegan ingest --input PATTERN --domain "
            f"NAME --output {root}"
        )
    ingested = dataset.is_ingested(root)
    counts = _ingested_counts(root) if ingested else _folder_counts(config)
    needed = config.batch_size * world_size
    for domain in required_domains(config):
        if domain not in counts:
            raise DatasetError(_missing_domain(root, domain, counts, ingested))
        train = counts[domain].get("train", 0)
        if train == 0:
            rejected = counts[domain].get("rejected", 0)
            why = f": all {rejected} of its inputs were rejected" if rejected else ""
            raise DatasetError(
                f"domain {domain!r} of {root} has no train images{why} (see "
                f"{root}/rejects/domain={domain} for the reasons)"
            )
        if train < needed:  # trains, but every batch repeats images: worth a word
            log.warning(
                "domain %r has %d train images, fewer than one global batch (%d x %d "
                "processes = %d): images repeat within batches",
                domain,
                train,
                config.batch_size,
                world_size,
                needed,
            )
        if config.eval_every >= 0 and counts[domain].get("test", 0) < 2:
            log.warning(
                "domain %r has fewer than 2 test images: no held-out metrics, so "
                "a registry promote has nothing to compare",
                domain,
            )
    return counts


def _missing_domain(
    root: str, domain: str, counts: dict[str, dict[str, int]], ingested: bool
) -> str:
    if ingested:
        known = ", ".join(sorted(counts)) or "none"
        return (
            f"{root} has no domain {domain!r} (it has: {known}); ingest it with "
            f"--domain {domain}, or fix the domain name"
        )
    return (
        f"no images for domain {domain!r}: {root} is neither an ingested dataset nor has "
        f"a folder {storage.join(root, domain)} of images"
    )


def _ingested_counts(root: str) -> dict[str, dict[str, int]]:
    manifest = dataset.read_manifest(root)
    if manifest is None:
        raise DatasetError(
            f"{root} has images/ but no {dataset.MANIFEST_NAME} (an interrupted ingest?): "
            "rerun scenegan ingest on the same inputs; it adds nothing twice and writes it"
        )
    counts: dict[str, dict[str, int]] = {}
    for name, entry in manifest.get("domains", {}).items():
        counts[name] = {split: int(n) for split, n in entry.get("images", {}).items()}
        counts[name]["rejected"] = sum(int(n) for n in entry.get("rejects", {}).values())
    return counts


def _folder_counts(config: TrainConfig) -> dict[str, dict[str, int]]:
    counts = {}
    for domain in required_domains(config):
        images = dataset.domain_files(config.data, domain)
        if images or storage.exists(storage.join(config.data, domain)):
            # The split of a plain folder is only known after hashing; count all as train.
            counts[domain] = {"train": len(images)}
    return counts


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
    return run_vertex(launch, config, training_argv, client=vertex_client)


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


def default_name(config: TrainConfig) -> str:
    source = None if config.task == "unconditional" else config.source_domain
    return registry.model_name(source, config.target_domain)


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


# --- Vertex AI ----------------------------------------------------------------------


def run_vertex(
    launch: argparse.Namespace, config: TrainConfig, training_argv: list[str], client: Any = None
) -> int:
    """Check the dataset from here, then print (`--dry-run`) or submit the custom job."""
    spec = vertex_job_spec(launch, config, training_argv)
    parent = f"projects/{launch.project}/locations/{launch.region}"
    if launch.dry_run:
        print(json.dumps({"parent": parent, "customJob": spec}, indent=2))
        return 0
    check_dataset(config, world_size=_vertex_world_size(launch))
    job = submit_vertex_job(parent, spec, launch.region, client=client)
    name = job.get("name", "?")
    print(
        f"submitted Vertex AI custom job {name}\n  watch: gcloud ai custom-jobs stream-logs "
        f"{name.rsplit('/', 1)[-1]} --region {launch.region}"
    )
    return 0


def vertex_job_spec(
    launch: argparse.Namespace, config: TrainConfig, training_argv: list[str]
) -> dict[str, Any]:
    """A Vertex AI CustomJob (REST/JSON field names). Pool 0 is the DDP master machine;
    pool 1 holds the other `--replica-count - 1` machines. Every machine runs the torchrun
    launcher with `--resume`, so a job restarted after preemption continues its run."""
    _check_vertex(launch, config)
    accelerated = launch.accelerator_type.upper() != "NONE"
    per_node = launch.accelerator_count if accelerated else 1
    args = [
        "train",
        "--launcher",
        "torchrun",
        "--nproc-per-node",
        str(per_node),
        "--nnodes",
        str(launch.replica_count),
        *training_argv,
    ]
    if "--resume" not in training_argv:
        args.append("--resume")
    if launch.registry:
        args += [
            "--registry",
            launch.registry,
            "--name",
            launch.name or default_name(config),
            "--metric",
            launch.metric,
        ]
    machine: dict[str, Any] = {"machineType": launch.machine_type}
    if accelerated:
        machine.update(
            acceleratorType=launch.accelerator_type.upper(),
            acceleratorCount=launch.accelerator_count,
        )
    pool = {
        "machineSpec": machine,
        "replicaCount": "1",
        "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": 100},
        "containerSpec": {"imageUri": launch.image, "command": ["scenegan"], "args": args},
    }
    pools = [pool]
    if launch.replica_count > 1:
        pools.append({**pool, "replicaCount": str(launch.replica_count - 1)})
    job_spec: dict[str, Any] = {
        "workerPoolSpecs": pools,
        "scheduling": {"restartJobOnWorkerRestart": True},
    }
    if launch.staging_bucket:
        job_spec["baseOutputDirectory"] = {"outputUriPrefix": launch.staging_bucket}
    if launch.service_account:
        job_spec["serviceAccount"] = launch.service_account
    name = launch.job_name or f"scenegan-{default_name(config)}-{config.preset}"
    return {"displayName": name, "jobSpec": job_spec, "labels": {"app": "scenegan"}}


def _check_vertex(launch: argparse.Namespace, config: TrainConfig) -> None:
    missing = [
        flag
        for flag, value in (("--project", launch.project), ("--image", launch.image))
        if not value
    ]
    if missing:
        raise ValueError(f"--launcher vertex needs {' and '.join(missing)}")
    local = [
        f"{flag} {value}"
        for flag, value in (
            ("--data", config.data),
            ("--output", config.output),
            ("--registry", launch.registry),
        )
        if value and not storage.is_remote(value)
    ]
    if local:
        raise ValueError(
            f"a Vertex AI job cannot reach this machine's disk: use gs:// for {', '.join(local)}"
        )
    if launch.replica_count < 1 or launch.accelerator_count < 1:
        raise ValueError("--replica-count and --accelerator-count must be at least 1")


def _vertex_world_size(launch: argparse.Namespace) -> int:
    accelerated = launch.accelerator_type.upper() != "NONE"
    return launch.replica_count * (launch.accelerator_count if accelerated else 1)


def submit_vertex_job(
    parent: str, spec: dict[str, Any], region: str, client: Any = None
) -> dict[str, Any]:
    """Create the custom job: the one call that reaches Google Cloud. `client` stands in for
    `aiplatform_v1.JobServiceClient` (tests pass a fake with the same method)."""
    from google.cloud.aiplatform_v1 import JobServiceClient
    from google.cloud.aiplatform_v1.types import CustomJob

    job = CustomJob.from_json(json.dumps(spec))  # unknown field names are refused here
    if client is None:
        endpoint = f"{region}-aiplatform.googleapis.com"
        client = JobServiceClient(client_options={"api_endpoint": endpoint})
    created = client.create_custom_job(parent=parent, custom_job=job)
    return json.loads(CustomJob.to_json(created))
