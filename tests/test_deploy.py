"""deploy/: the image, the Flex Template metadata, the scripts and the nightly schedules.

Nothing here calls Google Cloud: the Dockerfile is checked statically, the scripts run with
DRY_RUN=1 (their printed commands are parsed back into argv), the metadata is regenerated
from the pipelines' options and every parameter is parsed by the real pipeline parser, and
the local nightly job runs for real, two nights in a row, against folders in tmp_path.
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import importlib.util
import json
import os
import py_compile
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pyarrow.dataset as pads
import pytest
import tomllib
from conftest import make_model

from pipelines import ingest, stylize
from pipelines.options import (
    IngestOptions,
    SceneganOptions,
    StylizeOptions,
    expand_date,
    parse_options,
    resolve_date,
)
from scenegan import scenes

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SCRIPTS = sorted(DEPLOY.glob("*.sh")) + sorted((DEPLOY / "nightly").glob("*.sh"))
BIN = Path(sys.executable).parent


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flex_templates = load(DEPLOY / "flex_templates.py")
flex_main = flex_templates.flex_main


def committed_metadata(pipeline: str) -> dict:
    return json.loads((DEPLOY / "templates" / f"{pipeline}-metadata.json").read_text())


# --- the image ------------------------------------------------------------------------


def dockerfile() -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(instruction, argument) pairs with continuations joined, and ARG defaults."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    args = dict(a.split("=", 1) for key, a in pairs if key == "ARG" and "=" in a)
    return [
        (key, re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), a)) for key, a in pairs
    ], args


def test_dockerfile_is_one_worker_and_launcher_image_pinned_to_our_beam_and_python():
    pairs, args = dockerfile()
    stages = [a.split() for key, a in pairs if key == "FROM"]
    pin = next(
        d
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("apache-beam")
    )
    assert pin == "apache-beam[gcp]>=2.77,<2.78" and args["BEAM_VERSION"].startswith("2.77.")
    assert stages[0] == [f"apache/beam_python3.11_sdk:{args['BEAM_VERSION']}", "AS", "beam_sdk"]
    assert stages[1][0].startswith("gcr.io/dataflow-templates-base/python311-template-launcher")
    assert stages[-1][0] == "python:3.11-slim"  # the same Python as the SDK image
    copies = [a.split() for key, a in pairs if key == "COPY" and a.startswith("--from")]
    assert ["--from=beam_sdk", "/opt/apache/beam", "/opt/apache/beam"] in copies
    launcher = "/opt/google/dataflow/python_template_launcher"
    assert ["--from=launcher", launcher, launcher] in copies
    assert args["VARIANT"] == "gpu"
    torch_step = next(a for key, a in pairs if key == "RUN" and "torch==" in a)
    assert "gpu)" in torch_step and "cpu)" in torch_step and "whl/cpu" in torch_step
    assert any(key == "RUN" and "pip install ." in a for key, a in pairs)
    assert pairs[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')
    env = " ".join(a for key, a in pairs if key == "ENV")
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/deploy/flex_main.py" in env
    assert ["deploy/flex_main.py", "deploy/flex_main.py"] in [
        a.split() for k, a in pairs if k == "COPY"
    ]


def test_everything_the_dockerfile_copies_exists_and_is_not_ignored():
    pairs, _ = dockerfile()
    ignored = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for required in (".venv", ".git", "demo-output", "**/__pycache__"):
        assert required in ignored
    sources = [
        s
        for key, a in pairs
        if key == "COPY" and not a.startswith("--from")
        for s in a.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "scenegan", "pipelines"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.split("/")[0] not in ignored, source


# --- Flex Template metadata -------------------------------------------------------------


def test_committed_metadata_is_what_the_options_generate():
    for path, text in flex_templates.rendered().items():
        assert path.read_text() == text, f"{path} is stale: run python deploy/flex_templates.py"
    assert flex_templates.main(["--check"]) == 0


@pytest.mark.parametrize("pipeline", ["ingest", "stylize"])
def test_every_flag_is_a_parameter_and_every_parameter_a_flag(pipeline):
    import argparse

    from pipelines.options import add_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser, flex_main.OPTIONS[pipeline])
    dests = {a.dest for a in parser._actions if a.option_strings}
    names = [p["name"] for p in committed_metadata(pipeline)["parameters"]]
    assert len(names) == len(set(names))
    by_dest = {flag.action.dest: flag.name for flag in flex_main.flags(pipeline)}
    assert set(by_dest) == dests  # no flag left out
    expected = {"pipeline", *by_dest.values(), *flex_main.BEAM_PARAMETERS}
    assert set(names) == expected
    assert "input" in names and "inputs" not in names  # the flag, not Beam's dest
    assert "max_side" in names  # --max-side


def example(parameter: dict) -> str:
    regex = (parameter.get("regexes") or [""])[0]
    special = {
        "pipeline": regex[1:-1],
        "date": "2024-02-29",
        "dataflow_service_options": "worker_accelerator=type:nvidia-l4;count:1;"
        "install-nvidia-driver",
    }
    if parameter["name"] in special:
        return special[parameter["name"]]
    if regex == "^(true|false)$":
        return "true"
    if regex.startswith("^(") and "|" in regex:
        return regex[2:].split("|")[0]
    return {flex_templates.INTEGER: "7", flex_templates.DECIMAL: "0.25"}.get(regex, "gs://b/x")


@pytest.mark.parametrize("pipeline", ["ingest", "stylize"])
def test_every_parameter_is_accepted_by_the_real_pipeline_parser(pipeline, monkeypatch):
    monkeypatch.delenv(flex_main.IMAGE_VARIABLE, raising=False)
    flags = {flag.name: flag for flag in flex_main.flags(pipeline)}
    for parameter in committed_metadata(pipeline)["parameters"]:
        name, value = parameter["name"], example(parameter)
        for regex in parameter.get("regexes", []):
            assert re.fullmatch(regex, value), (name, value)
            assert not re.fullmatch(regex, "not-a-value; rm -rf"), name
        if name == "pipeline":
            continue
        options = flex_main.parse([f"--pipeline={pipeline}", f"--{name}={value}"])
        everything = options.get_all_options()  # Beam's own options
        own = options.view_as(flex_main.OPTIONS[pipeline])  # the pipeline's flags
        got = getattr(own, flags[name].action.dest) if name in flags else everything[name]
        if name in ("input", "model"):  # repeatable flags
            assert got == [value]
        elif name in flags and flags[name].is_switch:
            assert got is True
        elif name == "dataflow_service_options":
            assert got == [value]
        elif name == "date":
            assert got == "2024-02-29"
        else:
            assert str(got) in (value, str(float(value)) if "." in value else value), name
        assert everything["runner"] == "DataflowRunner"  # a template launch submits a job


def test_flex_main_turns_launcher_arguments_into_the_pipeline_command_line(monkeypatch):
    monkeypatch.setenv(flex_main.IMAGE_VARIABLE, "reg/scenegan:v1-cpu")
    pipeline, argv = flex_main.pipeline_argv(
        ["--crop=false", "--pipeline=ingest", "--max_side=64", "--project=p"]
    )
    assert pipeline == "ingest"
    assert argv == [
        "--max-side=64",
        "--project=p",
        "--runner=DataflowRunner",
        "--sdk_container_image=reg/scenegan:v1-cpu",
    ]
    _, argv = flex_main.pipeline_argv(
        ["--pipeline=ingest", "--crop=true", "--sdk_container_image=other", "--runner=X"]
    )
    assert argv == ["--crop", "--sdk_container_image=other", "--runner=X"]
    with pytest.raises(ValueError, match="true or false"):
        flex_main.pipeline_argv(["--pipeline=ingest", "--crop=yes"])
    with pytest.raises(ValueError, match=r"--pipeline=ingest\|stylize"):
        flex_main.pipeline_argv(["--input=x"])
    assert flex_main.main(["--pipeline=train"]) == 2


def test_required_parameters_are_exactly_what_validation_refuses_to_run_without(tmp_path):
    model = make_model(str(tmp_path / "model"))
    complete = {
        "ingest": {"input": "x/*", "domain": "photo", "output": str(tmp_path / "ds")},
        "stylize": {"input": "x/*", "output": str(tmp_path / "o"), "model": model},
    }
    check = {"ingest": ingest.validate, "stylize": stylize.validate}
    for pipeline, values in complete.items():
        optional = {p["name"]: p["isOptional"] for p in committed_metadata(pipeline)["parameters"]}
        assert {n for n, o in optional.items() if not o} == {"pipeline", *values}
        argv = [f"--pipeline={pipeline}"] + [f"--{k}={v}" for k, v in values.items()]
        check[pipeline](flex_main.parse(argv))  # all present: accepted
        for name in values:
            with pytest.raises(ValueError, match=f"--{name}"):
                check[pipeline](
                    flex_main.parse([a for a in argv if not a.startswith(f"--{name}=")])
                )


# --- dates in paths ---------------------------------------------------------------------


def test_date_placeholders_expand_before_validation():
    day = datetime.date(2024, 2, 29)
    assert resolve_date("2024-02-29") == day
    assert resolve_date("yesterday", today=datetime.date(2024, 3, 1)) == day
    assert resolve_date(None, today=day) == day and resolve_date("TODAY", today=day) == day
    assert expand_date("in/{yyyy}/{mm}/{dd}/{date}/{a,b}", day) == "in/2024/02/29/2024-02-29/{a,b}"
    options = parse_options(
        [
            "--input",
            "gs://b/{date}/*",
            "--input",
            "m/{yyyy}.txt",
            "--output",
            "o/{mm}{dd}",
            "--date",
            "2024-02-29",
        ],
        StylizeOptions,
    )
    assert options.inputs == ["gs://b/2024-02-29/*", "m/2024.txt"]
    assert options.output == "o/0229"
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert parse_options([], IngestOptions).view_as(SceneganOptions).date == today
    with pytest.raises(ValueError, match="--date '29/02/2024': use YYYY-MM-DD"):
        parse_options(["--date", "29/02/2024"], IngestOptions)


def test_ingest_resolves_date_placeholders_in_a_real_run(tmp_path):
    scenes.write_scenes(tmp_path / "inbox" / "2024-02-29", count=3, width=48, height=40, seed=3)
    ingest.run(
        [
            "--input",
            str(tmp_path / "inbox" / "{date}"),
            "--domain",
            "photo",
            "--output",
            str(tmp_path / "ds" / "{yyyy}"),
            "--date",
            "2024-02-29",
            "--direct_running_mode",
            "in_memory",
        ]
    )
    rows = pads.dataset(
        tmp_path / "ds" / "2024" / "images", format="parquet", partitioning="hive"
    ).to_table()
    assert rows.num_rows == 3
    assert all("/inbox/2024-02-29/" in uri for uri in rows["source_uri"].to_pylist())
    assert not (tmp_path / "ds" / "{yyyy}").exists()


def test_a_template_launch_does_not_wait_and_the_job_writes_its_own_manifest(tmp_path, monkeypatch):
    """flex_main runs the pipelines with wait=False, as a Flex Template launcher must; the
    dataset's _manifest.json is then the job's own last step, not the launcher's."""
    waited = []
    monkeypatch.setattr(
        "apache_beam.runners.runner.PipelineResult.wait_until_finish",
        lambda self, *a, **k: waited.append(self),
    )
    scenes.write_scenes(tmp_path / "in", count=3, width=48, height=40, seed=5)
    code = flex_main.main(
        [
            "--pipeline=ingest",
            f"--input={tmp_path / 'in'}",
            "--domain=photo",
            f"--output={tmp_path / 'ds'}",
            "--runner=DirectRunner",
            "--direct_running_mode=in_memory",
        ]
    )
    assert code == 0 and waited == []
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())
    assert sum(manifest["domains"]["photo"]["images"].values()) == 3


# --- scripts ----------------------------------------------------------------------------


def dry_run(script: str, *args: str, **env: str) -> list[list[str]]:
    """The commands `script` would run, each parsed back into its argv."""
    environment = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, **env}
    done = subprocess.run(
        ["bash", str(ROOT / script), *args],
        env=environment,
        text=True,
        capture_output=True,
        check=True,
    )
    return [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]


def flag(argv: list[str], name: str) -> list[str]:
    """Every value of `name` in argv, whether written `name value` or `name=value`."""
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
    return values + [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]


def test_every_script_parses_and_is_strict():
    assert len(SCRIPTS) == 7  # 5 in deploy/ (config.sh is sourced), 2 in deploy/nightly/
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)
        if script.name != "config.sh":
            assert "set -euo pipefail" in script.read_text(), script
            assert os.access(script, os.X_OK), script


def test_build_image_builds_and_pushes_both_variants():
    commands = dry_run("deploy/build_image.sh", IMAGE="reg/p/scenegan", TAG="t1")
    assert [c[:2] for c in commands] == [["docker", "build"], ["docker", "push"]] * 2
    for build, push, variant in (
        (commands[0], commands[1], "gpu"),
        (commands[2], commands[3], "cpu"),
    ):
        assert flag(build, "--file") == ["deploy/Dockerfile"] and build[-1] == "."
        assert flag(build, "--build-arg") == [
            f"VARIANT={variant}",
            f"IMAGE_URI=reg/p/scenegan:t1-{variant}",
        ]
        assert flag(build, "--tag") == [push[-1]] == [f"reg/p/scenegan:t1-{variant}"]
    bad = subprocess.run(
        ["bash", str(DEPLOY / "build_image.sh"), "tpu"],
        capture_output=True,
        text=True,
        env={**os.environ, "DRY_RUN": "1"},
    )
    assert bad.returncode == 2 and "unknown variant 'tpu'" in bad.stderr


def test_build_templates_uses_the_checked_metadata_and_the_right_images():
    check, first, second = dry_run("deploy/build_templates.sh", BUCKET="bk", TAG="t1")
    assert check == [sys.executable, "deploy/flex_templates.py", "--check"]
    for command, pipeline, variant in ((first, "ingest", "cpu"), (second, "stylize", "gpu")):
        assert command[:5] == [
            "gcloud",
            "dataflow",
            "flex-template",
            "build",
            f"gs://bk/templates/{pipeline}.json",
        ]
        assert flag(command, "--image")[0].endswith(f":t1-{variant}")
        assert flag(command, "--sdk-language") == ["PYTHON"]
        assert flag(command, "--metadata-file") == [f"deploy/templates/{pipeline}-metadata.json"]


def test_stylize_on_dataflow_gets_one_gpu_and_one_process_with_a_thread_per_vcpu():
    gpu = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
    (template,) = dry_run(
        "deploy/run_dataflow.sh",
        "stylize",
        "input=gs://b/in/*",
        "output=gs://b/out",
        "model=gs://b/r/painting/latest",
    )
    assert template[:4] == ["gcloud", "dataflow", "flex-template", "run"]
    assert flag(template, "--template-file-gcs-location") == [
        "gs://my-bucket/templates/stylize.json"
    ]
    assert flag(template, "--worker-machine-type") == ["g2-standard-4"]
    assert flag(template, "--additional-experiments") == ["no_use_multiple_sdk_containers"]
    parameters = dict(p.split("=", 1) for p in flag(template, "--parameters"))
    names = {p["name"] for p in committed_metadata("stylize")["parameters"]}
    assert set(parameters) <= names
    assert parameters["dataflow_service_options"] == gpu
    assert parameters["number_of_worker_harness_threads"] == "4"  # g2-standard-4: 4 vCPUs
    assert parameters["sdk_container_image"].endswith(":latest-gpu")
    assert parameters["input"] == "gs://b/in/*" and parameters["pipeline"] == "stylize"
    (direct,) = dry_run("deploy/run_dataflow.sh", "--direct", "stylize", "--input", "gs://b/x")
    assert direct[:3] == [sys.executable, "-m", "pipelines.stylize"]
    assert flag(direct, "--runner") == ["DataflowRunner"]
    assert flag(direct, "--dataflow_service_options") == [gpu]
    assert flag(direct, "--number_of_worker_harness_threads") == ["4"]
    assert flag(direct, "--experiments") == ["no_use_multiple_sdk_containers"]
    assert flag(direct, "--machine_type") == ["g2-standard-4"]
    assert flag(direct, "--sdk_container_image")[0].endswith(":latest-gpu")
    assert direct[-2:] == ["--input", "gs://b/x"]
    parsed = parse_options(direct[3:], StylizeOptions).get_all_options()  # Beam accepts them
    assert parsed["dataflow_service_options"] == [gpu]
    assert parsed["experiments"] == ["no_use_multiple_sdk_containers"]
    assert parsed["number_of_worker_harness_threads"] == 4
    # a bigger machine takes its thread count from the same setting, in both launch modes
    bigger = {"MACHINE_TYPE": "g2-standard-8", "HARNESS_THREADS": "8"}
    (template,) = dry_run("deploy/run_dataflow.sh", "stylize", "input=gs://b/in/*", **bigger)
    assert "number_of_worker_harness_threads=8" in flag(template, "--parameters")
    assert flag(template, "--worker-machine-type") == ["g2-standard-8"]
    (direct,) = dry_run("deploy/run_dataflow.sh", "--direct", "stylize", **bigger)
    assert flag(direct, "--number_of_worker_harness_threads") == ["8"]


def test_ingest_on_dataflow_uses_the_cpu_image_and_no_gpu():
    (template,) = dry_run("deploy/run_dataflow.sh", "ingest", "input=gs://b/p/*", "domain=photo")
    parameters = dict(p.split("=", 1) for p in flag(template, "--parameters"))
    assert parameters["sdk_container_image"].endswith(":latest-cpu")
    assert "dataflow_service_options" not in parameters
    assert not flag(template, "--worker-machine-type")
    command = ["bash", str(DEPLOY / "run_dataflow.sh"), "ingest", "--input"]
    environment = {**os.environ, "DRY_RUN": "1"}
    bad = subprocess.run(command, capture_output=True, text=True, env=environment)
    assert bad.returncode == 2 and "NAME=VALUE" in bad.stderr


def test_submit_training_calls_the_vertex_launcher():
    (command,) = dry_run(
        "deploy/submit_training.sh",
        "--preset",
        "cyclegan",
        "--dry-run",
        PROJECT="p",
        REGION="europe-west4",
        BUCKET="bk",
    )
    assert command[:2] == ["scenegan", "train"]
    expected = {
        "--launcher": "vertex",
        "--project": "p",
        "--region": "europe-west4",
        "--machine-type": "g2-standard-8",
        "--accelerator-type": "NVIDIA_L4",
        "--accelerator-count": "1",
        "--replica-count": "1",
        "--staging-bucket": "gs://bk",
        "--data": "gs://bk/datasets/scenes",
    }
    for name, value in expected.items():
        assert flag(command, name) == [value], name
    assert flag(command, "--image")[0].endswith(":latest-gpu")
    assert command[-3:] == ["--preset", "cyclegan", "--dry-run"]


def test_submit_training_command_is_accepted_by_the_vertex_launcher():
    """Run for real with scenegan's own --dry-run: the launcher prints the job it would submit."""
    environment = {**os.environ, "SCENEGAN": str(BIN / "scenegan"), "PROJECT": "p"}
    environment.pop("DRY_RUN", None)
    done = subprocess.run(
        [
            "bash",
            str(DEPLOY / "submit_training.sh"),
            "--source-domain",
            "photo",
            "--target-domain",
            "painting",
            "--dry-run",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (pool,) = json.loads(done.stdout)["customJob"]["jobSpec"]["workerPoolSpecs"]
    assert pool["machineSpec"] == {
        "machineType": "g2-standard-8",
        "acceleratorType": "NVIDIA_L4",
        "acceleratorCount": 1,
    }
    image = "us-central1-docker.pkg.dev/p/scenegan/scenegan:latest-gpu"
    assert pool["containerSpec"]["imageUri"] == image
    assert pool["containerSpec"]["command"] == ["scenegan"]  # overrides the image's entrypoint


def test_config_defaults_agree_between_bash_and_python():
    derived = (
        "IMAGE",
        "INBOX",
        "OUT",
        "REGISTRY",
        "SERVICE_ACCOUNT",
        "TEMPLATES",
        "TEMP_LOCATION",
        "STAGING_LOCATION",
    )
    names = sorted({*flex_templates.DEFAULTS, *derived})
    clean = {k: v for k, v in os.environ.items() if k not in names}
    script = "source deploy/config.sh; " + "; ".join(f'echo "{n}=${{{n}}}"' for n in names)
    out = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=clean, capture_output=True, text=True, check=True
    ).stdout
    bash = dict(line.split("=", 1) for line in out.splitlines())
    python = flex_templates.configuration({})
    assert bash == {name: python[name] for name in names}


# --- nightly ----------------------------------------------------------------------------


def valid_cron(expression: str) -> bool:
    """A standard 5-field cron schedule (numbers, *, ranges, lists, steps)."""
    bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    fields = expression.split()
    if len(fields) != 5:
        return False
    for field, (low, high) in zip(fields, bounds, strict=True):
        for part in field.split(","):
            match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
            if not match or match[4] == "0":
                return False
            numbers = [int(n) for n in (match[2], match[3]) if n]
            if any(not low <= n <= high for n in numbers) or numbers != sorted(numbers):
                return False
    return True


def test_cron_checker_rejects_what_cron_rejects():
    assert valid_cron("30 1 * * *") and valid_cron("*/15 0-6 1,15 * 1-5")
    for bad in ("30 1 * *", "60 1 * * *", "0 24 * * *", "0 0 0 * *", "5-1 * * * *", "*/0 * * * *"):
        assert not valid_cron(bad), bad


def check_launch(request: dict) -> dict:
    """The launch request's parameters, after checking them against the stylize metadata."""
    parameters = request["launchParameter"]["parameters"]
    metadata = {p["name"]: p for p in committed_metadata("stylize")["parameters"]}
    assert set(parameters) <= set(metadata)
    for name, value in parameters.items():
        assert isinstance(value, str), name
        for regex in metadata[name].get("regexes", []):
            assert re.fullmatch(regex, value), (name, value)
    required = {n for n, p in metadata.items() if not p["isOptional"]}
    assert required <= set(parameters)
    return parameters


def test_cloud_scheduler_job_launches_the_stylize_template_on_gpus():
    job = json.loads((DEPLOY / "nightly" / "cloud-scheduler-job.json").read_text())
    assert valid_cron(job["schedule"]) and job["timeZone"] == "Etc/UTC"
    target = job["httpTarget"]
    assert target["httpMethod"] == "POST"
    assert target["uri"] == (
        "https://dataflow.googleapis.com/v1b3/projects/my-project/"
        "locations/us-central1/flexTemplates:launch"
    )
    assert target["oauthToken"]["serviceAccountEmail"].endswith(".iam.gserviceaccount.com")
    request = json.loads(base64.b64decode(target["body"], validate=True))
    parameters = check_launch(request)
    assert parameters["model"] == "gs://my-bucket/registry/painting/latest"
    assert parameters["input"] == "gs://my-bucket/inbox/{date}/*"
    assert parameters["date"] == "yesterday" and parameters["pipeline"] == "stylize"
    assert parameters["number_of_worker_harness_threads"] == "4"
    launch = request["launchParameter"]
    assert launch["containerSpecGcsPath"] == "gs://my-bucket/templates/stylize.json"
    assert launch["environment"]["additionalExperiments"] == ["no_use_multiple_sdk_containers"]
    assert launch["environment"]["machineType"] == "g2-standard-4"
    options = parse_options(
        [f"--{k}={v}" for k, v in parameters.items() if k != "pipeline"] + ["--output=x/{date}"],
        StylizeOptions,
    )
    yesterday = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=1)
    assert options.inputs == [f"gs://my-bucket/inbox/{yesterday.isoformat()}/*"]


def test_schedule_script_renders_the_job_for_the_configuration(tmp_path):
    job_file = tmp_path / "job.json"
    (command,) = dry_run(
        "deploy/nightly/schedule.sh",
        PROJECT="proj",
        REGION="europe-west4",
        BUCKET="bk",
        SCHEDULE="15 2 * * *",
        JOB_FILE=str(job_file),
    )
    assert command[0] == "curl" and command[-1] == (
        "https://cloudscheduler.googleapis.com/v1/projects/proj/locations/europe-west4/jobs"
    )
    assert flag(command, "--data") == [f"@{job_file}"]
    assert "$(gcloud auth print-access-token)" in " ".join(command)  # not resolved in a dry run
    job = json.loads(job_file.read_text())
    assert job["schedule"] == "15 2 * * *"
    request = json.loads(base64.b64decode(job["httpTarget"]["body"]))
    assert check_launch(request)["output"] == "gs://bk/stylized/painting"
    assert "projects/proj/locations/europe-west4/" in job["httpTarget"]["uri"]


def test_airflow_dag_launches_the_same_request_with_the_logical_date():
    path = DEPLOY / "nightly" / "airflow_dag.py"
    py_compile.compile(str(path), doraise=True)
    module = load(path)
    body = module.launch_body(module.SETTINGS)
    parameters = body["launchParameter"]["parameters"]
    assert parameters["input"] == "gs://my-bucket/inbox/{{ ds }}/*"
    assert parameters["date"] == "{{ ds }}"
    check_launch(module.launch_body(module.SETTINGS, day="2024-02-29"))
    scheduler = json.loads(
        base64.b64decode(
            json.loads((DEPLOY / "nightly" / "cloud-scheduler-job.json").read_text())["httpTarget"][
                "body"
            ]
        )
    )
    assert set(parameters) == set(scheduler["launchParameter"]["parameters"])
    threads = "number_of_worker_harness_threads"
    assert parameters[threads] == scheduler["launchParameter"]["parameters"][threads] == "4"
    pytest.importorskip("airflow")
    dag = module.dag
    assert dag.dag_id == "scenegan_nightly_stylize" and valid_cron(str(dag.schedule_interval))
    (task,) = dag.tasks
    assert type(task).__name__ == "DataflowStartFlexTemplateOperator"


def test_crontab_runs_the_local_script_nightly():
    text = (DEPLOY / "nightly" / "crontab").read_text()
    lines = [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    (line,) = lines
    fields = line.split(None, 5)
    assert valid_cron(" ".join(fields[:5]))
    assert "deploy/nightly/run_local.sh" in fields[5]
    assert (ROOT / "deploy" / "nightly" / "run_local.sh").exists()


def make_registry_model(tmp_path: Path) -> dict[str, str]:
    """The nightly's MODEL setting: the registry's latest once `scenegan.registry` exists,
    else (until it lands) an exported MODEL directory given directly."""
    model = make_model(str(tmp_path / "model"))
    try:
        from scenegan.registry import promote
    except ImportError:
        return {"MODEL": model}
    registry = tmp_path / "registry"
    promote(str(registry), "painting", model=model)
    assert json.loads((registry / "painting" / "latest").read_text())["version"] == "v0001"
    return {"REGISTRY": str(registry), "NAME": "painting"}


def nightly(tmp_path: Path, date: str, settings: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        **settings,
        "INBOX": str(tmp_path / "inbox"),
        "OUT": str(tmp_path / "out"),
        "LOG_DIR": str(tmp_path / "logs"),
        "DATE": date,
        "SCENEGAN": str(BIN / "scenegan"),
        "STYLIZE_ARGS": "--max-side 64 --direct_running_mode in_memory",
    }
    return subprocess.run(
        ["bash", str(DEPLOY / "nightly" / "run_local.sh")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def night_rows(out: Path) -> dict[str, list[tuple[str, str]]]:
    """run_id -> sorted (file name, status) of OUT's metadata."""
    table = pads.dataset(out / "metadata", format="parquet", partitioning="hive").to_table()
    runs: dict[str, list[tuple[str, str]]] = {}
    for row in table.to_pylist():
        runs.setdefault(row["run_id"], []).append((Path(row["source_uri"]).name, row["status"]))
    return {run: sorted(rows) for run, rows in runs.items()}


def test_local_nightly_two_nights_only_new_images_then_lock(tmp_path):
    settings = make_registry_model(tmp_path)
    photos = tmp_path / "photos"
    scenes.write_scenes(photos, count=5, width=64, height=48, seed=11)
    files = sorted(photos.iterdir())
    night1, night2 = tmp_path / "inbox" / "2024-02-28", tmp_path / "inbox" / "2024-02-29"
    for folder, chosen in ((night1, files[:3]), (night2, files[2:])):  # files[2] on both nights
        folder.mkdir(parents=True)
        for path in chosen:
            (folder / path.name).write_bytes(path.read_bytes())
    first = nightly(tmp_path, "2024-02-28", settings)
    assert first.returncode == 0, first.stderr + "".join(
        p.read_text() for p in (tmp_path / "logs").glob("*.log")
    )
    second = nightly(tmp_path, "2024-02-29", settings)
    assert second.returncode == 0, second.stderr
    runs = sorted(night_rows(tmp_path / "out").values(), key=len)
    names = [p.name for p in files]
    assert sorted(runs) == sorted(
        [
            [(n, "ok") for n in names[:3]],
            [(names[2], "skipped"), (names[3], "ok"), (names[4], "ok")],
        ]
    )
    assert len(list((tmp_path / "out" / "images").iterdir())) == 5
    logs = sorted((tmp_path / "logs").glob("nightly-2024-02-2*.log"))
    assert [p.name[:18] for p in logs] == ["nightly-2024-02-28", "nightly-2024-02-29"]
    assert "finished with status 0" in logs[-1].read_text()
    empty = nightly(tmp_path, "2024-03-01", settings)  # no folder that day: nothing to do
    assert empty.returncode == 0 and "nothing to stylize" in empty.stdout
    with open(tmp_path / "logs" / "nightly-painting.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a night still running
        busy = nightly(tmp_path, "2024-02-29", settings)
    assert busy.returncode == 75 and "holds" in busy.stderr
    assert len(night_rows(tmp_path / "out")) == 2  # nothing ran
