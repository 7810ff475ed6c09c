"""Training launch: dataset checks, the Vertex AI job spec and its submission seam, the
torchrun command, and a SIGTERM-preempted run on gs:// that resumes exactly."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from corpus import write_corpus
from google.cloud.aiplatform_v1.types import AcceleratorType, CustomJob

from pipelines import ingest
from scenegan import cli, dataset, storage
from scenegan.scenes import write_scenes
from scenegan.training import checkpoint as ckpt
from scenegan.training import checks, vertex
from scenegan.training import launch as train

TINY = ["--preset", "tiny", "--source-domain", "photo", "--target-domain", "painting"]


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> str:
    """An ingested dataset: photo and painting (12 images each), and a domain `broken`
    whose every input was rejected."""
    root = tmp_path_factory.mktemp("launch")
    write_scenes(root / "photo", 12, width=40, height=40, seed=0)
    write_scenes(root / "painting", 12, width=40, height=40, seed=1, style="painting")
    for path, verdict in write_corpus(root / "broken").items():
        if not isinstance(verdict, str):  # an image the corpus expects to be accepted
            path.unlink()
    out = str(root / "dataset")
    for domain in ("photo", "painting", "broken"):
        ingest.run(
            [
                "--input",
                str(root / domain),
                "--domain",
                domain,
                "--output",
                out,
                "--direct_running_mode",
                "in_memory",
                "--test-fraction",
                "0.25",
            ]
        )
    return out


def config_for(data: str, *extra: str, output: str = "gs://b/runs/unused"):
    _, args, _ = train.parse(["--data", data, "--output", output, *TINY, *extra])
    return train.resolve(args)


def test_dataset_checks_refuse_what_cannot_train(dataset_root, tmp_path, caplog):
    counts = checks.check_dataset(config_for(dataset_root))
    assert counts["photo"]["train"] + counts["photo"].get("test", 0) == 12
    with pytest.raises(dataset.DatasetError, match=r"no dataset at .*scenegan ingest"):
        checks.check_dataset(config_for(str(tmp_path / "missing")))
    missing_domain = r"no domain 'sketch' \(it has: broken, painting"
    with pytest.raises(dataset.DatasetError, match=missing_domain):
        checks.check_dataset(config_for(dataset_root, "--target-domain", "sketch"))
    with pytest.raises(dataset.DatasetError, match=r"'broken' .*no train images: all \d+ of its"):
        checks.check_dataset(config_for(dataset_root, "--target-domain", "broken"))
    with caplog.at_level(logging.WARNING, logger="scenegan.dataset"):
        checks.check_dataset(config_for(dataset_root, "--batch-size", "8"), world_size=2)
    assert "fewer than one global batch (8 x 2 processes = 16)" in caplog.text
    no_manifest = tmp_path / "copy"
    (no_manifest / "images").mkdir(parents=True)
    with pytest.raises(dataset.DatasetError, match=r"no _manifest\.json"):
        checks.check_dataset(config_for(str(no_manifest)))


def test_the_cli_refuses_before_training(dataset_root, tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--data",
            dataset_root,
            "--output",
            str(run),
            *TINY,
            "--target-domain",
            "broken",
            "--steps",
            "1",
        ]
    )
    assert code == 1 and "no train images" in capsys.readouterr().err
    assert not run.exists()  # nothing started


def test_local_launcher_trains_and_promotes_to_the_registry(dataset_root, tmp_path, capsys):
    run, reg = str(tmp_path / "run"), str(tmp_path / "registry")
    args = [
        "train",
        "--data",
        dataset_root,
        "--output",
        run,
        *TINY,
        "--steps",
        "2",
        "--registry",
        reg,
        "--name",
        "photo-painting",
    ]
    assert cli.main(args) == 0
    assert "photo-painting v0001" in capsys.readouterr().out
    info = json.loads(Path(reg, "photo-painting", "v0001", "model.json").read_text())
    assert info["training"]["run"] == run and info["training"]["steps"] == 2
    assert set(info["metrics"]) >= {"kid", "fid", "content"}  # held-out split evaluated
    assert cli.main(["registry", "promote", reg, "--run", run]) == 0  # default name
    assert "photo-to-painting v0001" in capsys.readouterr().out


def launch_flags(**overrides: str) -> list[str]:
    flags = {
        "--launcher": "vertex",
        "--project": "proj",
        "--region": "europe-west4",
        "--image": "europe-docker.pkg.dev/proj/scenegan/scenegan:1",
        "--staging-bucket": "gs://b/staging",
    }
    flags.update(overrides)
    return [item for pair in flags.items() for item in pair]


def vertex_argv(data: str, *extra: str) -> list[str]:
    return ["--data", data, "--output", "gs://b/runs/one", *TINY, "--steps", "500", *extra]


def test_vertex_dry_run_prints_a_spec_the_api_accepts(capsys):
    argv = vertex_argv(
        "gs://b/data",
        *launch_flags(),
        "--replica-count",
        "2",
        "--accelerator-count",
        "4",
        "--registry",
        "gs://b/registry",
    )
    assert train.run([*argv, "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parent"] == "projects/proj/locations/europe-west4"
    spec = printed["customJob"]
    job = CustomJob.from_json(json.dumps(spec))  # the API's own types refuse unknown fields
    pools = job.job_spec.worker_pool_specs
    assert [p.replica_count for p in pools] == [1, 1]  # master + one more machine
    machine = pools[0].machine_spec
    assert machine.accelerator_type == AcceleratorType.NVIDIA_L4 and machine.accelerator_count == 4
    args = list(pools[0].container_spec.args)
    assert args[:7] == ["train", "--launcher", "torchrun", "--nproc-per-node", "4", "--nnodes", "2"]
    assert "--resume" in args and args[args.index("--registry") + 1] == "gs://b/registry"
    assert "--launcher" not in args[3:] and "--project" not in args  # launch flags consumed
    assert job.job_spec.scheduling.restart_job_on_worker_restart
    assert job.job_spec.base_output_directory.output_uri_prefix == "gs://b/staging"


def test_vertex_refuses_local_paths_and_unknown_accelerators(capsys):
    with pytest.raises(ValueError, match="cannot reach this machine's disk: use gs:// for --data"):
        train.run([*vertex_argv("/tmp/data"), *launch_flags(), "--dry-run"])
    with pytest.raises(ValueError, match="needs --image"):
        train.run([*vertex_argv("gs://b/data"), "--launcher", "vertex", "--project", "p"])
    spec = vertex.vertex_job_spec(
        train.split_argv(launch_flags(**{"--accelerator-type": "NVIDIA_NOPE"}))[0],
        config_for("gs://b/data"),
        [],
    )
    with pytest.raises(Exception, match="NVIDIA_NOPE"):
        CustomJob.from_json(json.dumps(spec))


class FakeJobService:
    """Stands in for aiplatform_v1.JobServiceClient: records the request, names the job."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, CustomJob]] = []

    def create_custom_job(self, *, parent: str, custom_job: CustomJob) -> CustomJob:
        self.calls.append((parent, custom_job))
        created = CustomJob(custom_job)
        created.name = f"{parent}/customJobs/123"
        return created


def test_vertex_submission_checks_the_bucket_dataset_then_calls_the_api(
    dataset_root, gcs_bucket, capsys
):
    remote = f"{gcs_bucket}/datasets/{uuid.uuid4().hex[:8]}"
    for path in Path(dataset_root).rglob("*"):
        if path.is_file():
            storage.write_bytes(f"{remote}/{path.relative_to(dataset_root)}", path.read_bytes())
    client = FakeJobService()
    argv = [*vertex_argv(remote), *launch_flags()]
    assert train.run(argv, vertex_client=client) == 0
    ((parent, job),) = client.calls
    assert parent == "projects/proj/locations/europe-west4"
    assert job.job_spec.worker_pool_specs[0].container_spec.image_uri.endswith("scenegan:1")
    assert "customJobs/123" in capsys.readouterr().out

    empty = FakeJobService()
    with pytest.raises(dataset.DatasetError, match="no train images"):
        train.run(
            [*vertex_argv(remote, "--target-domain", "broken"), *launch_flags()],
            vertex_client=empty,
        )
    assert empty.calls == []  # refused before anything was submitted


def test_torchrun_command_from_flags_and_from_vertex_cluster_spec():
    spec = {
        "cluster": {"workerpool0": ["master-0:2222"], "workerpool1": ["w-0:2222", "w-1:2222"]},
        "task": {"type": "workerpool1", "index": 1},
    }
    launch, _ = train.split_argv(["--launcher", "torchrun", "--nproc-per-node", "4"])
    command, env = train.torchrun_command(
        launch, ["--data", "d"], {"CLUSTER_SPEC": json.dumps(spec)}
    )
    value = {
        flag: command[command.index(flag) + 1]
        for flag in (
            "--nnodes",
            "--node-rank",
            "--master-addr",
            "--master-port",
            "--nproc-per-node",
        )
    }
    assert value == {
        "--nnodes": "3",
        "--node-rank": "2",
        "--master-addr": "master-0",
        "--master-port": "2222",
        "--nproc-per-node": "4",
    }
    assert command[-4:] == ["scenegan.cli", "train", "--data", "d"]
    assert "GLOO_SOCKET_IFNAME" not in env  # a real network between machines
    launch, _ = train.split_argv(["--nproc-per-node", "2"])
    command, env = train.torchrun_command(launch, [], {})
    assert command[command.index("--master-addr") + 1] == "127.0.0.1"
    assert env["GLOO_SOCKET_IFNAME"] == "lo"


def test_sigterm_checkpoints_on_gcs_and_resume_finishes_exactly(tmp_path, gcs_bucket):
    """A preempted job: SIGTERM mid-run -> a checkpoint of the step it reached, in the bucket,
    exit 143; `--resume` finishes it, bit for bit equal to a run that was never stopped."""
    write_scenes(tmp_path / "data" / "photo", 8, width=36, height=36, seed=0)
    write_scenes(tmp_path / "data" / "painting", 8, width=36, height=36, seed=1, style="painting")
    prefix = f"{gcs_bucket}/preempt-{uuid.uuid4().hex[:8]}"
    common = [
        "train",
        "--data",
        str(tmp_path / "data"),
        *TINY,
        "--steps",
        "120",
        "--checkpoint-every",
        "1000",
        "--eval-every",
        "-1",
    ]
    env = dict(os.environ)  # same thread count as this process: float sums stay identical
    stopped = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scenegan.cli",
            *common,
            "--output",
            f"{prefix}/stopped",
            "--sample-every",
            "5",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not storage.list_files(f"{prefix}/stopped/samples") and time.monotonic() < deadline:
        time.sleep(0.2)  # a sample means training is under way
    stopped.send_signal(signal.SIGTERM)
    _, stderr = stopped.communicate(timeout=120)
    assert stopped.returncode == train.EXIT_PREEMPTED, stderr[-2000:]
    ((step, _),) = ckpt.list_checkpoints(f"{prefix}/stopped")
    assert 5 <= step < 120 and f"preempted at step {step}" in stderr

    resumed = [*common, "--output", f"{prefix}/stopped", "--sample-every", "5", "--resume"]
    assert cli.main(resumed) == 0
    assert cli.main([*common, "--output", f"{prefix}/whole", "--sample-every", "5"]) == 0
    a, b = ckpt.load_latest(f"{prefix}/stopped"), ckpt.load_latest(f"{prefix}/whole")
    assert a["step"] == b["step"] == 120
    for name in a["networks"]:
        for key, tensor in a["networks"][name].items():
            assert torch.equal(tensor, b["networks"][name][key]), (name, key)
