#!/usr/bin/env bash
# Create the Cloud Scheduler job that launches the nightly stylize Flex Template (GPU
# workers) at $SCHEDULE (UTC): the job of deploy/nightly/cloud-scheduler-job.json, rendered
# for this configuration. Its launch request reads $INBOX/<yesterday>/* and writes $OUT.
# The scheduler's service account ($SERVICE_ACCOUNT) needs roles/dataflow.developer and
# roles/iam.serviceAccountUser on the workers' account.
# Settings: deploy/config.sh. JOB_FILE keeps the rendered job. DRY_RUN=1 prints the command.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/config.sh

: "${JOB_FILE:=$(mktemp -t scenegan-scheduler-job.XXXXXX)}"
"$PYTHON" deploy/flex_templates.py --scheduler-job "$JOB_FILE"
token='$(gcloud auth print-access-token)'  # printed as is by a dry run, never resolved
[[ "${DRY_RUN:-0}" == 1 ]] || token=$(gcloud auth print-access-token)
run curl --fail-with-body --silent --show-error --request POST \
    --header "Authorization: Bearer ${token}" \
    --header "Content-Type: application/json" --data "@${JOB_FILE}" \
    "https://cloudscheduler.googleapis.com/v1/projects/${PROJECT}/locations/${REGION}/jobs"
