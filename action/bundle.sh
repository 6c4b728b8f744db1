#!/usr/bin/env bash
# When the job failed: the cluster's diagnostics bundle for the artifact
# (unless `up` already wrote it when it failed).
set -uo pipefail
. "$(dirname "$0")/common.sh"
if [ -e "$SPARKBOX_BUNDLE" ]; then
    echo "the diagnostics bundle is in $SPARKBOX_BUNDLE"
    exit 0
fi
sbx logs --bundle "$SPARKBOX_BUNDLE"
