#!/usr/bin/env bash
# Build the two Flex Templates from the pushed images (deploy/build_image.sh first):
#   $TEMPLATES/ingest.json    image $IMAGE:$TAG-cpu, metadata deploy/templates/ingest-metadata.json
#   $TEMPLATES/stylize.json   image $IMAGE:$TAG-gpu, metadata deploy/templates/stylize-metadata.json
# The metadata is checked against the pipelines' options first (never deploy a stale one).
# Settings: deploy/config.sh. DRY_RUN=1 prints the commands.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/config.sh

run "$PYTHON" deploy/flex_templates.py --check
for pipeline in ingest stylize; do
    image="$CPU_IMAGE"
    [[ "$pipeline" == stylize ]] && image="$GPU_IMAGE"
    run gcloud dataflow flex-template build "${TEMPLATES}/${pipeline}.json" \
        --image "$image" --sdk-language PYTHON \
        --metadata-file "deploy/templates/${pipeline}-metadata.json" \
        --project "$PROJECT"
done
