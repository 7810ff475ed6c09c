# Configuration shared by the deploy scripts (sourced, not run). Every value comes from the
# environment; these are the defaults. `deploy/flex_templates.py` reads the same names
# (its DEFAULTS mirror these; tests/test_deploy.py checks that they agree).
#
# `run CMD ARGS...` runs a command, or with DRY_RUN=1 prints it (one line, shell-quoted)
# instead, so every script can show exactly what it would do.

: "${PROJECT:=my-project}"
: "${REGION:=us-central1}"
: "${BUCKET:=my-bucket}"
: "${REPOSITORY:=scenegan}"
: "${IMAGE:=${REGION}-docker.pkg.dev/${PROJECT}/${REPOSITORY}/scenegan}"
: "${TAG:=latest}"
: "${TEMPLATES:=gs://${BUCKET}/templates}"
: "${TEMP_LOCATION:=gs://${BUCKET}/tmp}"
: "${STAGING_LOCATION:=gs://${BUCKET}/staging}"
: "${REGISTRY:=gs://${BUCKET}/registry}"
: "${NAME:=painting}"
: "${INBOX:=gs://${BUCKET}/inbox}"
: "${OUT:=gs://${BUCKET}/stylized/${NAME}}"
: "${MACHINE_TYPE:=g2-standard-4}"
: "${GPU_TYPE:=nvidia-l4}"
: "${GPU_COUNT:=1}"
# Harness threads per GPU worker: one per vCPU of MACHINE_TYPE. They share the one model
# of the (single) SDK process, so decode/encode of some batches overlap the forward of others.
: "${HARNESS_THREADS:=4}"
: "${MAX_WORKERS:=4}"
: "${SCHEDULE:=30 1 * * *}"
: "${SERVICE_ACCOUNT:=scenegan-nightly@${PROJECT}.iam.gserviceaccount.com}"
: "${PYTHON:=python3}"
export PROJECT REGION BUCKET REPOSITORY IMAGE TAG TEMPLATES TEMP_LOCATION STAGING_LOCATION \
    REGISTRY NAME INBOX OUT MACHINE_TYPE GPU_TYPE GPU_COUNT HARNESS_THREADS MAX_WORKERS SCHEDULE \
    SERVICE_ACCOUNT PYTHON

# The worker image of each variant: GPU for stylize, CPU for ingest.
GPU_IMAGE="${IMAGE}:${TAG}-gpu"
CPU_IMAGE="${IMAGE}:${TAG}-cpu"
# One NVIDIA L4 per worker VM, driver installed by Dataflow (G2 machines carry L4s).
GPU_SERVICE_OPTION="worker_accelerator=type:${GPU_TYPE};count:${GPU_COUNT};install-nvidia-driver"

run() {
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
        local quoted
        printf -v quoted '%q ' "$@"
        echo "${quoted% }"
    else
        "$@"
    fi
}

die() {
    echo "$(basename "$0"): error: $*" >&2
    exit 2
}
