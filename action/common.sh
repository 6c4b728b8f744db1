# Sourced by the action's steps: the inputs the settings step kept, and
# `sbx`, sparkbox with them. Not a step of its own.
settings="${RUNNER_TEMP:?RUNNER_TEMP is not set (the runner sets it)}/sparkbox-action.env"
# shellcheck source=/dev/null
. "$settings"
export SPARKBOX_NAME SPARKBOX_REGISTRY
sbx() {
    if [ -n "$SPARKBOX_ACTION_FILE" ]; then
        "${SPARKBOX:-sparkbox}" --progress plain -f "$SPARKBOX_ACTION_FILE" "$@"
    else
        "${SPARKBOX:-sparkbox}" --progress plain "$@"
    fi
}
# The flags that choose the image, for `image tag` and `up` alike.
image_flags=()
if [ -n "$SPARKBOX_SPARK_VERSION" ]; then image_flags+=(--spark-version "$SPARKBOX_SPARK_VERSION"); fi
# The file in the image cache for these settings' image.
cached_image() {
    local tag
    read -r tag _ < <(sbx image tag "${image_flags[@]}") || return 1
    printf '%s/%s.sbximage\n' "$SPARKBOX_IMAGE_CACHE" "$(printf '%s' "$tag" | tr '/:' '__')"
}
