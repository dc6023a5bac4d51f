#!/usr/bin/env bash
# Make a Docker engine answer on this machine: install docker.io if missing, start dockerd
# in the background if nothing answers, wait for `docker info`. Idempotent; needs root
# unless an engine already answers. Used by .ci/run and by hand.
set -euo pipefail

WAIT_S="${DOCKER_WAIT_S:-60}"
LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"

die() { echo "start-engine: error: $*" >&2; exit 1; }

if docker info >/dev/null 2>&1; then
    echo "start-engine: Docker engine already answers"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "no Docker engine answers and starting one needs root"

if ! command -v dockerd >/dev/null; then
    echo "start-engine: installing docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null \
        || die "apt-get install docker.io failed"
fi

if ! pgrep -x dockerd >/dev/null; then
    echo "start-engine: starting dockerd (log: $LOG)"
    nohup dockerd >"$LOG" 2>&1 &
fi

for _ in $(seq "$WAIT_S"); do
    if docker info >/dev/null 2>&1; then
        echo "start-engine: Docker engine answers"
        exit 0
    fi
    sleep 1
done
tail -n 20 "$LOG" >&2 || true
die "dockerd did not answer within ${WAIT_S}s (log: $LOG)"
