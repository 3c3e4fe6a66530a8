// Scrape storm: many Prometheus servers (or a misconfigured one) scraping at
// once. Goal (hardening issue): with 50 concurrent scrapers, p99 latency stays
// under 10× the single-scraper p99 measured in the same run; node_exporter
// takes the same storm as the field's reference.
//
//   deno run -A bench/scrape_storm.ts [--scrapers N] [--rounds N] [--single N] [--node-exporter PATH]
//
// For each target: warm up, then `--single` sequential scrapes (the baseline),
// then `--scrapers` clients each scraping back to back `--rounds` times. Every
// request asks for gzip, as Prometheus does. Reports p50/p99 of both phases,
// their ratio, RSS before and after the storm, and the peak.

import {
  findNodeExporter,
  fmtNumber,
  markdownTable,
  newTarget,
  numberFlag,
  parseFlags,
  parseOrExit,
  percentile,
  type Proc,
  procStat,
  scrapeOnce,
  startHuatuo,
  startNodeExporter,
  stringFlag,
  type Target,
} from "./common.ts";

interface Options {
  scrapers: number;
  rounds: number;
  single: number;
  nodeExporter?: string;
}

const USAGE =
  "usage: deno run -A bench/scrape_storm.ts [--scrapers N] [--rounds N] [--single N] [--node-exporter PATH]";

function parse(args: string[]): Options {
  const o: Options = { scrapers: 50, rounds: 20, single: 200 };
  parseFlags(args, USAGE, (flag, value) => {
    switch (flag) {
      case "--scrapers":
        o.scrapers = numberFlag(flag, value(), 1, true);
        return true;
      case "--rounds":
        o.rounds = numberFlag(flag, value(), 1, true);
        return true;
      case "--single":
        o.single = numberFlag(flag, value(), 10, true);
        return true;
      case "--node-exporter":
        o.nodeExporter = stringFlag(flag, value(), "a path");
        return true;
    }
    return false;
  });
  return o;
}

interface Result {
  name: string;
  singleP50: number;
  singleP99: number;
  stormP50: number;
  stormP99: number;
  stormMax: number;
  rssBeforeMB: number;
  rssAfterMB: number;
  peakMB: number;
  scrapesPerSecond: number;
  /** Scrapes answered 503 during the storm. */
  refused: number;
}

async function measure(proc: Proc, o: Options): Promise<Result> {
  const t: Target = newTarget(proc, "", "");
  for (let i = 0; i < 10; i++) await scrapeOnce(t, true);
  const single: number[] = [];
  for (let i = 0; i < o.single; i++) single.push((await scrapeOnce(t, true)).ms);
  const rssBefore = procStat(proc.pid).rssKiB;
  const storm: number[] = [];
  const t0 = performance.now();
  // node_exporter sheds load beyond --web.max-requests (40) with 503: count those, time the rest.
  let refused = 0;
  await Promise.all(Array.from({ length: o.scrapers }, async () => {
    for (let i = 0; i < o.rounds; i++) {
      try {
        storm.push((await scrapeOnce(t, true)).ms);
      } catch (err) {
        if (!/HTTP 503/.test(String(err))) throw err;
        refused++;
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const after = procStat(proc.pid);
  single.sort((a, b) => a - b);
  storm.sort((a, b) => a - b);
  return {
    name: proc.name,
    singleP50: percentile(single, 50),
    singleP99: percentile(single, 99),
    stormP50: percentile(storm, 50),
    stormP99: percentile(storm, 99),
    stormMax: storm[storm.length - 1],
    rssBeforeMB: rssBefore / 1024,
    rssAfterMB: after.rssKiB / 1024,
    peakMB: after.hwmKiB / 1024,
    scrapesPerSecond: storm.length / wall,
    refused,
  };
}

async function main(): Promise<void> {
  const o = parseOrExit(parse, Deno.args, USAGE);
  const nePath = await findNodeExporter(o.nodeExporter);
  const results: Result[] = [];
  for (const start of [() => startHuatuo([]), () => startNodeExporter(nePath)]) {
    const proc = await start();
    try {
      results.push(await measure(proc, o));
    } finally {
      await proc.stop();
    }
  }
  const f = (x: number, d = 1) => fmtNumber(x, d);
  console.log(
    `\n${o.scrapers} concurrent scrapers × ${o.rounds} scrapes each, baseline ${o.single} sequential scrapes, gzip\n`,
  );
  console.log(markdownTable(
    [
      "",
      "single p50 (ms)",
      "single p99 (ms)",
      "storm p50 (ms)",
      "storm p99 (ms)",
      "storm max (ms)",
      "storm p99 / single p99",
      "scrapes/s in storm",
      "503s in storm",
      "RSS before → after (MB)",
      "peak RSS (MB)",
    ],
    results.map((r) => [
      r.name,
      f(r.singleP50),
      f(r.singleP99),
      f(r.stormP50),
      f(r.stormP99),
      f(r.stormMax),
      f(r.stormP99 / r.singleP99, 2),
      f(r.scrapesPerSecond, 0),
      String(r.refused),
      `${f(r.rssBeforeMB)} → ${f(r.rssAfterMB)}`,
      f(r.peakMB),
    ]),
  ));
  const ours = results[0];
  const ratio = ours.stormP99 / ours.singleP99;
  console.log(
    `\ngoal: huatuo-bamai storm p99 < 10× its single-scraper p99: ${f(ratio, 2)}× — ${
      ratio < 10 ? "met" : "MISSED"
    }`,
  );
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error(`scrape_storm: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
