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
#   IMAGE_CACHE  a directory kept between runs (actions/cache keyed by
#             `sparkbox image tag`): when the engine lacks the image it is
#             loaded from there, and after a build it is saved there, so a
#             second run builds nothing
#   SPARKBOX_REGISTRY  instead of a cache: a registry the image is pulled
#             from (and proven) before any build; push it once with
#             `sparkbox image push`
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

cached=""
if [ -n "${IMAGE_CACHE:-}" ]; then
    read -r tag state < <("$sparkbox" image tag) || exit 1
    cached="$IMAGE_CACHE/$(printf '%s' "$tag" | tr '/:' '__').sbximage"
    if [ "$state" = missing ] && [ -f "$cached" ]; then
        echo "loading $tag from the image cache"
        "$sparkbox" --progress plain image load "$cached" || exit $?
    fi
fi

"$sparkbox" --progress plain up --json --bundle-on-failure "$bundle" > "$up_json" || exit $?

if [ -n "$cached" ] && [ ! -f "$cached" ]; then
    # One image in the cache: the one these settings use.
    mkdir -p "$IMAGE_CACHE" && rm -f "$IMAGE_CACHE"/*.sbximage
    "$sparkbox" --progress plain image save "$cached" || echo "could not save the image to the cache (the tests go on)" >&2
fi
remote=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["urls"]["connect"])' "$up_json") || exit 1
echo "Spark Connect: $remote"

SPARK_REMOTE="$remote" "$python" -m pytest -q -p no:cacheprovider "$here/tests" "$@"
status=$?
if [ "$status" -ne 0 ]; then
    "$sparkbox" --progress plain logs --bundle "$bundle" || true
    echo "pytest failed: diagnostics in $bundle" >&2
fi
exit "$status"
