// Scrape benchmark: huatuo-bamai vs prometheus-node-exporter on the live host.
//
//   deno run -A bench/scrape.ts [--scrapes N] [--warmup N] [--gzip] [--json FILE]
//                               [--node-exporter PATH] [--blacklist COLLECTOR,...]
//
// Starts the built agent (_output/bin/huatuo-bamai, shipped config on a free
// 127.0.0.1 port, --disable-storage --disable-kubelet) and node_exporter (its
// default collectors) on another free port, waits until both answer, warms
// both up, then scrapes them alternately and sequentially (one request in
// flight at a time; the order inside each pair flips every pair) so both see
// the same machine conditions. Each sample is the wall time of one full
// request + body read. Reports latency, series count, latency per series,
// RSS/peak RSS, CPU seconds per scrape and response size, and the ratios
// ours/node_exporter against the goals.
//
// By default the client asks for an uncompressed body (Accept-Encoding:
// identity) so the numbers are collection + rendering + transfer; --gzip asks
// for gzip as Prometheus does (a server that supports it then compresses). --blacklist adds
// collectors to the agent's BlackList, to measure what one collector costs; it
// is a diagnostic, the headline numbers use the shipped config unchanged.
//
// Exit status: 0 when the benchmark ran (whether or not the goals are met),
// 1 when something failed to run, 2 on bad flags. Both processes are always
// stopped, including on error and on SIGINT/SIGTERM.

import { BINARY, confWithPort, freePort, ROOT, type RunningAgent, startAgent } from "../integration/agent.ts";
import { parseSeriesLine } from "../integration/prom.ts";
import {
  cpuModelName,
  fmtNumber,
  loadavg3,
  markdownTable,
  memTotalKiB,
  numberFlag,
  parseFlags,
  parseOrExit,
  percentile,
  procCpuTicks,
  readTextOr,
  sleep,
  statusKiB,
  stringFlag,
  UsageError,
} from "./common.ts";

// ---------------------------------------------------------------- options

interface Options {
  scrapes: number;
  warmup: number;
  gzip: boolean;
  json?: string;
  nodeExporter?: string;
  /** Diagnostic: collectors added to the agent's BlackList (the shipped config is used otherwise). */
  blacklist: string[];
}

const USAGE = "usage: deno run -A bench/scrape.ts [--scrapes N] [--warmup N] [--gzip] [--json FILE]\n" +
  "         [--node-exporter PATH] [--blacklist COLLECTOR,...]";

function parseOptions(args: string[]): Options {
  const opts: Options = { scrapes: 300, warmup: 20, gzip: false, blacklist: [] };
  parseFlags(args, USAGE, (flag, value) => {
    switch (flag) {
      case "--scrapes":
        opts.scrapes = numberFlag(flag, value(), 1, true);
        break;
      case "--warmup":
        opts.warmup = numberFlag(flag, value(), 0, true);
        break;
      case "--gzip":
        opts.gzip = true;
        break;
      case "--json":
        opts.json = stringFlag(flag, value(), "a file name");
        break;
      case "--node-exporter":
        opts.nodeExporter = stringFlag(flag, value(), "a path");
        break;
      case "--blacklist": {
        const v = value();
        if (!v || !/^[a-z0-9_]+(,[a-z0-9_]+)*$/.test(v)) {
          throw new UsageError("--blacklist needs collector names, e.g. arp,netstat");
        }
        opts.blacklist.push(...v.split(","));
        break;
      }
      default:
        return false;
    }
    return true;
  });
  return opts;
}

// ---------------------------------------------------------------- small helpers

const dec = new TextDecoder();

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return { ok: o.success, out: (dec.decode(o.stdout) + dec.decode(o.stderr)).trim() };
  } catch (err) {
    return { ok: false, out: String(err) };
  }
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const st = await Deno.stat(path);
    return st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

async function findNodeExporter(explicit?: string): Promise<string> {
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

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

interface ProcStat {
  cpuTicks: number;
  rssKiB: number;
  hwmKiB: number;
}

function procStat(pid: number): ProcStat {
  const cpuTicks = procCpuTicks(pid);
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  if (!Number.isFinite(cpuTicks)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return { cpuTicks, rssKiB: statusKiB(pid, status, "VmRSS"), hwmKiB: statusKiB(pid, status, "VmHWM") };
}

// ---------------------------------------------------------------- processes

/** A process we started: stopped exactly once, by its own handle. */
interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly metricsUrl: string;
  readonly exited: () => boolean;
  readonly output: () => string;
  stop(): Promise<void>;
  /** Synchronous last resort for signal handlers. */
  kill(): void;
}

const STOP_GRACE_MS = 5_000;

/** Waits for `done` (the caller has sent SIGTERM); SIGKILLs the child after a grace period. */
async function awaitStop(child: Deno.ChildProcess, done: Promise<unknown>): Promise<void> {
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
function addToBlackList(conf: string, extra: string[]): string {
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

async function startOurs(blacklist: string[]): Promise<Proc> {
  if (!(await isExecutable(BINARY))) throw new Error(`${BINARY} is missing: run ./build.sh first`);
  const agent: RunningAgent = await startAgent({
    args: ["--region", "bench", "--disable-storage", "--disable-kubelet"],
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

async function startNodeExporter(path: string): Promise<Proc> {
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

async function waitAnswers(p: Proc, timeoutMs: number): Promise<void> {
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

const SCRAPE_TIMEOUT_MS = 30_000;

interface Target {
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

function newTarget(proc: Proc, durationMetric: string, successMetric: string): Target {
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
async function scrapeOnce(t: Target, gzip: boolean): Promise<{ ms: number; body: Uint8Array }> {
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
function digest(t: Target, text: string, accumulate: boolean): void {
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

// ---------------------------------------------------------------- reporting

const fmt = (x: number, digits = 2) => fmtNumber(x, digits);

const table = markdownTable;

interface Summary {
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

function summarize(t: Target, n: number, clkTck: number, wireBytes: number | null): Summary {
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
async function wireSize(url: string, gzip: boolean): Promise<number | null> {
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

// ---------------------------------------------------------------- main

async function machineInfo(nodeExporterPath: string): Promise<Record<string, string>> {
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

async function startsWithShebang(path: string): Promise<boolean> {
  try {
    using f = await Deno.open(path);
    const head = new Uint8Array(2);
    const n = await f.read(head);
    return n === 2 && head[0] === 0x23 && head[1] === 0x21;
  } catch {
    return false;
  }
}

async function clockTick(): Promise<number> {
  const r = await run("getconf", ["CLK_TCK"]);
  const v = Number(r.out);
  if (!r.ok || !Number.isInteger(v) || v <= 0) throw new Error(`getconf CLK_TCK failed: ${r.out}`);
  return v;
}

async function bench(opts: Options): Promise<void> {
  const nePath = await findNodeExporter(opts.nodeExporter);
  if (!(await isExecutable(BINARY))) throw new Error(`${BINARY} is missing: run ./build.sh first`);
  const clkTck = await clockTick();
  const info = await machineInfo(nePath);

  const procs: Proc[] = [];
  const onSignal = () => {
    for (const p of procs) p.kill();
    Deno.exit(130);
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    const [oursProc, neProc] = await Promise.allSettled([
      startOurs(opts.blacklist),
      startNodeExporter(nePath),
    ]);
    for (const r of [oursProc, neProc]) if (r.status === "fulfilled") procs.push(r.value);
    for (const r of [oursProc, neProc]) if (r.status === "rejected") throw r.reason;
    const [ours, ne] = procs;
    console.error(`started huatuo-bamai pid ${ours.pid} (${ours.metricsUrl})`);
    console.error(`started node_exporter pid ${ne.pid} (${ne.metricsUrl})`);

    const targets = [
      newTarget(
        ours,
        "huatuo_bamai_scrape_collector_duration_seconds",
        "huatuo_bamai_scrape_collector_success",
      ),
      newTarget(ne, "node_scrape_collector_duration_seconds", "node_scrape_collector_success"),
    ];
    const check = () => {
      for (const t of targets) {
        if (t.proc.exited()) throw new Error(`${t.proc.name} exited during the run:\n${t.proc.output()}`);
      }
    };

    console.error(`warming up: ${opts.warmup} scrapes each`);
    for (let i = 0; i < opts.warmup; i++) {
      for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
        const { body } = await scrapeOnce(t, opts.gzip);
        digest(t, dec.decode(body), false);
      }
    }
    check();
    for (const t of targets) {
      const s = procStat(t.proc.pid);
      t.rssBeforeKiB = s.rssKiB;
      t.cpuTicksBefore = s.cpuTicks;
    }

    console.error(`measuring: ${opts.scrapes} scrapes each, alternating, sequential`);
    for (let i = 0; i < opts.scrapes; i++) {
      for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
        const { ms, body } = await scrapeOnce(t, opts.gzip);
        t.latenciesMs.push(ms);
        t.bodyBytes = body.byteLength;
        digest(t, dec.decode(body), true);
      }
    }
    for (const t of targets) {
      const s = procStat(t.proc.pid);
      t.cpuTicksAfter = s.cpuTicks;
      t.rss = s;
    }
    check();
    const wires = await Promise.all(targets.map((t) => wireSize(t.proc.metricsUrl, opts.gzip)));
    info["loadavg at end"] = loadavg3();

    const [a, b] = targets.map((t, i) => summarize(t, opts.scrapes, clkTck, wires[i]));
    report(opts, info, clkTck, a, b);
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    await Promise.allSettled(procs.map((p) => p.stop()));
  }
}

function report(opts: Options, info: Record<string, string>, clkTck: number, a: Summary, b: Summary): void {
  const out: string[] = [];
  const cmd = `deno run -A bench/scrape.ts --scrapes ${opts.scrapes} --warmup ${opts.warmup}` +
    (opts.gzip ? " --gzip" : "") + (opts.blacklist.length ? ` --blacklist ${opts.blacklist.join(",")}` : "");
  out.push("## Scrape: huatuo-bamai vs node_exporter", "");
  out.push(`command: ${cmd}`);
  for (const [k, v] of Object.entries(info)) out.push(`${k}: ${v}`);
  out.push(`clock tick: ${clkTck} Hz (CPU resolution ${fmt(1000 / clkTck, 0)} ms over the whole run)`);
  out.push(
    `client: one request in flight, alternating targets, Accept-Encoding: ${opts.gzip ? "gzip" : "identity"}`,
    "",
  );
  if (opts.blacklist.length) {
    out.push(
      `DIAGNOSTIC RUN: agent BlackList += ${opts.blacklist.join(", ")} (not the shipped config)`,
      "",
    );
  }

  const ratio = (x: number, y: number) => fmt(x / y, 2);
  const mb = (x: number) => fmt(x, 1);
  const wire = (s: Summary) => (s.wireBytes === null ? "n/a" : s.wireBytes.toLocaleString("en-US"));
  out.push(table(["", a.name, b.name, "ours/node_exporter"], [
    ["p50 latency (ms)", fmt(a.p50Ms), fmt(b.p50Ms), ratio(a.p50Ms, b.p50Ms)],
    ["p90 latency (ms)", fmt(a.p90Ms), fmt(b.p90Ms), ratio(a.p90Ms, b.p90Ms)],
    ["p99 latency (ms)", fmt(a.p99Ms), fmt(b.p99Ms), ratio(a.p99Ms, b.p99Ms)],
    ["mean latency (ms)", fmt(a.meanMs), fmt(b.meanMs), ratio(a.meanMs, b.meanMs)],
    ["min / max (ms)", `${fmt(a.minMs)} / ${fmt(a.maxMs)}`, `${fmt(b.minMs)} / ${fmt(b.maxMs)}`, ""],
    ["series (sample lines)", String(a.series), String(b.series), ratio(a.series, b.series)],
    [
      "p50 latency per series (µs)",
      fmt(a.usPerSeries),
      fmt(b.usPerSeries),
      ratio(a.usPerSeries, b.usPerSeries),
    ],
    [
      "response body (bytes)",
      a.bodyBytes.toLocaleString("en-US"),
      b.bodyBytes.toLocaleString("en-US"),
      ratio(a.bodyBytes, b.bodyBytes),
    ],
    [`on the wire, ${opts.gzip ? "gzip" : "identity"} (bytes)`, wire(a), wire(b), ""],
    ["RSS after warmup (MB)", mb(a.rssBeforeMB), mb(b.rssBeforeMB), ratio(a.rssBeforeMB, b.rssBeforeMB)],
    ["RSS after run, VmRSS (MB)", mb(a.rssMB), mb(b.rssMB), ratio(a.rssMB, b.rssMB)],
    ["peak RSS, VmHWM (MB)", mb(a.hwmMB), mb(b.hwmMB), ratio(a.hwmMB, b.hwmMB)],
    [
      "CPU per scrape (ms)",
      fmt(a.cpuMsPerScrape),
      fmt(b.cpuMsPerScrape),
      ratio(a.cpuMsPerScrape, b.cpuMsPerScrape),
    ],
    [
      "CPU per series (µs)",
      fmt((a.cpuMsPerScrape * 1000) / a.series),
      fmt((b.cpuMsPerScrape * 1000) / b.series),
      ratio(a.cpuMsPerScrape / a.series, b.cpuMsPerScrape / b.series),
    ],
  ]));
  out.push("");

  const perSeries = a.usPerSeries / b.usPerSeries;
  const goals: [string, boolean, string][] = [
    [
      "per-series scrape latency <= node_exporter's",
      perSeries <= 1,
      `ratio ${fmt(perSeries)} (${fmt(a.usPerSeries)} vs ${fmt(b.usPerSeries)} µs/series)`,
    ],
    ["huatuo-bamai RSS < 80 MB", a.rssMB < 80, `${mb(a.rssMB)} MB after the run (peak ${mb(a.hwmMB)} MB)`],
  ];
  out.push("Ratios ours/node_exporter:");
  out.push(
    `  p50 ${ratio(a.p50Ms, b.p50Ms)}, p99 ${ratio(a.p99Ms, b.p99Ms)}, per-series ${fmt(perSeries)}, ` +
      `RSS ${ratio(a.rssMB, b.rssMB)}, CPU/scrape ${ratio(a.cpuMsPerScrape, b.cpuMsPerScrape)}`,
  );
  out.push("Goals:");
  for (const [g, ok, detail] of goals) out.push(`  [${ok ? "MET   " : "MISSED"}] ${g}: ${detail}`);
  out.push("");

  const collectors = (s: Summary) => {
    out.push(
      `${s.name} collectors (its *_scrape_collector_success series): ${s.collectorsOk.length} ran with ` +
        `success 1, ${s.collectorsFailed.length} ran with success 0`,
      `  success 1: ${s.collectorsOk.join(" ") || "-"}`,
      `  success 0: ${s.collectorsFailed.join(" ") || "-"}`,
      `  slowest (mean self-reported duration, ms; collectors run concurrently): ` +
        s.topCollectorsMs.slice(0, 6).map(([c, ms]) => `${c} ${fmt(ms)}`).join(", "),
    );
  };
  collectors(a);
  collectors(b);
  console.log(out.join("\n"));

  if (opts.json) {
    Deno.writeTextFileSync(
      opts.json,
      JSON.stringify(
        { command: cmd, info, clkTck, scrapes: opts.scrapes, ours: a, nodeExporter: b },
        null,
        2,
      ) + "\n",
    );
    console.error(`wrote ${opts.json}`);
  }
}

if (import.meta.main) {
  const opts = parseOrExit(parseOptions, Deno.args, USAGE, "bench/scrape.ts: ");
  Deno.chdir(ROOT);
  try {
    await bench(opts);
  } catch (err) {
    console.error(`bench/scrape.ts: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
