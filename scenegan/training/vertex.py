"""Vertex AI custom jobs for `scenegan train --launcher vertex`.

The job's container runs the torchrun launcher (`scenegan.training.launch`) on every
machine; `--dry-run` prints the job spec, and submission goes through one seam
(`JobServiceClient`), which tests replace with a fake.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scenegan import storage
from scenegan.training.checks import check_dataset, default_name
from scenegan.training.config import TrainConfig


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
