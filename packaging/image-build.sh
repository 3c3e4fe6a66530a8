#!/usr/bin/env bash
# Builds the container image with podman on a host without a registry: a
# local debootstrap base (packaging/base-image.sh), then the Dockerfile.
#   packaging/image-build.sh [TAG]      default localhost/huatuo/huatuo-bamai:latest
# PODMAN_RUNTIME (e.g. runc: crun refuses hybrid cgroup hosts) and
# PODMAN_ULIMITS (e.g. "--ulimit nofile=10000:10000": podman's defaults exceed
# a hard limit it may not raise) adapt it to the host.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=${1:-localhost/huatuo/huatuo-bamai:latest}
BASE=localhost/debian:bookworm-slim
"$ROOT/packaging/base-image.sh" "$BASE"
args=(--format docker --network host --build-arg "BASE=$BASE" --build-arg "BUILDER_BASE=$BASE"
  --build-arg "REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)")
# npm and deno (https) must trust what this host trusts, e.g. an intercepting proxy's CA.
[ -s /etc/ssl/certs/ca-certificates.crt ] && args+=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
# shellcheck disable=SC2086
podman ${PODMAN_RUNTIME:+--runtime "$PODMAN_RUNTIME"} build ${PODMAN_ULIMITS:-} "${args[@]}" -t "$TAG" "$ROOT"
