// Helpers shared by the benchmarks (bench/scrape.ts, bench/buffers.ts,
// bench/bpf_cost.ts): flag parsing, /proc readings, machine facts, statistics
// and table rendering.

// ---------------------------------------------------------------- flags

/** A bad command line: the benchmark prints the message and its usage, and exits 2. */
export class UsageError extends Error {}

/**
 * Walks `args` (`--flag value` or `--flag=value`), handing each flag to
 * `onFlag` with a function that takes its value (the inline one or the next
 * argument). `onFlag` returns false for a flag it does not know: that is a
 * UsageError. -h/--help prints `usage` and exits 0.
 */
export function parseFlags(
  args: string[],
  usage: string,
  onFlag: (flag: string, value: () => string | undefined) => boolean,
): void {
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].includes("=") ? args[i].split(/=(.*)/s, 2) : [args[i], undefined];
    const value = (): string | undefined => inline ?? args[++i];
    if (flag === "-h" || flag === "--help") {
      console.log(usage);
      Deno.exit(0);
    }
    if (!onFlag(flag, value)) throw new UsageError(`unknown argument ${args[i]}`);
  }
}

/** A flag's value as a number >= min (an integer when `int`), else a UsageError. */
export function numberFlag(flag: string, v: string | undefined, min: number, int: boolean): number {
  const re = int ? /^\d+$/ : /^\d+(\.\d+)?$/;
  if (v === undefined || !re.test(v) || Number(v) < min) {
    throw new UsageError(`${flag} needs ${int ? "an integer" : "a number"} >= ${min}, got ${v ?? "nothing"}`);
  }
  return Number(v);
}

/** A flag's non-empty value, else a UsageError "<flag> needs <what>". */
export function stringFlag(flag: string, v: string | undefined, what: string): string {
  if (!v) throw new UsageError(`${flag} needs ${what}`);
  return v;
}

/**
 * `parse(args)`, or on a UsageError prints `<prefix><message>` and `usage` to
 * stderr and exits 2.
 */
export function parseOrExit<T>(parse: (args: string[]) => T, args: string[], usage: string, prefix = ""): T {
  try {
    return parse(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${prefix}${err.message}\n${usage}`);
      Deno.exit(2);
    }
    throw err;
  }
}

// ---------------------------------------------------------------- small helpers

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `x` with exactly `digits` decimals and thousands separators; "n/a" when not finite. */
export const fmtNumber = (x: number, digits: number): string =>
  Number.isFinite(x)
    ? x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a";

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

/** Markdown-style table: the first `leftCols` columns left-aligned, the others right-aligned. */
export function markdownTable(head: string[], rows: string[][], leftCols = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const cell = (s: string, i: number) => i < leftCols ? s.padEnd(widths[i]) : s.padStart(widths[i]);
  const line = (r: string[]) => `| ${r.map((s, i) => cell(s ?? "", i)).join(" | ")} |`;
  const sep = `|${
    widths.map((w, i) => (i < leftCols ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|")
  }|`;
  return [line(head), sep, ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------- /proc

/**
 * The fields of /proc/<pid>/stat after "(comm)": element i is field i + 3
 * (state is field 3, ppid 4, utime 14, stime 15).
 */
export function procStatFields(pid: number | string): string[] {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** utime + stime of a process, in clock ticks (NaN when unparsable). */
export function procCpuTicks(pid: number): number {
  const rest = procStatFields(pid);
  return Number(rest[14 - 3]) + Number(rest[15 - 3]);
}

/** A "<key>: N kB" line of /proc/<pid>/status (as read in `status`), in KiB. */
export function statusKiB(pid: number, status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------- machine

/** A /proc (or other) text file, "" when unreadable. */
export function readTextOr(path: string, fallback = ""): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

/** The first three /proc/loadavg fields ("1m 5m 15m"). */
export function loadavg3(fallback = ""): string {
  return readTextOr("/proc/loadavg", fallback).split(" ").slice(0, 3).join(" ");
}

/** The "model name" of /proc/cpuinfo (undefined when there is none). */
export function cpuModelName(cpuinfo = readTextOr("/proc/cpuinfo")): string | undefined {
  return /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1];
}

/** MemTotal of /proc/meminfo in KiB, as its digits (undefined when there is none). */
export function memTotalKiB(meminfo = readTextOr("/proc/meminfo")): string | undefined {
  return /^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1];
}
