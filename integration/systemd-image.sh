#!/usr/bin/env bash
# A local image with systemd as PID 1 (debootstrap minbase + systemd + libbpf1,
# cached in _output/base/systemd-rootfs) for running packaging/huatuo-bamai.service
# under real systemd on a host whose PID 1 is not systemd.
#   integration/systemd-image.sh [TAG]     default localhost/huatuo/systemd-test:latest
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=${1:-localhost/huatuo/systemd-test:latest}
R="$ROOT/_output/base/systemd-rootfs"
podman image exists "$TAG" && exit 0
mirror=$(grep -rhoE '^(deb|URIs:) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -E '/debian/?$' | head -1 | awk '{print $2}' || true)
if [ ! -x "$R/sbin/init" ]; then
  rm -rf "$R"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libbpf1 bookworm "$R" \
    "${mirror:-http://deb.debian.org/debian}"
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
fi
# The agent is bind-mounted at /usr/lib/huatuo-bamai, as the RPM installs it.
ln -sf ../lib/huatuo-bamai/bin/huatuo-bamai "$R/usr/bin/huatuo-bamai"
tar -C "$R" -c . | podman import --change 'CMD ["/sbin/init"]' - "$TAG"
