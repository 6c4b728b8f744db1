#!/usr/bin/env bash
# Step 1 of the action: keeps its inputs (given as SPARKBOX_* variables) for
# the later steps in $RUNNER_TEMP/sparkbox-action.env, and writes the image's
# tag as the cache key (key=… to GITHUB_OUTPUT).
set -euo pipefail
: "${RUNNER_TEMP:?RUNNER_TEMP is not set (the runner sets it)}"
{
    for var in SPARKBOX_WORKERS SPARKBOX_SPARK_VERSION SPARKBOX_CONNECT SPARKBOX_HISTORY \
        SPARKBOX_REGISTRY SPARKBOX_ACTION_FILE SPARKBOX_NAME SPARKBOX_TIMEOUT; do
        printf '%s=%q\n' "$var" "${!var:-}"
    done
    printf 'SPARKBOX_IMAGE_CACHE=%q\n' "$RUNNER_TEMP/sparkbox-image"
    printf 'SPARKBOX_BUNDLE=%q\n' "$RUNNER_TEMP/sparkbox-bundle"
} > "$RUNNER_TEMP/sparkbox-action.env"
. "$(dirname "$0")/common.sh"
read_image
echo "key=$(basename "$cached" .sbximage)" >> "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
