// Storage.ES end to end: the agent (built binary; HUATUO_IT_SOURCE=1 for source) ships real kernel events
// (OOM kills in a memory-limited v1 cgroup) to a real OpenSearch 2.19.6 node (integration/opensearch.ts):
//   1. an OOM kill reaches OpenSearch within 1 s, every common field, _id = tracer_id;
//   2. through a node outage and an agent restart during it, every document arrives exactly once
//      (ids in OpenSearch == tracer_ids of the local files) and the metrics settle (queued 0, sent == total);
//   3. over https through a TLS reverse proxy in front of the node: the right CAFile works, a wrong one fails
//      with a clear log line while the document stays queued (and arrives after a restart with the right
//      one), InsecureSkipVerify works with a warning.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import type { EventDocument } from "../src/core/document.ts";
import { isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { type Cleanup, type MemCgroup, memoryCgroup, sleep, withCleanup } from "./load.ts";
import { openSearchAvailable, type OpenSearchNode, startOpenSearch } from "./opensearch.ts";
import { parseSeriesLine } from "./prom.ts";

const memcgV1 = (() => {
  try {
    return Deno.statSync("/sys/fs/cgroup/memory/memory.limit_in_bytes").isFile;
  } catch {
    return false;
  }
})();
const skipReason = !isRoot()
  ? "needs root (BPF, cgroups)"
  : !memcgV1
  ? "needs the cgroup v1 memory controller"
  : await openSearchAvailable();
if (skipReason) console.warn(`storage integration tests skipped: ${skipReason}`);
const ignore = skipReason !== undefined;

const dec = new TextDecoder();
const COMMON_FIELDS = [
  "hostname",
  "region",
  "uploaded_time",
  "time",
  "tracer_name",
  "tracer_id",
  "tracer_time",
  "tracer_type",
  "tracer_data",
];

// ---------------------------------------------------------------- helpers

interface EsConf {
  local: string;
  address: string;
  index: string;
  extra?: string;
}

/** Only what the test needs; metrics come from the fixtures, events from the real kernel. */
function esConf(c: EsConf): (port: number) => string {
  return (port) =>
    [
      "[Storage.ES]",
      `Address = "${c.address}"`,
      `Index = "${c.index}"`,
      'Username = "admin"',
      'Password = "admin"',
      c.extra ?? "",
      "[Storage.LocalFile]",
      `Path = "${c.local}"`,
      "[APIServer]",
      `TCPAddr = "127.0.0.1:${port}"`,
      "",
    ].join("\n");
}

async function agentWith(c: Cleanup, conf: EsConf): Promise<RunningAgent> {
  const agent = await startAgent({
    args: ["--region", "dev", "--procfs-prefix", "fixtures"],
    conf: esConf(conf),
  });
  c.defer("stop agent", () => agent.stop());
  return agent;
}

function localTemp(c: Cleanup): string {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-it-storage-local-" });
  c.defer(`remove ${dir}`, () => Deno.removeSync(dir, { recursive: true }));
  return dir;
}

async function node(c: Cleanup): Promise<OpenSearchNode> {
  const n = await startOpenSearch();
  c.defer("destroy OpenSearch", () => n.destroy());
  return n;
}

/** Every document of the local files (the .es-outbox directory is not one of them). */
function localDocs(dir: string): EventDocument[] {
  const docs: EventDocument[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile || e.name.startsWith(".")) continue;
    for (const line of Deno.readTextFileSync(`${dir}/${e.name}`).split("\n")) {
      if (line !== "") docs.push(JSON.parse(line));
    }
  }
  return docs;
}

/** The values of a metric's series (summed: host/region labels only). */
async function metric(agent: RunningAgent, name: string): Promise<number | undefined> {
  const text = await scrape(agent);
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    sum = (sum ?? 0) + parseSeriesLine(line).value;
  }
  return sum;
}

/** Polls `cond`; on timeout the error carries `detail()` (e.g. the agent's log). */
async function waitFor(
  what: string,
  cond: () => Promise<boolean> | boolean,
  ms: number,
  every = 25,
  detail: () => string = () => "",
) {
  const deadline = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}\n${detail()}`);
    }
    await sleep(every);
  }
}

/** A process that joins `cg` and allocates until the memcg OOM killer kills it. */
async function oomKill(cg: MemCgroup): Promise<{ pid: number; killedAt: number }> {
  const victim = new Deno.Command("sh", {
    args: ["-c", `echo $$ > ${cg.path}/cgroup.procs && exec tail /dev/zero`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const status = await victim.status;
  const killedAt = performance.now();
  assertEquals(status.signal, "SIGKILL", "the victim is killed by the OOM killer");
  return { pid: victim.pid, killedAt };
}

/** The local document of the OOM whose victim was `pid`. */
async function oomDoc(local: string, pid: number, ms = 5000): Promise<EventDocument> {
  let doc: EventDocument | undefined;
  await waitFor(
    `oom document for victim ${pid}`,
    () => {
      try {
        doc = localDocs(local).find((d) => d.tracer_name === "oom" && d.tracer_data.victim_pid === pid);
      } catch { /* a line being written */ }
      return doc !== undefined;
    },
    ms,
    5,
  );
  return doc!;
}

interface EsGet {
  found: boolean;
  _id: string;
  _index: string;
  _version?: number;
  _source?: Record<string, unknown>;
}

/** The realtime get API: sees a document as soon as it is indexed, refresh or not. */
async function esGet(n: OpenSearchNode, index: string, id: string): Promise<EsGet> {
  const res = await fetch(`${n.url}/${index}/_doc/${id}`);
  const body = await res.json() as EsGet;
  // A missing index answers 404 with an error instead of found: false.
  return { ...body, found: body.found === true };
}

/** Every _id of the index, after a refresh. */
async function esIds(n: OpenSearchNode, index: string): Promise<string[]> {
  const r = await fetch(`${n.url}/${index}/_refresh`, { method: "POST" });
  await r.body?.cancel();
  const res = await fetch(`${n.url}/${index}/_search`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ size: 10_000, _source: false, query: { match_all: {} } }),
  });
  const body = await res.json() as { hits: { hits: { _id: string }[] } };
  return body.hits.hits.map((h) => h._id);
}

async function esCount(n: OpenSearchNode, index: string): Promise<number> {
  const res = await fetch(`${n.url}/${index}/_count`);
  return (await res.json() as { count: number }).count;
}

// ---------------------------------------------------------------- 1. one kernel event

Deno.test({
  name: "storage: a real OOM kill reaches OpenSearch within 1 s with every common field and _id = tracer_id",
  ignore,
  async fn() {
    await withCleanup(async (c) => {
      const os = await node(c);
      const local = localTemp(c);
      const index = "huatuo_it_storage_oom";
      const agent = await agentWith(c, { local, address: os.url, index });
      await waitFor(
        "storage_es_up 1",
        async () => await metric(agent, "huatuo_bamai_storage_es_up") === 1,
        15_000,
      );
      assertMatch(
        agent.output(),
        /storage: Elasticsearch\/OpenSearch enabled" address=http:\/\/127.0.0.1:\d+ index=huatuo_it_storage_oom/,
      );

      const cg = memoryCgroup(c, "huatuo-it-storage-oom", 32 * 1024 * 1024);
      const { pid, killedAt } = await oomKill(cg);
      const doc = await oomDoc(local, pid);
      const localMs = performance.now() - killedAt;
      let got: EsGet | undefined;
      await waitFor(
        "the document in OpenSearch",
        async () => (got = await esGet(os, index, doc.tracer_id)).found,
        10_000,
        10,
      );
      const ms = performance.now() - killedAt;
      console.log(`oom kill → local file ${localMs.toFixed(0)} ms → OpenSearch document ${ms.toFixed(0)} ms`);
      assert(got);
      assertEquals(got._id, doc.tracer_id, "_id = tracer_id");
      assertEquals(got._index, index);
      for (const f of COMMON_FIELDS) assert(got._source?.[f] !== undefined, `field ${f} in OpenSearch`);
      assertEquals(
        got._source,
        doc as unknown as Record<string, unknown>,
        "the same document as the local file",
      );
      assertEquals(got._source?.region, "dev");
      assertEquals((got._source?.tracer_data as Record<string, unknown>).victim_pid, pid);
      assert(ms < 1000, `document in OpenSearch ${ms.toFixed(0)} ms after the kill`);
      assertEquals(await metric(agent, "huatuo_bamai_storage_es_queued_documents"), 0);
      assert((await metric(agent, "huatuo_bamai_storage_es_sent_total"))! >= 1);
    });
  },
});

// ---------------------------------------------------------------- 2. outage + restart

Deno.test({
  name: "storage: through a node outage and an agent restart during it, every document arrives exactly once",
  ignore,
  async fn() {
    await withCleanup(async (c) => {
      const os = await node(c);
      const local = localTemp(c);
      const index = "huatuo_it_storage_outage";
      const conf = { local, address: os.url, index };
      const cg = memoryCgroup(c, "huatuo-it-storage-outage", 32 * 1024 * 1024);
      const kill = async (n: number) => {
        for (let i = 0; i < n; i++) await oomDoc(local, (await oomKill(cg)).pid);
      };

      const a1 = await agentWith(c, conf);
      await waitFor("up", async () => await metric(a1, "huatuo_bamai_storage_es_up") === 1, 15_000);
      await kill(2);
      await waitFor(
        "first documents sent",
        async () =>
          await metric(a1, "huatuo_bamai_storage_es_queued_documents") === 0 &&
          (await metric(a1, "huatuo_bamai_storage_es_sent_total"))! >= 2,
        10_000,
      );

      // Outage: the node stops while events keep coming.
      await os.stop();
      await kill(3);
      await waitFor(
        "queued during the outage",
        async () => (await metric(a1, "huatuo_bamai_storage_es_queued_documents"))! >= 3,
        10_000,
      );
      await waitFor("up 0", async () => await metric(a1, "huatuo_bamai_storage_es_up") === 0, 30_000);
      const sent1 = (await metric(a1, "huatuo_bamai_storage_es_sent_total"))!;
      const stopped = await a1.stop();
      assertEquals(stopped.code, 0, a1.output());
      assert(stopped.ms < 5000, `agent stopped in ${stopped.ms} ms with the store down`);
      assertMatch(a1.output(), /request failed; documents stay queued/);

      // Restart the agent while the node is still down; more events.
      const a2 = await agentWith(c, conf);
      assert(
        (await metric(a2, "huatuo_bamai_storage_es_queued_documents"))! >= 3,
        "the outbox survived the restart",
      );
      assertMatch(a2.output(), /outbox: documents from an earlier run will be sent/);
      await kill(2);

      await os.start();
      const t0 = performance.now();
      await waitFor(
        "queue drained",
        async () => await metric(a2, "huatuo_bamai_storage_es_queued_documents") === 0,
        90_000,
        100,
      );
      console.log(`queue drained ${(performance.now() - t0).toFixed(0)} ms after the node was back`);

      // Exactly once: the set of ids in OpenSearch equals the tracer_ids of the local files, and so do the counts.
      let total = 0;
      await waitFor(
        "sent == total",
        async () => {
          const docs = localDocs(local);
          total = docs.length;
          const sent2 = (await metric(a2, "huatuo_bamai_storage_es_sent_total"))!;
          const queued = await metric(a2, "huatuo_bamai_storage_es_queued_documents");
          return queued === 0 && sent1 + sent2 === total;
        },
        30_000,
        200,
      );
      const docs = localDocs(local);
      const localIds = docs.map((d) => d.tracer_id).sort();
      assertEquals(new Set(localIds).size, localIds.length, "tracer_ids are unique");
      assert(docs.filter((d) => d.tracer_name === "oom").length >= 7, "7 OOM kills recorded");
      const ids = (await esIds(os, index)).sort();
      assertEquals(ids, localIds, "every local document is in OpenSearch, once");
      assertEquals(await esCount(os, index), total);
      assertEquals(await metric(a2, "huatuo_bamai_storage_es_failed_total"), 0);
      assertEquals(await metric(a2, "huatuo_bamai_storage_es_dropped_total"), 0);
      assertEquals(await metric(a2, "huatuo_bamai_storage_es_up"), 1);
      assertMatch(a2.output(), /reachable again/);
    });
  },
});

// ---------------------------------------------------------------- 3. https

async function makeCerts(dir: string): Promise<void> {
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      `openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=huatuo-it CA" &&
       openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
       printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n" > ext.cnf &&
       openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf &&
       openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj "/CN=other CA"`,
    ],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`openssl: ${dec.decode(out.stderr)}`);
}

/** An https reverse proxy (our CA's certificate) in front of the node's plain http port. */
function tlsProxy(c: Cleanup, certs: string, upstream: string): string {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(`${certs}/server.pem`),
    key: Deno.readTextFileSync(`${certs}/server.key`),
    onListen: () => {},
  }, async (req) => {
    const url = new URL(req.url);
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
      method: req.method,
      headers: req.headers,
      body: hasBody ? await req.arrayBuffer() : undefined,
    });
    // fetch() has already decompressed the body: its encoding and length headers no longer apply.
    const headers = new Headers(res.headers);
    headers.delete("content-encoding");
    headers.delete("content-length");
    return new Response(res.body, { status: res.status, headers });
  });
  c.defer("stop the TLS proxy", () => server.shutdown());
  return `https://127.0.0.1:${server.addr.port}`;
}

Deno.test({
  name:
    "storage over https: right CAFile works, a wrong one fails clearly and keeps the document, InsecureSkipVerify works",
  ignore,
  async fn() {
    await withCleanup(async (c) => {
      const certs = Deno.makeTempDirSync({ prefix: "huatuo-it-storage-tls-" });
      c.defer(`remove ${certs}`, () => Deno.removeSync(certs, { recursive: true }));
      await makeCerts(certs);
      const os = await node(c);
      const address = tlsProxy(c, certs, os.url);
      const local = localTemp(c);
      const index = "huatuo_it_storage_tls";
      const cg = memoryCgroup(c, "huatuo-it-storage-tls", 32 * 1024 * 1024);

      // Wrong CA: a clear error, the document stays queued.
      const wrong = await agentWith(c, { local, address, index, extra: `CAFile = "${certs}/other.pem"` });
      const first = await oomDoc(local, (await oomKill(cg)).pid);
      await waitFor("TLS error logged", () => /request failed/.test(wrong.output()), 10_000);
      assertMatch(wrong.output(), /error="TLS: [^"]*(certificate|verify)[^"]*check Storage.ES.CAFile/);
      assertEquals(await metric(wrong, "huatuo_bamai_storage_es_up"), 0);
      assert((await metric(wrong, "huatuo_bamai_storage_es_queued_documents"))! >= 1);
      assertEquals((await esGet(os, index, first.tracer_id)).found, false);
      assertEquals((await wrong.stop()).code, 0);

      // Right CA (same outbox): the queued document arrives.
      const right = await agentWith(c, { local, address, index, extra: `CAFile = "${certs}/ca.pem"` });
      await waitFor(
        "queued document delivered over https",
        async () => (await esGet(os, index, first.tracer_id)).found,
        20_000,
        50,
      );
      assertMatch(right.output(), /tls="CA [^"]*ca.pem"/);
      assertEquals((await right.stop()).code, 0);

      // InsecureSkipVerify (and a CA that would not verify): works, with a warning.
      const insecure = await agentWith(c, {
        local,
        address,
        index,
        extra: `CAFile = "${certs}/other.pem"\nInsecureSkipVerify = true`,
      });
      assertMatch(insecure.output(), /level=warn msg="storage: Storage.ES.InsecureSkipVerify is on/);
      const second = await oomDoc(local, (await oomKill(cg)).pid);
      await waitFor(
        "delivered without verification",
        async () => (await esGet(os, index, second.tracer_id)).found,
        10_000,
        20,
        insecure.output,
      );
      assertEquals(await metric(insecure, "huatuo_bamai_storage_es_up"), 1);
    });
  },
});
