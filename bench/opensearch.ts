// Storage.ES benchmark: bulk throughput through our outbox + shipper vs a plain-fetch baseline, and the
// recovery time after a store outage, against a real OpenSearch 2.19.6 node (integration/opensearch.ts).
//
//   deno run -A bench/opensearch.ts [--docs N] [--batch N] [--rounds N] [--recovery-docs N] [--json FILE]
//
// Throughput: N realistic event documents (an oom document, ~0.6 KB) are queued in a fresh outbox, then the
// shipper (src/storage/opensearch.ts: the opensearch-project client, per-item results, cursor persisted
// per batch) drains it into a fresh index; time = shipper start → queued 0. The baseline sends the same
// documents with the same batch size, one request in flight, as pre-built _bulk bodies with fetch() into
// another fresh index (no outbox, no per-item handling, no client library) and only checks `errors`.
// Indices are created before timing; one untimed round warms both sides and the node up. Rounds alternate
// which side goes first; the ratio is the median of the rounds' ours/baseline (goal >= 0.8: the outbox and
// the client cost at most a fifth of the raw bulk rate). A second table repeats this against a store that
// answers at once without indexing (in another process): the client side's own cost per document.
//
// Recovery: the node is stopped, N documents are queued while the shipper fails (backoff), the node is
// started again; reported: time from the node answering again to the first document acknowledged and to
// queued == 0 (the first is dominated by the backoff in progress, capped at 60 s; the second adds the drain).
//
// Exit status: 0 when the benchmark ran, 1 when something failed, 2 on bad flags. The node is always
// destroyed.

import { startOpenSearch } from "../integration/opensearch.ts";
import { createLogger } from "../src/log/logger.ts";
import { type EventDocument, newDocument } from "../src/core/document.ts";
import { bulkBody, type EsSettings, OpenSearchTransport, Shipper } from "../src/storage/opensearch.ts";
import { Outbox } from "../src/storage/outbox.ts";
import {
  cpuModelName,
  fmtNumber,
  markdownTable,
  memTotalKiB,
  numberFlag,
  parseFlags,
  parseOrExit,
  sleep,
  stringFlag,
} from "./common.ts";

interface Options {
  docs: number;
  batch: number;
  rounds: number;
  recoveryDocs: number;
  json?: string;
}

const USAGE =
  "usage: deno run -A bench/opensearch.ts [--docs N] [--batch N] [--rounds N] [--recovery-docs N]\n" +
  "         [--json FILE]";

function parseOptions(args: string[]): Options {
  const opts: Options = { docs: 20_000, batch: 500, rounds: 5, recoveryDocs: 10_000 };
  parseFlags(args, USAGE, (flag, value) => {
    switch (flag) {
      case "--docs":
        opts.docs = numberFlag(flag, value(), 1, true);
        break;
      case "--batch":
        opts.batch = numberFlag(flag, value(), 1, true);
        break;
      case "--rounds":
        opts.rounds = numberFlag(flag, value(), 1, true);
        break;
      case "--recovery-docs":
        opts.recoveryDocs = numberFlag(flag, value(), 1, true);
        break;
      case "--json":
        opts.json = stringFlag(flag, value(), "a file name");
        break;
      default:
        return false;
    }
    return true;
  });
  return opts;
}

// ---------------------------------------------------------------- documents

const enc = new TextEncoder();

/** An oom event document as the tracer writes it (fields of the seed's oom tracer_data). */
function oomDocument(i: number): EventDocument {
  return newDocument({
    hostname: "bench-host",
    region: "bench",
    tracerName: "oom",
    tracerType: "auto",
    container: {
      container_id: "3f1c2a9b8e7d",
      container_hostname: "web-7c9d8f6b5-x2k4q",
      container_host_namespace: "default",
      container_type: "normal",
      container_qos: "burstable",
    },
    data: {
      trigger_process_name: "java",
      trigger_pid: 100_000 + i,
      trigger_memcg_css: "0xffff8a1b2c3d4e00",
      trigger_container_hostname: "web-7c9d8f6b5-x2k4q",
      victim_process_name: "java",
      victim_pid: 100_000 + i,
      victim_memcg_css: "0xffff8a1b2c3d4e00",
      victim_container_hostname: "web-7c9d8f6b5-x2k4q",
      victim_memcg_id: 4026 + (i % 50),
      seq: i,
    },
  });
}

function lines(docs: EventDocument[]): Uint8Array[] {
  return docs.map((d) => enc.encode(JSON.stringify(d) + "\n"));
}

// ---------------------------------------------------------------- the two senders

const silent = createLogger({ level: "Error", write: (l) => console.error(l.trimEnd()) });

function settings(url: string, index: string, batch: number): EsSettings {
  return {
    address: url,
    index,
    username: "admin",
    password: "admin",
    caFile: "",
    insecureSkipVerify: false,
    outboxPath: "",
    outboxMaxBytes: 4 * 1024 * 1024 * 1024,
    bulkSize: batch,
  };
}

async function createIndex(url: string, index: string): Promise<void> {
  const res = await fetch(`${url}/${index}`, { method: "PUT" });
  if (res.status !== 200) throw new Error(`PUT /${index}: HTTP ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

async function count(url: string, index: string): Promise<number> {
  await (await fetch(`${url}/${index}/_refresh`, { method: "POST" })).body?.cancel();
  const res = await fetch(`${url}/${index}/_count`);
  return (await res.json() as { count: number }).count;
}

interface Shipping {
  outbox: Outbox;
  shipper: Shipper;
  dir: string;
  close(): Promise<void>;
}

function shipping(url: string, index: string, batch: number, docs: Uint8Array[]): Shipping {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-bench-outbox-" });
  const s = settings(url, index, batch);
  const outbox = Outbox.open({ dir, maxBytes: s.outboxMaxBytes, log: silent });
  for (const l of docs) outbox.append(l);
  const shipper = new Shipper({
    outbox,
    transport: new OpenSearchTransport(s),
    bulkSize: batch,
    log: silent,
    target: url,
  });
  return {
    outbox,
    shipper,
    dir,
    async close() {
      await shipper.stop(0);
      outbox.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

/** Ours: queued in the outbox first, then timed from shipper start to queued == 0. */
async function runOurs(url: string, index: string, batch: number, docs: Uint8Array[]): Promise<number> {
  const s = shipping(url, index, batch, docs);
  try {
    const t0 = performance.now();
    s.shipper.start();
    while (s.outbox.queuedDocuments > 0) await sleep(1);
    const ms = performance.now() - t0;
    if (s.shipper.stats.sent !== docs.length) {
      throw new Error(
        `ours: sent ${s.shipper.stats.sent} of ${docs.length} (failed ${s.shipper.stats.failed})`,
      );
    }
    return ms;
  } finally {
    await s.close();
  }
}

/** Baseline: pre-built _bulk bodies, fetch(), one request in flight, only `errors` checked. */
async function runBaseline(
  url: string,
  index: string,
  batch: number,
  docs: EventDocument[],
): Promise<number> {
  const bodies: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < docs.length; i += batch) {
    bodies.push(
      bulkBody(
        docs.slice(i, i + batch).map((d) => ({ id: d.tracer_id, line: enc.encode(JSON.stringify(d)) })),
      ),
    );
  }
  const auth = `Basic ${btoa("admin:admin")}`;
  const t0 = performance.now();
  for (const body of bodies) {
    const res = await fetch(`${url}/${index}/_bulk`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson", authorization: auth },
      body,
    });
    const answer = await res.json() as { errors?: boolean };
    if (res.status !== 200 || answer.errors !== false) throw new Error(`baseline: HTTP ${res.status}`);
  }
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * A store that answers every bulk at once (201 per item) without indexing: what is left is the client
 * side's own cost, ours vs the baseline's. Runs in a child process so it does not share our event loop.
 */
async function startNullStore(): Promise<{ url: string; stop(): Promise<void> }> {
  const code = `
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: (a) => console.log(a.port) }, async (req) => {
      const url = new URL(req.url);
      if (!url.pathname.endsWith("/_bulk")) {
        return Response.json({ version: { distribution: "null", number: "0" } });
      }
      const body = new Uint8Array(await req.arrayBuffer());
      const ids = [];
      let start = 0;
      for (let i = 0, line = 0; i < body.length; i++) {
        if (body[i] !== 10) continue;
        if (line++ % 2 === 0) ids.push(JSON.parse(new TextDecoder().decode(body.subarray(start, i))).index._id);
        start = i + 1;
      }
      const items = ids.map((id) => ({ index: { _id: id, status: 201 } }));
      return Response.json({ took: 0, errors: false, items });
    });`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("null store exited");
    out += value;
  }
  reader.releaseLock();
  return {
    url: `http://127.0.0.1:${out.trim()}`,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    },
  };
}

interface Throughput {
  ours: number[];
  baseline: number[];
  ratio: number;
}

/** Rounds of ours vs baseline into fresh indices, alternating which goes first; prints a table. */
async function throughput(url: string, opts: Options, verify: boolean): Promise<Throughput> {
  // Warm-up (JIT on both sides, the node's indexing paths), untimed: one full round.
  const warm = Array.from({ length: opts.docs }, (_, i) => oomDocument(i));
  await createIndex(url, "bench_warm_ours");
  await createIndex(url, "bench_warm_base");
  await runOurs(url, "bench_warm_ours", opts.batch, lines(warm));
  await runBaseline(url, "bench_warm_base", opts.batch, warm);

  const rows: string[][] = [];
  const ours: number[] = [];
  const baseline: number[] = [];
  const bytes = lines([oomDocument(0)])[0].length;
  for (let r = 0; r < opts.rounds; r++) {
    const docs = Array.from({ length: opts.docs }, (_, i) => oomDocument(i));
    const oursIndex = `bench_ours_${r}`;
    const baseIndex = `bench_base_${r}`;
    await createIndex(url, oursIndex);
    await createIndex(url, baseIndex);
    const oursFirst = r % 2 === 0;
    let oursMs = 0;
    let baseMs = 0;
    for (const side of oursFirst ? ["ours", "base"] : ["base", "ours"]) {
      if (side === "ours") oursMs = await runOurs(url, oursIndex, opts.batch, lines(docs));
      else baseMs = await runBaseline(url, baseIndex, opts.batch, docs);
    }
    if (verify) {
      const [co, cb] = [await count(url, oursIndex), await count(url, baseIndex)];
      if (co !== opts.docs || cb !== opts.docs) throw new Error(`counts: ours ${co}, baseline ${cb}`);
    }
    const o = opts.docs / (oursMs / 1000);
    const b = opts.docs / (baseMs / 1000);
    ours.push(o);
    baseline.push(b);
    rows.push([
      String(r + 1),
      oursFirst ? "ours" : "baseline",
      fmtNumber(o, 0),
      fmtNumber(b, 0),
      fmtNumber(o / b, 3),
    ]);
  }
  console.log(markdownTable(["round", "first", "ours docs/s", "baseline docs/s", "ratio"], rows, 2));
  // Each round pairs both sides under the same conditions: the headline is the median of the rounds' ratios.
  const ratio = median(ours.map((o, i) => o / baseline[i]));
  console.log(
    `median: ours ${fmtNumber(median(ours), 0)} docs/s, baseline ${fmtNumber(median(baseline), 0)} docs/s, ` +
      `ratio (median of rounds) ${fmtNumber(ratio, 3)} (document ~${bytes} B; ours ${
        fmtNumber(1e6 / median(ours), 1)
      } µs/doc, baseline ${fmtNumber(1e6 / median(baseline), 1)} µs/doc)`,
  );
  return { ours, baseline, ratio };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseOrExit(parseOptions, Deno.args, USAGE, "bench/opensearch.ts: ");
  console.log(
    `machine: ${cpuModelName() ?? "?"}, ${navigator.hardwareConcurrency} CPUs, ${memTotalKiB() ?? "?"} kB`,
  );
  console.log(`date: ${new Date().toISOString()}, deno ${Deno.version.deno}`);
  const node = await startOpenSearch();
  try {
    const version = await (await fetch(node.url)).json() as { version: { number: string } };
    console.log(
      `OpenSearch ${version.version.number} at ${node.url} (single node, ${
        Deno.env.get("HUATUO_OPENSEARCH_HEAP") ?? "512m"
      } heap)`,
    );
    console.log(`throughput: ${opts.docs} documents, batch ${opts.batch}, ${opts.rounds} rounds\n`);

    const real = await throughput(node.url, opts, true);
    console.log(
      `goal (ours >= 0.8 x baseline against the real node): ${real.ratio >= 0.8 ? "MET" : "NOT MET"}`,
    );

    console.log(`\nclient side only (a store that answers at once without indexing, in another process):`);
    const nullStore = await startNullStore();
    let client: Throughput;
    try {
      client = await throughput(nullStore.url, opts, false);
    } finally {
      await nullStore.stop();
    }

    // Recovery after an outage.
    console.log(`\nrecovery: ${opts.recoveryDocs} documents queued while the node is down`);
    const recIndex = "bench_recovery";
    await createIndex(node.url, recIndex);
    const s = shipping(node.url, recIndex, opts.batch, []);
    let result: Record<string, number>;
    try {
      s.shipper.start();
      await sleep(200);
      const tStop = performance.now();
      await node.stop();
      const stopMs = performance.now() - tStop;
      const docs = lines(Array.from({ length: opts.recoveryDocs }, (_, i) => oomDocument(i)));
      const tAppend = performance.now();
      for (const l of docs) s.outbox.append(l);
      const appendMs = performance.now() - tAppend;
      const tStart = performance.now();
      await node.start();
      const up = performance.now();
      let firstMs = NaN;
      while (s.outbox.queuedDocuments > 0) {
        if (Number.isNaN(firstMs) && s.shipper.stats.sent > 0) firstMs = performance.now() - up;
        await sleep(5);
      }
      const drainedMs = performance.now() - up;
      if (Number.isNaN(firstMs)) firstMs = drainedMs;
      const n = await count(node.url, recIndex);
      if (n !== opts.recoveryDocs) {
        throw new Error(`recovery: ${n} of ${opts.recoveryDocs} documents in the index`);
      }
      result = {
        node_stop_ms: stopMs,
        append_us_per_doc: appendMs * 1000 / opts.recoveryDocs,
        node_start_ms: up - tStart,
        first_ack_ms: firstMs,
        drained_ms: drainedMs,
        retries: s.shipper.stats.retries,
      };
      console.log(markdownTable(["measure", "value"], [
        ["outbox append while down (µs/doc)", fmtNumber(result.append_us_per_doc, 2)],
        ["node restart to healthy (ms)", fmtNumber(result.node_start_ms, 0)],
        ["node healthy → first document acknowledged (ms)", fmtNumber(firstMs, 0)],
        ["node healthy → queued 0 (ms)", fmtNumber(drainedMs, 0)],
        ["failed attempts during the outage", String(s.shipper.stats.retries)],
      ]));
    } finally {
      await s.close();
    }
    if (opts.json) {
      Deno.writeTextFileSync(
        opts.json,
        JSON.stringify(
          { docs: opts.docs, batch: opts.batch, real, client, recovery: result },
          null,
          2,
        ) + "\n",
      );
    }
    return 0;
  } finally {
    await node.destroy();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (err) {
    console.error(`bench/opensearch.ts: ${err instanceof Error ? err.stack ?? err.message : err}`);
    Deno.exit(1);
  }
}
