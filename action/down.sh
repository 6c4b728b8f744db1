#!/usr/bin/env bash
# Always, last: the cluster down with its volumes (the runner's, not kept).
set -uo pipefail
. "$(dirname "$0")/common.sh"
sbx down --volumes
