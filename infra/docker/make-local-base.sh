#!/usr/bin/env bash
# Make a Debian bookworm base image with Python 3.11 without any container registry:
# debootstrap a minimal root file system, import it, then install python3 with apt (over HTTP).
# About a minute; needs root and `apt-get install debootstrap`.
#
#   infra/docker/make-local-base.sh            # -> sbx-python-base:3.11-bookworm
#   SBX_BASE_IMAGE=sbx-python-base:3.11-bookworm make images
set -euo pipefail

NAME="${1:-sbx-python-base:3.11-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS_IMAGE="sbx-debian-rootfs:bookworm"

command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >/dev/null
tar -C "$WORK/rootfs" -c . | docker import - "$ROOTFS_IMAGE" >/dev/null

cat > "$WORK/Dockerfile" <<DOCKERFILE
FROM $ROOTFS_IMAGE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --quiet --tag "$NAME" "$WORK" >/dev/null
echo "$NAME"
