// Helpers shared by the benchmarks (bench/scrape.ts, bench/containers.ts,
// bench/buffers.ts, bench/bpf_cost.ts): flag parsing, /proc readings, machine
// facts, statistics, table rendering, and the processes and scrape loop of the
// scrape benchmarks (the agent and node_exporter).

import { BINARY, confWithPort, freePort, ROOT, type RunningAgent, startAgent } from "../integration/agent.ts";
import { parseSeriesLine } from "../integration/prom.ts";

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

// ---------------------------------------------------------------- processes and scraping (scrape benchmarks)

const dec = new TextDecoder();

export async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return { ok: o.success, out: (dec.decode(o.stdout) + dec.decode(o.stderr)).trim() };
  } catch (err) {
    return { ok: false, out: String(err) };
  }
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    const st = await Deno.stat(path);
    return st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

export async function findNodeExporter(explicit?: string): Promise<string> {
  const candidates = explicit ? [explicit] : [
    "/usr/bin/prometheus-node-exporter",
    ...(Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "").flatMap((d) => [
      `${d}/prometheus-node-exporter`,
      `${d}/node_exporter`,
    ]),
  ];
  for (const c of candidates) if (await isExecutable(c)) return c;
  throw new Error(
    explicit
      ? `node_exporter not found at ${explicit}`
      : "node_exporter is not installed: apt-get install prometheus-node-exporter",
  );
}

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export interface ProcStat {
  cpuTicks: number;
  rssKiB: number;
  hwmKiB: number;
}

export function procStat(pid: number): ProcStat {
  const cpuTicks = procCpuTicks(pid);
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  if (!Number.isFinite(cpuTicks)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return { cpuTicks, rssKiB: statusKiB(pid, status, "VmRSS"), hwmKiB: statusKiB(pid, status, "VmHWM") };
}

// ---------------------------------------------------------------- processes

/** A process we started: stopped exactly once, by its own handle. */
export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly metricsUrl: string;
  readonly exited: () => boolean;
  readonly output: () => string;
  stop(): Promise<void>;
  /** Synchronous last resort for signal handlers. */
  kill(): void;
}

export const STOP_GRACE_MS = 5_000;

/** Waits for `done` (the caller has sent SIGTERM); SIGKILLs the child after a grace period. */
export async function awaitStop(child: Deno.ChildProcess, done: Promise<unknown>): Promise<void> {
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
  }, STOP_GRACE_MS);
  try {
    await done;
  } finally {
    clearTimeout(timer);
  }
}

/** The shipped BlackList line with `extra` appended. */
export function addToBlackList(conf: string, extra: string[]): string {
  if (extra.length === 0) return conf;
  const re = /^BlackList = \[(.*)\]$/m;
  const m = re.exec(conf);
  if (!m) throw new Error("shipped config has no top-level BlackList line");
  const names = [
    ...m[1].split(",").map((s) => s.trim()).filter((s) => s !== ""),
    ...extra.map((e) => `"${e}"`),
  ];
  return conf.replace(re, `BlackList = [${names.join(", ")}]`);
}

/**
 * The built agent on a free 127.0.0.1 port with the shipped config (plus
 * `blacklist`), --disable-storage --disable-kubelet and `extraArgs`. It
 * inherits this process's environment.
 */
export async function startHuatuo(blacklist: string[], extraArgs: string[] = []): Promise<Proc> {
  if (!(await isExecutable(BINARY))) throw new Error(`${BINARY} is missing: run ./build.sh first`);
  const agent: RunningAgent = await startAgent({
    args: ["--region", "bench", "--disable-storage", "--disable-kubelet", ...extraArgs],
    conf: (port) => confWithPort(port, (text) => addToBlackList(text, blacklist)),
  });
  let exited = false;
  agent.child.status.then(() => exited = true);
  let stopping: Promise<void> | undefined;
  return {
    name: "huatuo-bamai",
    pid: agent.child.pid,
    metricsUrl: `${agent.url}/metrics`,
    exited: () => exited,
    output: () => agent.output(),
    stop: () =>
      stopping ??= awaitStop(agent.child, agent.stop("SIGTERM")).then(() => {
        console.error(`stopped huatuo-bamai (pid ${agent.child.pid})`);
      }),
    kill: () => {
      try {
        agent.child.kill("SIGKILL");
      } catch { /* already exited */ }
      try {
        Deno.removeSync(agent.dir, { recursive: true });
      } catch { /* already removed */ }
    },
  };
}

export async function startNodeExporter(path: string): Promise<Proc> {
  const port = freePort();
  const child = new Deno.Command(path, {
    args: [`--web.listen-address=127.0.0.1:${port}`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const chunk of s) {
      out += d.decode(chunk, { stream: true });
      if (out.length > 256 * 1024) out = out.slice(-128 * 1024); // keep the tail only
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const done = child.status.then(async () => {
    exited = true;
    await pumps;
  });
  let stopping: Promise<void> | undefined;
  const proc: Proc = {
    name: "node_exporter",
    pid: child.pid,
    metricsUrl: `http://127.0.0.1:${port}/metrics`,
    exited: () => exited,
    output: () => out,
    stop: () =>
      stopping ??= (() => {
        try {
          child.kill("SIGTERM");
        } catch { /* already exited */ }
        return awaitStop(child, done);
      })().then(() => {
        console.error(`stopped node_exporter (pid ${child.pid})`);
      }),
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
    },
  };
  try {
    await waitAnswers(proc, 30_000);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

export async function waitAnswers(p: Proc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.exited()) throw new Error(`${p.name} exited before answering:\n${p.output()}`);
    try {
      const res = await fetch(p.metricsUrl, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  throw new Error(`${p.name} did not answer ${p.metricsUrl} within ${timeoutMs} ms:\n${p.output()}`);
}

// ---------------------------------------------------------------- scraping

export const SCRAPE_TIMEOUT_MS = 30_000;

export interface Target {
  readonly proc: Proc;
  /** The per-collector duration series of this exporter. */
  readonly durationMetric: string;
  readonly successMetric: string;
  readonly latenciesMs: number[];
  /** Sum over measured scrapes of each collector's self-reported duration, seconds. */
  readonly collectorSeconds: Map<string, number>;
  collectorSuccess: Map<string, number>;
  series: number;
  bodyBytes: number;
  cpuTicksBefore: number;
  cpuTicksAfter: number;
  rssBeforeKiB: number;
  rss: ProcStat | undefined;
}

export function newTarget(proc: Proc, durationMetric: string, successMetric: string): Target {
  return {
    proc,
    durationMetric,
    successMetric,
    latenciesMs: [],
    collectorSeconds: new Map(),
    collectorSuccess: new Map(),
    series: 0,
    bodyBytes: 0,
    cpuTicksBefore: 0,
    cpuTicksAfter: 0,
    rssBeforeKiB: 0,
    rss: undefined,
  };
}

/** One full request + body read; returns the elapsed ms and the decoded body. */
export async function scrapeOnce(t: Target, gzip: boolean): Promise<{ ms: number; body: Uint8Array }> {
  const t0 = performance.now();
  let res: Response;
  let body: Uint8Array;
  try {
    res = await fetch(t.proc.metricsUrl, {
      headers: {
        "accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        "accept-encoding": gzip ? "gzip" : "identity",
      },
      signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS),
    });
    body = new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    await sleep(200); // let an exit be noticed
    const why = t.proc.exited() ? ` (${t.proc.name} exited; its output:\n${t.proc.output()})` : "";
    throw new Error(
      `${t.proc.name}: GET ${t.proc.metricsUrl}: ${err instanceof Error ? err.message : err}${why}`,
    );
  }
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`${t.proc.name}: GET ${t.proc.metricsUrl}: HTTP ${res.status}`);
  return { ms, body };
}

/** Series count and per-collector values from one body (done outside the timed window). */
export function digest(t: Target, text: string, accumulate: boolean): void {
  let series = 0;
  const success = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    series++;
    if (!line.startsWith(t.durationMetric) && !line.startsWith(t.successMetric)) continue;
    const s = parseSeriesLine(line);
    const c = s.labels.collector;
    if (c === undefined) continue;
    if (s.name === t.durationMetric && accumulate) {
      t.collectorSeconds.set(c, (t.collectorSeconds.get(c) ?? 0) + s.value);
    } else if (s.name === t.successMetric) {
      success.set(c, s.value);
    }
  }
  t.series = series;
  t.collectorSuccess = success;
}

export interface Summary {
  name: string;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  series: number;
  usPerSeries: number;
  bodyBytes: number;
  wireBytes: number | null;
  rssBeforeMB: number;
  rssMB: number;
  hwmMB: number;
  cpuMsPerScrape: number;
  collectorsOk: string[];
  collectorsFailed: string[];
  topCollectorsMs: [string, number][];
}

export function summarize(t: Target, n: number, clkTck: number, wireBytes: number | null): Summary {
  const sorted = [...t.latenciesMs].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const rss = t.rss;
  if (!rss) throw new Error(`${t.proc.name}: no memory reading`);
  const top = [...t.collectorSeconds.entries()]
    .map(([c, s]): [string, number] => [c, (s / n) * 1000])
    .sort((a, b) => b[1] - a[1]);
  return {
    name: t.proc.name,
    p50Ms: p50,
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    meanMs: mean(sorted),
    minMs: sorted[0],
    maxMs: sorted[sorted.length - 1],
    series: t.series,
    usPerSeries: (p50 * 1000) / t.series,
    bodyBytes: t.bodyBytes,
    wireBytes,
    rssBeforeMB: t.rssBeforeKiB / 1024,
    rssMB: rss.rssKiB / 1024,
    hwmMB: rss.hwmKiB / 1024,
    cpuMsPerScrape: ((t.cpuTicksAfter - t.cpuTicksBefore) / clkTck / n) * 1000,
    collectorsOk: [...t.collectorSuccess].filter(([, v]) => v === 1).map(([c]) => c).sort(),
    collectorsFailed: [...t.collectorSuccess].filter(([, v]) => v !== 1).map(([c]) => c).sort(),
    topCollectorsMs: top,
  };
}

/** Body size on the wire for the chosen encoding, via curl (null when curl is unavailable). */
export async function wireSize(url: string, gzip: boolean): Promise<number | null> {
  const r = await run("curl", [
    "-sS",
    "-o",
    "/dev/null",
    "-H",
    `Accept-Encoding: ${gzip ? "gzip" : "identity"}`,
    "-w",
    "%{size_download}",
    url,
  ]);
  return r.ok && /^\d+$/.test(r.out) ? Number(r.out) : null;
}

export async function machineInfo(nodeExporterPath: string): Promise<Record<string, string>> {
  const cpuinfo = readTextOr("/proc/cpuinfo");
  const model = cpuModelName(cpuinfo) || /^(?:Hardware|CPU part)\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ||
    "unknown";
  const nproc = await run("nproc", []);
  const memTotal = memTotalKiB();
  const ne = await run(nodeExporterPath, ["--version"]);
  const ours = await run(BINARY, ["--version"]);
  const built = await Deno.stat(BINARY).then((st) => st.mtime?.toISOString() ?? "?", () => "?");
  const kind = (await startsWithShebang(BINARY)) ? "deno bundle + launcher" : "deno compile";
  const head = await run("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]);
  const dirty = await run("git", ["-C", ROOT, "status", "--porcelain", "--untracked-files=no"]);
  const load = loadavg3();
  return {
    date: new Date().toISOString(),
    nproc: nproc.ok ? nproc.out : String(navigator.hardwareConcurrency),
    kernel: Deno.osRelease(),
    cpu: model.trim(),
    memory: memTotal ? `${(Number(memTotal) / 1024 / 1024).toFixed(1)} GiB` : "unknown",
    "loadavg at start": load,
    "bench deno": Deno.version.deno,
    "huatuo-bamai": ours.ok ? ours.out.split("\n")[0] : `unknown (${ours.out})`,
    "huatuo-bamai build": `${kind}, built ${built}, git ${head.ok ? head.out : "?"}${
      dirty.ok && dirty.out !== "" ? " + uncommitted changes" : ""
    }`,
    "node_exporter": (ne.out.split("\n")[0] ?? "unknown").trim(),
    "node_exporter path": nodeExporterPath,
  };
}

export async function startsWithShebang(path: string): Promise<boolean> {
  try {
    using f = await Deno.open(path);
    const head = new Uint8Array(2);
    const n = await f.read(head);
    return n === 2 && head[0] === 0x23 && head[1] === 0x21;
  } catch {
    return false;
  }
}

export async function clockTick(): Promise<number> {
  const r = await run("getconf", ["CLK_TCK"]);
  const v = Number(r.out);
  if (!r.ok || !Number.isInteger(v) || v <= 0) throw new Error(`getconf CLK_TCK failed: ${r.out}`);
  return v;
}
