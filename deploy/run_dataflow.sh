#!/usr/bin/env bash
# Run ingest or stylize on Dataflow.
#
#   deploy/run_dataflow.sh ingest|stylize NAME=VALUE ...
#       launch the Flex Template ($TEMPLATES/<pipeline>.json); NAME is a template parameter
#       (deploy/templates/<pipeline>-metadata.json), e.g. input=gs://b/in/* output=gs://b/out
#   deploy/run_dataflow.sh --direct ingest|stylize FLAGS ...
#       submit from this machine: python -m pipelines.<pipeline> --runner DataflowRunner FLAGS
#
# stylize always runs on GPU workers: $MACHINE_TYPE with $GPU_COUNT x $GPU_TYPE, driver
# installed by Dataflow, the GPU image as worker image, one SDK process per VM (so each GPU
# holds one model) and $HARNESS_THREADS harness threads sharing that model, so the CPU work
# of some batches overlaps the forward of others. Settings: deploy/config.sh. DRY_RUN=1 prints.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/config.sh

direct=0
if [[ "${1:-}" == --direct ]]; then direct=1; shift; fi
pipeline="${1:-}"
[[ "$pipeline" == ingest || "$pipeline" == stylize ]] \
    || die "usage: $0 [--direct] ingest|stylize ARGS... (got '${pipeline}')"
shift

image="$CPU_IMAGE"
[[ "$pipeline" == stylize ]] && image="$GPU_IMAGE"

if [[ $direct == 1 ]]; then
    flags=(--runner DataflowRunner --project "$PROJECT" --region "$REGION"
        --temp_location "$TEMP_LOCATION" --staging_location "$STAGING_LOCATION"
        --sdk_container_image "$image" --max_num_workers "$MAX_WORKERS")
    if [[ "$pipeline" == stylize ]]; then
        flags+=(--machine_type "$MACHINE_TYPE" "--dataflow_service_options=${GPU_SERVICE_OPTION}"
            "--number_of_worker_harness_threads=${HARNESS_THREADS}" --experiments=no_use_multiple_sdk_containers)
    fi
    run "$PYTHON" -m "pipelines.${pipeline}" "${flags[@]}" "$@"
    exit 0
fi

flags=(--project "$PROJECT" --region "$REGION"
    --template-file-gcs-location "${TEMPLATES}/${pipeline}.json"
    --temp-location "$TEMP_LOCATION" --staging-location "$STAGING_LOCATION"
    --max-workers "$MAX_WORKERS" --parameters "pipeline=${pipeline}"
    --parameters "sdk_container_image=${image}")
if [[ "$pipeline" == stylize ]]; then
    flags+=(--worker-machine-type "$MACHINE_TYPE"
        --additional-experiments no_use_multiple_sdk_containers
        --parameters "dataflow_service_options=${GPU_SERVICE_OPTION}"
        --parameters "number_of_worker_harness_threads=${HARNESS_THREADS}")
fi
for parameter in "$@"; do
    [[ "$parameter" == *=* ]] || die "template parameters are NAME=VALUE, got '$parameter'"
    flags+=(--parameters "$parameter")
done
run gcloud dataflow flex-template run "scenegan-${pipeline}-$(date -u +%Y%m%d-%H%M%S)" "${flags[@]}"
