#!/usr/bin/env bash
# Pin the Dockerfile's default base image (`ARG BASE_IMAGE=...`) to the digest its registry serves
# now for the same name and tag: the multi-platform index digest when buildx answers, else the
# repository digest of a fresh `docker pull`. Needs the registry; changes only that line.
# Usage: docker/pin-base.sh [DOCKERFILE]   (default docker/Dockerfile)
set -euo pipefail

DOCKERFILE="${1:-docker/Dockerfile}"
DIGEST='^sha256:[0-9a-f]{64}$'

die() { echo "pin-base: error: $*" >&2; exit 1; }

current=$(sed -n 's/^ARG BASE_IMAGE=//p' "$DOCKERFILE")
[ -n "$current" ] || die "no 'ARG BASE_IMAGE=' line in $DOCKERFILE"
reference="${current%%@*}"

if ! digest=$(docker buildx imagetools inspect --format '{{.Manifest.Digest}}' "$reference" 2>/dev/null); then
    docker pull --quiet "$reference" >/dev/null || die "the registry of $reference does not answer"
    repo_digest=$(docker image inspect --format '{{index .RepoDigests 0}}' "$reference") \
        || die "no repository digest for $reference"
    digest="${repo_digest#*@}"
fi
[[ $digest =~ $DIGEST ]] || die "the registry answered '$digest' for $reference, not a sha256 digest"

sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$reference@$digest|" "$DOCKERFILE"
echo "pin-base: $current -> $reference@$digest"
