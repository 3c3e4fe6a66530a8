#!/usr/bin/env bash
# Builds a local Debian base image (no registry needed) from the apt mirror
# configured on this host, cached in _output/base/:
#   packaging/base-image.sh [TAG]     default localhost/debian:bookworm-slim
# Like debian:bookworm-slim: minbase, no apt lists, no docs or man pages.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=${1:-localhost/debian:bookworm-slim}
DIR="$ROOT/_output/base"
if podman image exists "$TAG"; then
  echo "base-image.sh: $TAG exists" >&2
  exit 0
fi
mirror=$(grep -rhoE '^(deb|URIs:) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -E '/debian/?$' | head -1 | awk '{print $2}' || true)
if [ ! -x "$DIR/rootfs/bin/sh" ]; then
  rm -rf "$DIR/rootfs"
  mkdir -p "$DIR"
  debootstrap --variant=minbase bookworm "$DIR/rootfs" "${mirror:-http://deb.debian.org/debian}"
  rm -rf "$DIR"/rootfs/var/cache/apt/archives/*.deb "$DIR"/rootfs/var/lib/apt/lists/* \
    "$DIR"/rootfs/usr/share/doc/* "$DIR"/rootfs/usr/share/man/* "$DIR"/rootfs/usr/share/info/*
fi
tar -C "$DIR/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$TAG"
