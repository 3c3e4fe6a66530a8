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

import { BINARY, ROOT } from "../integration/agent.ts";
import {
  clockTick,
  digest,
  findNodeExporter,
  fmtNumber,
  isExecutable,
  loadavg3,
  machineInfo,
  markdownTable,
  newTarget,
  numberFlag,
  parseFlags,
  parseOrExit,
  type Proc,
  procStat,
  scrapeOnce,
  startHuatuo,
  startNodeExporter,
  stringFlag,
  summarize,
  type Summary,
  UsageError,
  wireSize,
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

// ---------------------------------------------------------------- reporting

const fmt = (x: number, digits = 2) => fmtNumber(x, digits);

const table = markdownTable;

// ---------------------------------------------------------------- main

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
      startHuatuo(opts.blacklist),
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
