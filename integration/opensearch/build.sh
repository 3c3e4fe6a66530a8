#!/usr/bin/env bash
# Builds the OpenSearch test node (OpenSearch 2.19.6 from Maven Central, see pom.xml) into
# _output/opensearch/lib, once: a second run with unchanged sources returns at once. Safe to run
# concurrently (flock). Installs Java 17 and Maven from Debian when missing and run as root.
#
#   integration/opensearch/build.sh [extra mvn args, e.g. -Dmaven.repo.local=/tmp/m2]
#
# Env: HUATUO_OPENSEARCH_OUT (default _output/opensearch), JAVA_HOME (default: java on PATH).
#
# Output: $OUT/lib/*.jar (classpath), $OUT/jvm.options (a java @argfile: the distribution launcher's system
# options, serial GC), $OUT/node.jsa (class-data-sharing archive from one warm-up run: start 7 s -> 3 s).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${HUATUO_OPENSEARCH_OUT:-$ROOT/_output/opensearch}

log() { printf 'opensearch/build.sh: %s\n' "$*" >&2; }

if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { log "need javac (Java 17) and mvn: apt-get install openjdk-17-jdk-headless maven"; exit 1; }
  log "installing Debian packages: openjdk-17-jdk-headless maven"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
fi

# The stamp covers everything that shapes the output, so an edit rebuilds and nothing else does.
stamp=$(cd "$HERE" && cat build.sh pom.xml jvm.options $(find src -type f | sort) | sha256sum | cut -c1-16)

mkdir -p "$(dirname "$OUT")"
exec 9>"$OUT.lock"
flock 9
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ] && [ -n "$(ls "$OUT/lib" 2>/dev/null)" ]; then
  exit 0
fi

t0=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
log "building the OpenSearch test node into $OUT (Maven Central; first run downloads ~60 MB)"
if ! mvn -B -q -f "$HERE/pom.xml" -Dos.out="$OUT" "$@" package >"$OUT/build.log" 2>&1; then
  tail -n 40 "$OUT/build.log" >&2
  log "mvn package failed (full log: $OUT/build.log)"
  exit 1
fi
cp "$HERE/jvm.options" "$OUT/jvm.options"

# One node run that indexes and searches, then exits, recording every class it loaded into an AppCDS
# archive. A JVM that cannot use it (another JDK build) says so in the node log and starts without it.
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
warm=$(mktemp -d "${TMPDIR:-/tmp}/huatuo-it-opensearch-cds-XXXXXX")
if timeout 300 "$java" "@$OUT/jvm.options" -Xms512m -Xmx512m -XX:ArchiveClassesAtExit="$OUT/node.jsa" \
  -cp "$OUT/lib/*" huatuo.it.OpenSearchNode "$warm" 0 --warm-up-and-exit >"$OUT/cds.log" 2>&1 && [ -s "$OUT/node.jsa" ]; then
  cds="CDS archive $(du -h "$OUT/node.jsa" | cut -f1)"
else
  rm -f "$OUT/node.jsa"
  cds="no CDS archive (warm-up run failed, see $OUT/cds.log): the node starts slower"
  log "$cds"
fi
rm -rf "$warm"

echo "$stamp" >"$OUT/.stamp"
log "built in $(($(date +%s) - t0)) s: $(ls "$OUT/lib" | wc -l) jars, $(du -sh "$OUT/lib" | cut -f1), $cds"
