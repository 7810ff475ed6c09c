"""Airflow / Cloud Composer DAG: the nightly scenegan stylize as a Flex Template launch.

Each run stylizes the inbox folder of its logical date (`{{ ds }}`: for this daily schedule,
the day that just ended) with the registry's latest model into one OUT shared by all nights,
so images an earlier night already stylized are `skipped`. Workers get one NVIDIA L4 each and
one SDK process, so each GPU holds one model, shared by one harness thread per vCPU.

Copy this file into the environment's dags/ folder and set the SCENEGAN_* environment
variables of the Composer environment (defaults below match deploy/config.sh).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

SETTINGS = {
    "project": os.environ.get("SCENEGAN_PROJECT", "my-project"),
    "region": os.environ.get("SCENEGAN_REGION", "us-central1"),
    "templates": os.environ.get("SCENEGAN_TEMPLATES", "gs://my-bucket/templates"),
    "image": os.environ.get(
        "SCENEGAN_IMAGE", "us-central1-docker.pkg.dev/my-project/scenegan/scenegan:latest-gpu"
    ),
    "registry": os.environ.get("SCENEGAN_REGISTRY", "gs://my-bucket/registry"),
    "name": os.environ.get("SCENEGAN_NAME", "painting"),
    "inbox": os.environ.get("SCENEGAN_INBOX", "gs://my-bucket/inbox"),
    "out": os.environ.get("SCENEGAN_OUT", "gs://my-bucket/stylized/painting"),
    "temp_location": os.environ.get("SCENEGAN_TEMP_LOCATION", "gs://my-bucket/tmp"),
    "machine_type": os.environ.get("SCENEGAN_MACHINE_TYPE", "g2-standard-4"),
    "harness_threads": os.environ.get("SCENEGAN_HARNESS_THREADS", "4"),
    "gpu": os.environ.get(
        "SCENEGAN_GPU", "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
    ),
}


def launch_body(settings: dict[str, str], day: str = "{{ ds }}") -> dict[str, Any]:
    """The LaunchFlexTemplateRequest body; `day` is rendered by Airflow (templated field)."""
    return {
        "launchParameter": {
            "jobName": f"scenegan-nightly-{settings['name']}-{{{{ ds_nodash }}}}",
            "containerSpecGcsPath": f"{settings['templates']}/stylize.json",
            "parameters": {
                "pipeline": "stylize",
                "model": f"{settings['registry']}/{settings['name']}/latest",
                "input": f"{settings['inbox']}/{day}/*",
                "output": settings["out"],
                "date": day,
                "dataflow_service_options": settings["gpu"],
                "number_of_worker_harness_threads": settings["harness_threads"],
            },
            "environment": {
                "machineType": settings["machine_type"],
                "sdkContainerImage": settings["image"],
                "additionalExperiments": ["no_use_multiple_sdk_containers"],
                "tempLocation": settings["temp_location"],
            },
        }
    }


def build_dag() -> Any:
    from airflow import DAG
    from airflow.providers.google.cloud.operators.dataflow import (
        DataflowStartFlexTemplateOperator,
    )

    with DAG(
        dag_id="scenegan_nightly_stylize",
        schedule="30 1 * * *",
        start_date=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
        catchup=False,
        max_active_runs=1,  # two nights never overlap
        default_args={"retries": 1, "retry_delay": datetime.timedelta(minutes=10)},
        tags=["scenegan"],
    ) as dag:
        DataflowStartFlexTemplateOperator(
            task_id="stylize",
            project_id=SETTINGS["project"],
            location=SETTINGS["region"],
            body=launch_body(SETTINGS),
            wait_until_finished=True,
        )
    return dag


try:
    import airflow  # noqa: F401
except ModuleNotFoundError:  # outside Airflow (tests): launch_body() stays importable
    dag = None
else:
    dag = build_dag()
