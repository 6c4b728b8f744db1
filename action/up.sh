#!/usr/bin/env bash
# Step 2: the image from the cache when the engine lacks it, the cluster up,
# the image saved to the cache after a build (so the next run builds
# nothing), and the cluster's URLs as outputs (GITHUB_OUTPUT).
set -euo pipefail
. "$(dirname "$0")/common.sh"
read_image
if [ "$image_state" = missing ] && [ -f "$cached" ]; then
    echo "loading the image from the cache"
    sbx image load "$cached"
fi
args=(up --json --workers "$SPARKBOX_WORKERS" --timeout "$SPARKBOX_TIMEOUT"
    --bundle-on-failure "$SPARKBOX_BUNDLE" "${image_flags[@]}")
if [ "$SPARKBOX_CONNECT" = true ]; then args+=(--connect); else args+=(--no-connect); fi
if [ "$SPARKBOX_HISTORY" = true ]; then args+=(--history); else args+=(--no-history); fi
up_json="$RUNNER_TEMP/sparkbox-up.json"
sbx "${args[@]}" > "$up_json"
if [ ! -f "$cached" ]; then
    # One image in the cache: the one these settings use.
    mkdir -p "$SPARKBOX_IMAGE_CACHE" && rm -f "$SPARKBOX_IMAGE_CACHE"/*.sbximage
    sbx image save "${image_flags[@]}" "$cached" || echo "could not save the image to the cache (the job goes on)" >&2
fi
python3 - "$up_json" >> "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}" <<'PY'
import json, sys
up = json.load(open(sys.argv[1]))
urls = up.get("urls", {})
print("connect-url=%s" % (urls.get("connect") or ""))
print("jupyter-url=%s" % (urls.get("jupyter") or ""))
print("master-ui-url=%s" % (urls.get("master_ui") or ""))
print("master-url=%s" % (up.get("master_url") or ""))
PY
