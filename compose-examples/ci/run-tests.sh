#!/usr/bin/env bash
# The CI job in one script (the GitHub Actions example runs exactly this):
# bring the cluster up, run pytest on this machine against the cluster's
# Spark Connect server, write a diagnostics bundle when anything fails, and
# always tear the cluster down. Its exit code is pytest's (or up's).
#
#   SPARKBOX  the sparkbox binary (default: sparkbox on PATH)
#   PYTHON    a Python with pytest and pyspark[connect] of the cluster's Spark
#             version (`sparkbox status` prints the exact requirement)
#   BUNDLE    where the diagnostics bundle goes (default: ./sparkbox-bundle)
#   extra arguments go to pytest
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sparkbox="${SPARKBOX:-sparkbox}"
python="${PYTHON:-python3}"
bundle="${BUNDLE:-$PWD/sparkbox-bundle}"
export SPARKBOX_FILE="$here/sparkbox.toml"

up_json=$(mktemp)
teardown() { "$sparkbox" --progress plain down --volumes || true; rm -f "$up_json"; }
trap teardown EXIT

"$sparkbox" --progress plain up --json --bundle-on-failure "$bundle" > "$up_json" || exit $?
remote=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["urls"]["connect"])' "$up_json") || exit 1
echo "Spark Connect: $remote"

SPARK_REMOTE="$remote" "$python" -m pytest -q -p no:cacheprovider "$here/tests" "$@"
status=$?
if [ "$status" -ne 0 ]; then
    "$sparkbox" --progress plain logs --bundle "$bundle" || true
    echo "pytest failed: diagnostics in $bundle" >&2
fi
exit "$status"
