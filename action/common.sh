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
# These settings' image: sets image_state (present or missing on the
# engine) and cached (its file in the image cache), with one `image tag`.
read_image() {
    local tag
    read -r tag image_state < <(sbx image tag "${image_flags[@]}") || return 1
    cached="$SPARKBOX_IMAGE_CACHE/$(printf '%s' "$tag" | tr '/:' '__').sbximage"
}
