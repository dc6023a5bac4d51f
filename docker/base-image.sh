#!/usr/bin/env bash
# Build a local stand-in for python:3.11-slim-bookworm when no image registry is reachable:
# Debian bookworm (minbase) with python3, python3-venv and ca-certificates, bootstrapped
# with debootstrap from the mirror apt already uses, carrying this host's CA bundle (a TLS
# proxy in front of PyPI is trusted only through it). Idempotent: skips when the image exists.
# Usage: docker/base-image.sh [IMAGE]   (default gender-base:bookworm; needs root;
#        DEBIAN_MIRROR=URL overrides the mirror taken from apt's sources)
set -euo pipefail

IMAGE="${1:-gender-base:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
DEFAULT_MIRROR=http://deb.debian.org/debian
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

die() { echo "base-image: error: $*" >&2; exit 1; }

# The first Debian archive URI that apt on this host uses (deb822 or one-line format).
host_mirror() {
    local uri
    uri=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        /etc/apt/sources.list.d/*.list \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
    echo "${uri:-$DEFAULT_MIRROR}"
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (run docker/start-engine.sh)"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base-image: $IMAGE already exists"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

if ! command -v debootstrap >/dev/null; then
    echo "base-image: installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null \
        || die "apt-get install debootstrap failed"
fi

MIRROR="${DEBIAN_MIRROR:-$(host_mirror)}"
WORK=$(mktemp -d /var/tmp/gender-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"

echo "base-image: debootstrap $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 20 "$ROOTFS/debootstrap/debootstrap.log" >&2
    die "debootstrap of $SUITE from $MIRROR failed"
fi

[ -f "$CA_BUNDLE" ] && cp "$CA_BUNDLE" "$ROOTFS$CA_BUNDLE"
# What a container never needs: package caches, docs, man pages, translations.
rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*

echo "base-image: importing $IMAGE"
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE minbase + $PACKAGES" \
    - "$IMAGE" >/dev/null
docker run --rm "$IMAGE" python3 --version
echo "base-image: built $IMAGE"
