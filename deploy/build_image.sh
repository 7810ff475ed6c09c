#!/usr/bin/env bash
# Build and push the scenegan image (deploy/Dockerfile) in both variants:
#   $IMAGE:$TAG-gpu   torch with CUDA: stylize workers and the stylize template
#   $IMAGE:$TAG-cpu   torch for CPU:   ingest workers and the ingest template
# Usage: deploy/build_image.sh [gpu|cpu ...]     (default: both)
# Settings: deploy/config.sh (PROJECT, REGION, IMAGE, TAG, ...). DRY_RUN=1 prints the commands.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/config.sh

variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(gpu cpu)
for variant in "${variants[@]}"; do
    [[ "$variant" == gpu || "$variant" == cpu ]] || die "unknown variant '$variant' (gpu or cpu)"
    ref="${IMAGE}:${TAG}-${variant}"
    run docker build --file deploy/Dockerfile --build-arg "VARIANT=${variant}" \
        --build-arg "IMAGE_URI=${ref}" --tag "$ref" .
    run docker push "$ref"
done
