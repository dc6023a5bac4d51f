#!/usr/bin/env bash
# Refuse images whose base is not pinned by digest: each image built from docker/Dockerfile names
# its base in the label org.opencontainers.image.base.name (the BASE_IMAGE it was built on). A
# pushed image must be rebuildable from the same bytes, so its base must read NAME[:TAG]@sha256:<64 hex>.
# Usage: docker/require-pinned-base.sh IMAGE...   (exit 1 naming each image that fails)
set -euo pipefail

LABEL=org.opencontainers.image.base.name
PINNED='@sha256:[0-9a-f]{64}$'

status=0
for image in "$@"; do
    if ! base=$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$image"); then
        echo "require-pinned-base: error: no image $image" >&2
        status=1
    elif ! [[ $base =~ $PINNED ]]; then
        echo "require-pinned-base: error: $image is built on '${base:-an unnamed base}', not on a base" \
            "pinned by digest (build on docker/Dockerfile's default, see \`make pin-base\`," \
            "or BASE_IMAGE=NAME:TAG@sha256:...)" >&2
        status=1
    fi
done
exit "$status"
