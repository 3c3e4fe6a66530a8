#!/usr/bin/env bash
# Builds a local Debian base image (no registry needed) from the apt mirror
# configured on this host, cached in _output/base/:
#   packaging/base-image.sh [TAG]     default localhost/debian:bookworm-slim
# Like debian:bookworm-slim: minbase, no apt lists, docs, man pages or
# translations, and dpkg told to leave them out of later installs too.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=${1:-localhost/debian:bookworm-slim}
DIR="$ROOT/_output/base"
mirror=$(grep -rhoE '^(deb|URIs:) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -E '/debian/?$' | head -1 | awk '{print $2}' || true)
if [ ! -x "$DIR/rootfs/bin/sh" ]; then
  rm -rf "$DIR/rootfs"
  mkdir -p "$DIR"
  debootstrap --variant=minbase bookworm "$DIR/rootfs" "${mirror:-http://deb.debian.org/debian}"
fi
r="$DIR/rootfs"
cat >"$r/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
find "$r/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/usr/share/man/* "$r"/usr/share/info/*
# The root itself is used too (integration/package_test.ts installs the RPM into a copy of it).
if command -v podman >/dev/null 2>&1 && podman image exists "$TAG"; then
  echo "base-image.sh: $TAG exists" >&2
  exit 0
fi
tar -C "$DIR/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$TAG"
