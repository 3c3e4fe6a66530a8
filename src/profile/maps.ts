// Pure parsers for where user-space code lives: /proc/<pid>/maps (which
// file, at which offset, backs an address) and perf JIT maps
// (/tmp/perf-<pid>.map, written by JITs: V8 with --perf-basic-prof, the JVM
// with perf-map-agent, CPython 3.12 with -X perf, ...).

import { SymbolTable } from "./elf.ts";

/** One line of /proc/<pid>/maps. */
export interface Mapping {
  readonly start: number;
  readonly end: number;
  /** "r-xp" etc. */
  readonly perms: string;
  /** Offset in the file of the mapping's start. */
  readonly offset: number;
  /** "major:minor" in hex, as the kernel prints it. */
  readonly dev: string;
  readonly inode: number;
  /** The file ("/usr/lib/x86_64-linux-gnu/libc.so.6"), a pseudo name ("[vdso]", "[heap]") or "" (anonymous). */
  readonly path: string;
  /** The file was deleted (or replaced) after it was mapped: the kernel appends " (deleted)". */
  readonly deleted: boolean;
}

const MAPS_LINE =
  /^([0-9a-f]+)-([0-9a-f]+) ([-rwxsp]{4}) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)(?: +(.*))?$/;
const DELETED = " (deleted)";

/** The lines of /proc/<pid>/maps, in the file's (ascending address) order; malformed lines are skipped. */
export function parseProcMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split("\n")) {
    const m = MAPS_LINE.exec(line);
    if (!m) continue;
    let path = m[7] ?? "";
    const deleted = path.endsWith(DELETED);
    if (deleted) path = path.slice(0, -DELETED.length);
    out.push({
      start: parseInt(m[1], 16),
      end: parseInt(m[2], 16),
      perms: m[3],
      offset: parseInt(m[4], 16),
      dev: m[5],
      inode: Number(m[6]),
      path,
      deleted,
    });
  }
  return out;
}

/** Whether a mapping is backed by a file on disk (not anonymous memory or a kernel pseudo mapping). */
export function isFileBacked(m: Mapping): boolean {
  return m.inode !== 0 && m.path.startsWith("/");
}

/** The mapping containing `addr` in mappings sorted by start (as /proc/<pid>/maps lists them). */
export function findMapping(maps: readonly Mapping[], addr: number): Mapping | undefined {
  let lo = 0;
  let hi = maps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const m = maps[mid];
    if (addr < m.start) hi = mid - 1;
    else if (addr >= m.end) lo = mid + 1;
    else return m;
  }
  return undefined;
}

/** The file name of a path: "/usr/lib/x86_64-linux-gnu/libc.so.6" → "libc.so.6". */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

export interface ParsePerfMapOptions {
  /** Entries kept at most (the first ones). Default 1,000,000. */
  maxEntries?: number;
}

const PERF_MAP_LINE = /^(?:0x)?([0-9a-fA-F]+) (?:0x)?([0-9a-fA-F]+) (.+)$/;

/**
 * A perf JIT map: lines "START SIZE name" (hex, with or without 0x). A JIT
 * reuses code memory, so of two entries at one address the later wins.
 */
export function parsePerfMap(text: string, opts: ParsePerfMapOptions = {}): SymbolTable {
  const max = opts.maxEntries ?? 1_000_000;
  const entries: { start: number; end: number; name: string; line: number }[] = [];
  let truncated = false;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = PERF_MAP_LINE.exec(lines[i].trimEnd());
    if (!m) continue;
    if (entries.length >= max) {
      truncated = true;
      break;
    }
    const start = parseInt(m[1], 16);
    const size = parseInt(m[2], 16);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(size)) continue;
    entries.push({ start, end: start + size, name: m[3], line: i });
  }
  entries.sort((a, b) => a.start - b.start || b.line - a.line);
  const kept = entries.filter((e, i) => i === 0 || entries[i - 1].start !== e.start);
  return SymbolTable.of(
    Float64Array.from(kept, (e) => e.start),
    Float64Array.from(kept, (e) => e.end),
    kept.map((e) => e.name),
    truncated,
  );
}

/**
 * The pid of a process inside its own pid namespace: the last NSpid of
 * /proc/<pid>/status (a JIT names its map after that pid); undefined without one.
 */
export function namespacePid(status: string): number | undefined {
  const m = /^NSpid:\s*([\d\s]+)$/m.exec(status);
  const last = m?.[1].trim().split(/\s+/).pop();
  const n = Number(last);
  return last !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}
