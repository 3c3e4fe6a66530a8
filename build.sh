#!/usr/bin/env bash
# Builds huatuo-bamai and installs whatever the build and tests need.
#
#   ./build.sh            install missing tools, build _output/bin/huatuo-bamai
#   ./build.sh test       the same, then run every test (fmt, lint, check, unit, integration)
#   ./build.sh deps       install missing tools only
#   ./build.sh bpf        compile the BPF objects only (bpf/*.bpf.c → _output/bpf/*.o)
#   ./build.sh rpm        build, then an RPM with a systemd unit into _output/rpm/
#
# Deno comes from the npm registry (package @deno/linux-<arch>-glibc, pinned
# below) into .tools/ when a 2.9.x deno is not on PATH; system packages come
# from Debian. The binary is a `deno compile` executable when Deno's runtime
# (denort) can be obtained — set DENORT_BIN to a local denort to use one — and
# otherwise a `deno bundle` file plus a launcher at the same path.
set -euo pipefail

DENO_VERSION=2.9.6
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT="$ROOT/_output"
TOOLS="$ROOT/.tools"

log() { printf 'build.sh: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  [ "$(id -u)" = 0 ] || { log "need root to install: $*"; return 1; }
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "installing Debian packages: $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need COMMAND PACKAGE: install PACKAGE when COMMAND is missing.
need() {
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

ensure_deno() {
  if command -v deno >/dev/null 2>&1 && deno --version 2>/dev/null | grep -q "^deno 2\.9\."; then
    DENO=$(command -v deno)
  else
    DENO="$TOOLS/deno-$DENO_VERSION/deno"
    if [ ! -x "$DENO" ]; then
      need npm npm
      local arch
      case "$(uname -m)" in
        x86_64) arch=x64 ;;
        aarch64) arch=arm64 ;;
        *) log "no Deno build for $(uname -m)"; exit 1 ;;
      esac
      log "installing Deno $DENO_VERSION from the npm registry (@deno/linux-$arch-glibc)"
      local tmp
      tmp=$(mktemp -d)
      (cd "$tmp" && npm pack --silent "@deno/linux-$arch-glibc@$DENO_VERSION" >/dev/null && tar xzf ./*.tgz)
      mkdir -p "$(dirname "$DENO")"
      install -m 0755 "$tmp/package/deno" "$DENO"
      rm -rf "$tmp"
    fi
  fi
  export PATH="$(dirname "$DENO"):$PATH"
  export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
}

ensure_build_deps() {
  ensure_deno
  # libbpf is dlopened at run time.
  [ -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libbpf.so.1 ] || apt_install libbpf1
  need clang clang
  need llvm-strip llvm
  need bpftool bpftool
  [ -e /usr/include/bpf/bpf_helpers.h ] || apt_install libbpf-dev
}

# CO-RE objects: clang -target bpf against a vmlinux.h generated from this
# kernel's BTF. Rebuilt only when a source or header is newer than the object.
build_bpf() {
  cd "$ROOT"
  local arch
  case "$(uname -m)" in
    x86_64) arch=x86 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
  esac
  if [ ! -s bpf/vmlinux.h ]; then
    [ -r /sys/kernel/btf/vmlinux ] || { log "no /sys/kernel/btf/vmlinux: cannot generate bpf/vmlinux.h"; exit 1; }
    bpftool btf dump file /sys/kernel/btf/vmlinux format c >bpf/vmlinux.h.tmp
    mv bpf/vmlinux.h.tmp bpf/vmlinux.h
  fi
  local src obj built=0
  local headers
  headers=$(ls bpf/*.h 2>/dev/null)
  for src in bpf/*.bpf.c bpf/test/*.bpf.c; do
    [ -e "$src" ] || continue
    obj="$OUT/bpf/${src#bpf/}"
    obj="${obj%.bpf.c}.o"
    mkdir -p "$(dirname "$obj")"
    if [ -e "$obj" ] && [ -z "$(find "$src" $headers -newer "$obj" 2>/dev/null)" ]; then
      continue
    fi
    clang -g -O2 -Wall -Werror -target bpf "-D__TARGET_ARCH_$arch" -Ibpf -c "$src" -o "$obj.tmp"
    # Drop DWARF, keep BTF (needed for CO-RE relocations and map definitions).
    llvm-strip -g "$obj.tmp"
    mv "$obj.tmp" "$obj"
    built=$((built + 1))
  done
  mkdir -p "$OUT/bpf"
  log "BPF objects: $built rebuilt, $(find "$OUT/bpf" -name '*.o' | wc -l) in $OUT/bpf"
}

ensure_test_deps() {
  need promtool prometheus
  need prometheus-node-exporter prometheus-node-exporter
  need unshare util-linux
  need ip iproute2
  need nft nftables
  need tc iproute2
  need curl curl
  need rpmbuild rpm
  need rpm2cpio rpm2cpio
  need cpio cpio
  need bpftrace bpftrace
  need gcc gcc
  need stress-ng stress-ng
  # The CPU profiler's accuracy test and benchmark compare against perf record.
  need perf linux-perf
}

# Tests attach tp/ programs, which libbpf resolves through tracefs; a fresh host
# (or a new mount namespace) has it unmounted. The agent itself needs none.
prepare_test_host() {
  local t=/sys/kernel/tracing
  if [ -d "$t" ] && [ ! -e "$t/events" ]; then
    mount -t tracefs nodev "$t" || { log "cannot mount tracefs at $t (tests that attach tracepoints will fail)"; return 1; }
    log "mounted tracefs at $t"
  fi
}

# Runs every test. In CI (CI set; root on a BPF-capable VM) a test that reports
# itself ignored is a failure: there, every test must really run.
run_tests() {
  local out rc
  out=$(mktemp)
  set +e
  "$DENO" task test 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" = 0 ] && [ -n "${CI:-}" ] && grep -qE '^(ok|FAILED) \|.* [1-9][0-9]* ignored' "$out"; then
    log "CI: these tests were ignored, and in CI every test must run:"
    grep -E ' \.\.\. ignored' "$out" >&2 || true
    rc=1
  fi
  rm -f "$out"
  return "$rc"
}

build_rpm() {
  need rpmbuild rpm
  local top="$OUT/rpm"
  rm -rf "$top"
  rpmbuild -bb "$ROOT/huatuo-bamai.spec" --quiet \
    --define "_sourcedir $ROOT" --define "_topdir $top/build" --define "_rpmdir $top" \
    --define "_unitdir /usr/lib/systemd/system" 2>&1 | grep -v 'absolute symlink' >&2 || true
  rm -rf "$top/build"
  log "built $(ls "$top"/*/*.rpm)"
}

build_agent() {
  cd "$ROOT"
  "$DENO" install --frozen >/dev/null
  rm -rf "$OUT/bin" "$OUT/lib"
  mkdir -p "$OUT/bin"
  local bin="$OUT/bin/huatuo-bamai"
  # The BPF objects travel inside the executable (read back from its embedded tree).
  # --optimize-for-size: V8 grows the heap less eagerly between collections
  # (measured: RSS under sustained scraping 147 → 83 MB, same CPU per scrape).
  if "$DENO" compile --allow-all --frozen --v8-flags=--optimize-for-size --include _output/bpf --output "$bin" main.ts >"$OUT/compile.log" 2>&1; then
    log "built $bin: deno compile single executable${DENORT_BIN:+ (runtime from DENORT_BIN=$DENORT_BIN)}"
    return
  fi
  # The runtime download is what fails on hosts without access to Deno's release server.
  local why
  why=$(grep -m1 -E '^\s+1: ' "$OUT/compile.log" | sed 's/^ *1: //' | cut -c1-160 || true)
  log "deno compile unavailable: cannot obtain the denort runtime (${why:-see _output/compile.log}); set DENORT_BIN to a local denort to get a single executable"
  log "falling back to deno bundle + launcher"
  local lib="$OUT/lib/huatuo-bamai"
  mkdir -p "$lib"
  "$DENO" bundle --quiet --platform=deno --frozen --output "$lib/huatuo-bamai.js" main.ts
  install -m 0755 "$DENO" "$lib/deno"
  cat >"$bin" <<'LAUNCHER'
#!/bin/sh
# huatuo-bamai launcher (deno bundle build): runs the bundled agent on the
# Deno runtime shipped beside it; needs nothing else from the host.
lib=$(dirname -- "$(readlink -f -- "$0")")/../lib/huatuo-bamai
HUATUO_BAMAI_BPF_DIR=${HUATUO_BAMAI_BPF_DIR:-$lib/../../bpf} DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1 \
  exec "$lib/deno" run --allow-all --no-config --no-lock --cached-only --v8-flags=--optimize-for-size --quiet \
  "$lib/huatuo-bamai.js" "$@"
LAUNCHER
  chmod 0755 "$bin"
  log "built $bin: deno bundle + launcher (bundle $(du -h "$lib/huatuo-bamai.js" | cut -f1))"
}

cmd=${1:-build}
case "$cmd" in
  deps)
    ensure_build_deps
    ensure_test_deps
    ;;
  build)
    ensure_build_deps
    build_bpf
    build_agent
    ;;
  bpf)
    ensure_build_deps
    build_bpf
    ;;
  rpm)
    ensure_build_deps
    build_bpf
    build_agent
    build_rpm
    ;;
  test)
    ensure_build_deps
    ensure_test_deps
    build_bpf
    build_agent
    prepare_test_host
    # A real OpenSearch node (server jars from Maven Central) for the storage tests.
    bash "$ROOT/integration/opensearch/build.sh"
    cd "$ROOT"
    run_tests
    ;;
  *)
    echo "usage: $0 [build|test|deps|rpm]" >&2
    exit 2
    ;;
esac
