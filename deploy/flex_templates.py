"""Flex Template metadata and the nightly launch request, generated from the pipelines' options.

    python deploy/flex_templates.py            write deploy/templates/*-metadata.json and
                                               deploy/nightly/cloud-scheduler-job.json
    python deploy/flex_templates.py --check    exit 1 if any committed file is stale
    python deploy/flex_templates.py --scheduler-job FILE
                                               the Cloud Scheduler job for the configuration
                                               in the environment (deploy/config.sh names)

Each template parameter is one flag of the pipeline's `PipelineOptions` classes
(`pipelines/options.py`), named as `deploy/flex_main.py` reads it back, with the flag's help
text, whether the pipeline needs it, and a regex where the values are a closed set or a
number. Nothing is listed by hand except which flags each pipeline's validation requires,
and tests/test_deploy.py checks those against the pipelines' own `validate`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # flex_main (beside) and pipelines (the repo)

import flex_main  # noqa: E402

TEMPLATES_DIR = HERE / "templates"
SCHEDULER_JOB = HERE / "nightly" / "cloud-scheduler-job.json"
DESCRIPTIONS = {
    "ingest": (
        "scenegan ingest",
        "Scene images (folders, gs:// globs, manifests, archives) "
        "to a Parquet dataset of DESIGN.md: one row per image or reject.",
    ),
    "stylize": (
        "scenegan stylize",
        "Apply a trained MODEL to images: OUT/images, "
        "OUT/metadata Parquet (ok/rejected/skipped), skipping what this model "
        "already made, so a nightly run only does new images.",
    ),
}
# Flags each pipeline's `validate` refuses to run without (checked by tests/test_deploy.py).
REQUIRED = {"ingest": {"input", "domain", "output"}, "stylize": {"input", "output", "model"}}
EXTRA_REGEXES = {"date": r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|today|yesterday)$"}
INPUT_NOTE = (
    " As a template parameter it holds one PATTERN; name more inputs in a .txt or "
    ".parquet manifest."
)
BEAM_HELP = {
    "sdk_container_image": "Worker image; use the same image as the template (default: the "
    "image the template was built from).",
    "dataflow_service_options": "Dataflow service options; for stylize on GPUs: "
    "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver",
    "number_of_worker_harness_threads": "Threads per SDK process; on GPU workers one per vCPU "
    "(deploy default 4): they share the process's one model, so decoding and encoding "
    "overlap the GPU's forward passes.",
}
INTEGER = r"^-?[0-9]+$"
DECIMAL = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)$"


def parameter(flag: flex_main.Flag, required: bool) -> dict[str, Any]:
    """One metadata parameter for one pipeline flag."""
    action = flag.action
    help_text = " ".join((action.help or flag.option).split())
    if flag.name == "input":
        help_text = help_text.replace("; repeatable", ".") + INPUT_NOTE
    if action.choices:
        help_text = f"{help_text}; one of {', '.join(action.choices)}".lstrip("; ")
    if flag.is_switch:
        help_text += " (true or false)"
    elif action.default is not None and "default" not in help_text:
        help_text += f" (default: {action.default})"
    entry: dict[str, Any] = {
        "name": flag.name,
        "label": " ".join([flag.option, action.metavar or ""]).strip(),
        "helpText": help_text,
        "isOptional": not required,
    }
    regex = _regex(flag)
    if regex:
        entry["regexes"] = [regex]
    return entry


def _regex(flag: flex_main.Flag) -> str | None:
    action = flag.action
    if flag.name in EXTRA_REGEXES:
        return EXTRA_REGEXES[flag.name]
    if flag.is_switch:
        return "^(true|false)$"
    if action.choices:
        return f"^({'|'.join(action.choices)})$"
    return {int: INTEGER, float: DECIMAL}.get(action.type)


def metadata(pipeline: str) -> dict[str, Any]:
    """The Flex Template metadata of `pipeline` (ingest or stylize)."""
    name, description = DESCRIPTIONS[pipeline]
    parameters = [
        {
            "name": flex_main.PIPELINE_PARAMETER,
            "label": "Pipeline",
            "helpText": f"Which pipeline the image runs: {pipeline} for this template.",
            "isOptional": False,
            "regexes": [f"^{pipeline}$"],
        }
    ]
    parameters += [
        parameter(flag, flag.name in REQUIRED[pipeline]) for flag in flex_main.flags(pipeline)
    ]
    for beam_name in flex_main.BEAM_PARAMETERS:
        entry = {
            "name": beam_name,
            "label": f"--{beam_name} (Beam)",
            "helpText": BEAM_HELP[beam_name],
            "isOptional": True,
        }
        if beam_name == "number_of_worker_harness_threads":
            entry["regexes"] = [INTEGER]
        parameters.append(entry)
    return {"name": name, "description": description, "parameters": parameters}


# --- the nightly launch ------------------------------------------------------------------

# The defaults of deploy/config.sh; the committed scheduler job is rendered from these.
DEFAULTS = {
    "PROJECT": "my-project",
    "REGION": "us-central1",
    "BUCKET": "my-bucket",
    "REPOSITORY": "scenegan",
    "TAG": "latest",
    "NAME": "painting",
    "MACHINE_TYPE": "g2-standard-4",
    "GPU_TYPE": "nvidia-l4",
    "GPU_COUNT": "1",
    "HARNESS_THREADS": "4",
    "MAX_WORKERS": "4",
    "SCHEDULE": "30 1 * * *",
}


def configuration(environ: Mapping[str, str]) -> dict[str, str]:
    """deploy/config.sh's values: the environment's, else the defaults derived as there."""
    c = {key: environ.get(key) or value for key, value in DEFAULTS.items()}

    def pick(key: str, default: str) -> None:
        c[key] = environ.get(key) or default

    pick("IMAGE", f"{c['REGION']}-docker.pkg.dev/{c['PROJECT']}/{c['REPOSITORY']}/scenegan")
    pick("TEMPLATES", f"gs://{c['BUCKET']}/templates")
    pick("TEMP_LOCATION", f"gs://{c['BUCKET']}/tmp")
    pick("STAGING_LOCATION", f"gs://{c['BUCKET']}/staging")
    pick("REGISTRY", f"gs://{c['BUCKET']}/registry")
    pick("INBOX", f"gs://{c['BUCKET']}/inbox")
    pick("OUT", f"gs://{c['BUCKET']}/stylized/{c['NAME']}")
    pick("SERVICE_ACCOUNT", f"scenegan-nightly@{c['PROJECT']}.iam.gserviceaccount.com")
    return c


def gpu_service_option(c: Mapping[str, str]) -> str:
    return f"worker_accelerator=type:{c['GPU_TYPE']};count:{c['GPU_COUNT']};install-nvidia-driver"


def nightly_launch(c: Mapping[str, str], date: str = "yesterday") -> dict[str, Any]:
    """The LaunchFlexTemplateRequest of the nightly stylize job: the day's inbox folder
    (`{date}` is filled by the pipeline, `--date` defaults to the day that just ended) into
    one OUT for all nights, so images stylized on earlier nights are `skipped`."""
    image = f"{c['IMAGE']}:{c['TAG']}-gpu"
    return {
        "launchParameter": {
            "jobName": f"scenegan-nightly-{c['NAME']}",
            "containerSpecGcsPath": f"{c['TEMPLATES']}/stylize.json",
            "parameters": {
                "pipeline": "stylize",
                "model": f"{c['REGISTRY']}/{c['NAME']}/latest",
                "input": f"{c['INBOX']}/{{date}}/*",
                "output": c["OUT"],
                "date": date,
                "dataflow_service_options": gpu_service_option(c),
                "number_of_worker_harness_threads": c["HARNESS_THREADS"],
            },
            "environment": {
                "machineType": c["MACHINE_TYPE"],
                "maxWorkers": int(c["MAX_WORKERS"]),
                "sdkContainerImage": image,
                "additionalExperiments": ["no_use_multiple_sdk_containers"],
                "tempLocation": c["TEMP_LOCATION"],
                "stagingLocation": c["STAGING_LOCATION"],
                "serviceAccountEmail": c["SERVICE_ACCOUNT"],
            },
        }
    }


def scheduler_job(c: Mapping[str, str]) -> dict[str, Any]:
    """A Cloud Scheduler job (REST `Job` resource) that POSTs the nightly launch request to
    Dataflow's projects.locations.flexTemplates.launch with the service account's token."""
    body = json.dumps(nightly_launch(c), sort_keys=True).encode()
    location = f"projects/{c['PROJECT']}/locations/{c['REGION']}"
    return {
        "name": f"{location}/jobs/scenegan-nightly-{c['NAME']}",
        "description": f"Nightly scenegan stylize of {c['INBOX']}/<yesterday> with "
        f"{c['REGISTRY']}/{c['NAME']}/latest into {c['OUT']}",
        "schedule": c["SCHEDULE"],
        "timeZone": "Etc/UTC",
        "httpTarget": {
            "uri": f"https://dataflow.googleapis.com/v1b3/{location}/flexTemplates:launch",
            "httpMethod": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": base64.b64encode(body).decode(),
            "oauthToken": {
                "serviceAccountEmail": c["SERVICE_ACCOUNT"],
                "scope": "https://www.googleapis.com/auth/cloud-platform",
            },
        },
        "retryConfig": {"retryCount": 1, "minBackoffDuration": "600s"},
    }


# --- files ----------------------------------------------------------------------------


def rendered() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {TEMPLATES_DIR / f"{p}-metadata.json": _dump(metadata(p)) for p in flex_main.OPTIONS}
    files[SCHEDULER_JOB] = _dump(scheduler_job(configuration({})))
    return files


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file is stale")
    parser.add_argument(
        "--scheduler-job", metavar="FILE", help="write the job for the environment's settings"
    )
    args = parser.parse_args(argv)
    if args.scheduler_job:
        Path(args.scheduler_job).write_text(_dump(scheduler_job(configuration(os.environ))))
        return 0
    stale = []
    for path, text in rendered().items():
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        names = ", ".join(str(p.relative_to(HERE.parent)) for p in stale)
        print(
            f"stale: {names}; run `python deploy/flex_templates.py` and commit them",
            file=sys.stderr,
        )
        return 1
    for path in stale:
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
