#!/usr/bin/env bash
# Train on Vertex AI with the GPU image: `scenegan train --launcher vertex` builds and submits
# the custom job (pass --dry-run to print the job spec without submitting).
#
#   deploy/submit_training.sh [scenegan train flags, e.g. --preset cyclegan --steps 200000]
#
# Settings: deploy/config.sh, plus DATA (gs:// dataset), RUN_DIR (gs:// run directory),
# TRAIN_MACHINE_TYPE, ACCELERATOR_TYPE, ACCELERATOR_COUNT, REPLICA_COUNT, SCENEGAN.
# DRY_RUN=1 prints the command.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/config.sh

: "${DATA:=gs://${BUCKET}/datasets/scenes}"
: "${RUN_DIR:=gs://${BUCKET}/runs/${NAME}-$(date -u +%Y%m%d-%H%M%S)}"
: "${TRAIN_MACHINE_TYPE:=g2-standard-8}"
: "${ACCELERATOR_TYPE:=NVIDIA_L4}"
: "${ACCELERATOR_COUNT:=1}"
: "${REPLICA_COUNT:=1}"
: "${SCENEGAN:=scenegan}"

run "$SCENEGAN" train --launcher vertex --project "$PROJECT" --region "$REGION" \
    --machine-type "$TRAIN_MACHINE_TYPE" --accelerator-type "$ACCELERATOR_TYPE" \
    --accelerator-count "$ACCELERATOR_COUNT" --replica-count "$REPLICA_COUNT" \
    --image "$GPU_IMAGE" --staging-bucket "gs://${BUCKET}" \
    --data "$DATA" --output "$RUN_DIR" "$@"
