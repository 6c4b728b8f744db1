#!/usr/bin/env bash
# The CI job in one script (the GitHub Actions example runs exactly this):
# pytest on this machine with the pytest-sparkbox plugin, which brings the
# cluster up, connects the tests' `spark` to its Spark Connect server, writes
# a diagnostics bundle when anything fails, and always tears the cluster
# down; the image comes from a cache directory when there is one. Its exit
# code is pytest's.
#
#   SPARKBOX  the sparkbox binary (default: sparkbox on PATH)
#   PYTHON    a Python with pytest, pytest-sparkbox and pyspark[connect] of
#             the cluster's Spark version (`sparkbox status` prints the exact
#             requirement)
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

cached=""
if [ -n "${IMAGE_CACHE:-}" ]; then
    read -r tag state < <("$sparkbox" image tag) || exit 1
    cached="$IMAGE_CACHE/$(printf '%s' "$tag" | tr '/:' '__').sbximage"
    if [ "$state" = missing ] && [ -f "$cached" ]; then
        echo "loading $tag from the image cache"
        "$sparkbox" --progress plain image load "$cached" || exit $?
    fi
fi

# The pytest-sparkbox plugin (pip install ./python/pytest-sparkbox) does the
# rest: the cluster up when the first test asks for `spark`, the tests, the
# diagnostics bundle when one fails, the cluster down at the end.
"$python" -m pytest -q -p no:cacheprovider --sparkbox-bin "$sparkbox" \
    --sparkbox-bundle "$bundle" "$here/tests" "$@"
status=$?
if [ "$status" -ne 0 ] && [ -d "$bundle" ]; then
    echo "pytest failed: diagnostics in $bundle" >&2
fi

if [ -n "$cached" ] && [ ! -f "$cached" ] && "$sparkbox" image tag | grep -q ' present$'; then
    # One image in the cache: the one these settings use.
    mkdir -p "$IMAGE_CACHE" && rm -f "$IMAGE_CACHE"/*.sbximage
    "$sparkbox" --progress plain image save "$cached" || echo "could not save the image to the cache" >&2
fi
exit "$status"
