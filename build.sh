#!/usr/bin/env bash
# Builds huatuo-bamai and installs whatever the build and tests need.
#
#   ./build.sh            install missing tools, build _output/bin/huatuo-bamai
#   ./build.sh test       the same, then run every test (fmt, lint, check, unit, integration)
#   ./build.sh deps       install missing tools only
#   ./build.sh bpf        compile the BPF objects only (bpf/*.bpf.c → _output/bpf/*.o)
#   ./build.sh rpm        build, then an RPM with a systemd unit into _output/rpm/
#                         (RPM_RELEASE=N sets its Release, default 1)
#
# Deno comes from the npm registry (package @deno/linux-<arch>-glibc, pinned
# below) into .tools/ when a 2.9.x deno is not on PATH; system packages come
# from Debian. The binary is a `deno compile` executable when Deno's runtime
# (denort) can be obtained — set DENORT_BIN to a local denort to use one — and
# otherwise one file made of a small C loader, the Deno runtime, a `deno bundle`
# of the agent, libbpf (with libelf and libz) and the BPF objects (build_single).
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
      # npm's stdout is the tarball name; its errors (stderr) stay visible.
      (cd "$tmp" && npm pack "@deno/linux-$arch-glibc@$DENO_VERSION" >/dev/null && tar xzf ./*.tgz)
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
  # integration/dashboards_test.ts runs a real Prometheus server against the agent.
  need prometheus prometheus
  need prometheus-node-exporter prometheus-node-exporter
  need unshare util-linux
  need ip iproute2
  need nft nftables
  need logrotate logrotate
  need tc iproute2
  need curl curl
  need rpmbuild rpm
  need rpm2cpio rpm2cpio
  need cpio cpio
  need bpftrace bpftrace
  need gcc gcc
  need stress-ng stress-ng
  # The minimal Debian root integration/single_file_test.ts runs the single file in.
  need debootstrap debootstrap
  # Renders the SVG flame graphs in src/profile/flamegraph_svg_test.ts.
  need chromium chromium
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
  # rpmbuild's own failure fails the build; only its absolute-symlink note is dropped.
  local rc=0
  rpmbuild -bb "$ROOT/huatuo-bamai.spec" --quiet \
    --define "_sourcedir $ROOT" --define "_topdir $top/build" --define "_rpmdir $top" \
    --define "_unitdir /usr/lib/systemd/system" --define "huatuo_release ${RPM_RELEASE:-1}" \
    --define "carries_libbpf $([ -d "$OUT/single" ] && echo 1 || echo 0)" \
    2> >(grep -v 'absolute symlink' >&2) || rc=$?
  [ "$rc" = 0 ] || { log "rpmbuild failed ($rc)"; exit "$rc"; }
  rm -rf "$top/build"
  log "built $(ls "$top"/*/*.rpm)"
}

# Writes the git revision and build time into src/core/build_info.ts for the
# build (bundle and compile read it the same way); restore_build_info puts the
# committed "unknown" back, so the tree stays clean.
BUILD_INFO="$ROOT/src/core/build_info.ts"
stamp_build_info() {
  local rev time
  rev=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  if [ "$rev" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    rev="$rev-dirty"
  fi
  # SOURCE_DATE_EPOCH (reproducible builds) wins over the clock.
  time=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
  mkdir -p "$OUT"
  cp "$BUILD_INFO" "$OUT/build_info.ts.orig"
  sed -i -e "s/^export const BUILD_REVISION: string = .*/export const BUILD_REVISION: string = \"$rev\";/" \
    -e "s/^export const BUILD_TIME: string = .*/export const BUILD_TIME: string = \"$time\";/" "$BUILD_INFO"
  trap restore_build_info EXIT
  log "stamped revision $rev, build time $time"
}
restore_build_info() {
  [ -e "$OUT/build_info.ts.orig" ] && mv "$OUT/build_info.ts.orig" "$BUILD_INFO"
  trap - EXIT
}

build_agent() {
  cd "$ROOT"
  "$DENO" install --frozen >/dev/null
  stamp_build_info
  rm -rf "$OUT/bin" "$OUT/lib" "$OUT/single"
  mkdir -p "$OUT/bin"
  local bin="$OUT/bin/huatuo-bamai"
  # The BPF objects travel inside the executable (read back from its embedded tree).
  # --optimize-for-size: V8 grows the heap less eagerly between collections
  # (measured: RSS under sustained scraping 147 → 83 MB, same CPU per scrape).
  if "$DENO" compile --allow-all --frozen --v8-flags=--optimize-for-size --include _output/bpf --output "$bin" main.ts >"$OUT/compile.log" 2>&1; then
    restore_build_info
    log "built $bin: deno compile single executable${DENORT_BIN:+ (runtime from DENORT_BIN=$DENORT_BIN)}"
    return
  fi
  # The runtime download is what fails on hosts without access to Deno's release server.
  local why
  why=$(grep -m1 -E '^\s+1: ' "$OUT/compile.log" | sed 's/^ *1: //' | cut -c1-160 || true)
  log "deno compile unavailable: cannot obtain the denort runtime (${why:-see _output/compile.log}); set DENORT_BIN to a local denort to get a single executable"
  log "falling back to deno bundle + a single-file loader"
  build_single "$bin"
}

# The file a member of the single-file payload comes from: the host's library
# with this soname (libbpf.so.1, libelf.so.1, libz.so.1).
host_library() {
  # awk reads to the end: leaving early would kill ldconfig with SIGPIPE (pipefail).
  ldconfig -p | awk -v so="$1" '$1 == so && /x86-64|AArch64|aarch64/ && !found { print $NF; found = 1 }'
}

# libelf.so.1 for the single file. Debian 12's needs glibc 2.33 (fstat@GLIBC_2.33),
# Debian 11's (elfutils 0.183, newer than libbpf 1.x requires) glibc 2.14, so
# with it the file runs down to libbpf's own floor, glibc 2.28. Fetched once
# with apt-get from the host's Debian mirror into _output/; when that fails, the
# host's libelf (and the floor it brings).
portable_libelf() {
  local dir="$OUT/libelf-bullseye"
  if [ ! -e "$dir/libelf.so.1" ] && command -v dpkg >/dev/null 2>&1; then
    local mirror tmp
    mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
      grep -v security | grep -oE 'https?://[^ ]+' | head -1 || true)
    tmp=$(mktemp -d)
    mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" >"$tmp/sources.list"
    # Only this list and no installed packages, so libelf1's candidate is bullseye's.
    local o=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$tmp/lists" -o Dir::State::status=/dev/null -o "Dir::Cache=$tmp"
      -o "Dir::Cache::archives=$tmp/archives" -o APT::Sandbox::User=root)
    if [ -n "$mirror" ] && apt-get "${o[@]}" update -qq >/dev/null 2>&1 &&
      (cd "$tmp" && apt-get "${o[@]}" download -qq libelf1 >/dev/null 2>&1); then
      dpkg-deb -x "$tmp"/libelf1_*.deb "$tmp/x"
      mkdir -p "$dir"
      install -m 0644 "$(readlink -f "$(find "$tmp/x" -name libelf.so.1 -print -quit)")" "$dir/libelf.so.1"
      log "libelf for the single file: $(basename "$tmp"/libelf1_*.deb) (Debian 11) in $dir"
    fi
    rm -rf "$tmp"
  fi
  if [ -e "$dir/libelf.so.1" ]; then echo "$dir/libelf.so.1"; else host_library libelf.so.1; fi
}

# The newest GLIBC_ symbol version any of the files needs: the oldest glibc they run on.
glibc_floor() {
  objdump -T "$@" | grep -oE 'GLIBC_[0-9]+\.[0-9]+' | sort -uV | tail -1 | sed 's/GLIBC_//'
}

# One executable file: packaging/single/loader.c with a payload appended (the
# Deno runtime, the bundle, libbpf with the libraries it needs, the BPF objects
# as a tar archive), which it runs from memory. See the loader for the layout.
build_single() {
  local bin=$1 stage="$OUT/single"
  need gcc gcc
  # libc.a for the static link (gcc only recommends libc6-dev).
  [ "$(gcc -print-file-name=libc.a)" != libc.a ] || apt_install libc6-dev
  rm -rf "$stage"
  mkdir -p "$stage"
  "$DENO" bundle --quiet --platform=deno --frozen --output "$stage/huatuo-bamai.js" main.ts
  restore_build_info
  # Static: the loader itself then needs no libc of any version.
  gcc -O2 -Wall -Wextra -Werror -static -s -o "$stage/loader" "$ROOT/packaging/single/loader.c"
  (cd "$OUT/bpf" && tar --format=ustar --owner=0 --group=0 --numeric-owner -cf "$stage/bpf.tar" ./*.o)
  local libbpf libelf libz
  libbpf=$(host_library libbpf.so.1)
  libelf=$(portable_libelf)
  libz=$(host_library libz.so.1)
  [ -n "$libbpf" ] && [ -n "$libelf" ] && [ -n "$libz" ] || { log "libbpf.so.1, libelf.so.1 or libz.so.1 not found"; exit 1; }
  # Everything else libbpf needs must come from glibc, which the target host has.
  local extra
  extra=$(ldd "$libbpf" "$libelf" | awk '/=>/ && $1 !~ /^(libelf\.so\.1|libz\.so\.1|libc\.so\.6|ld-linux[-a-z0-9_]*\.so\.[0-9])$/ { print $1 }' | sort -u)
  [ -z "$extra" ] || { log "libbpf needs libraries the single file does not carry: $extra"; exit 1; }

  local tmp="$bin.tmp" index="" member role file off
  cp "$stage/loader" "$tmp"
  for member in "exec=$DENO" "script=$stage/huatuo-bamai.js" "HUATUO_BAMAI_LIBZ=$libz" \
    "HUATUO_BAMAI_LIBELF=$libelf" "HUATUO_BAMAI_LIBBPF=$libbpf" "HUATUO_BAMAI_BPF_ARCHIVE=$stage/bpf.tar"; do
    role=${member%%=*}
    file=$(readlink -f "${member#*=}")
    off=$(stat -c %s "$tmp")
    cat "$file" >>"$tmp"
    index+="$role $off $(stat -c %s "$file")"$'\n'
  done
  off=$(stat -c %s "$tmp")
  printf '%s' "$index" >>"$tmp"
  # Trailer (32 bytes): magic, then the index's offset and length.
  printf 'HUATUOSF%-24s' "$off ${#index}" >>"$tmp"
  chmod 0755 "$tmp"
  mv "$tmp" "$bin"
  log "built $bin: single file ($(du -h "$bin" | cut -f1); bundle $(du -h "$stage/huatuo-bamai.js" | cut -f1), libbpf $(basename "$(readlink -f "$libbpf")"); runs on glibc $(glibc_floor "$DENO" "$libbpf" "$libelf" "$libz") or newer)"
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
