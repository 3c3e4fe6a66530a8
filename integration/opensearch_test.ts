// The OpenSearch test node itself: a real node indexes, searches, survives a stop/start with its data, treats
// a re-sent _id as an update, reports its start failures with its log, and leaves no java process behind.

import { assert, assertEquals, assertMatch, assertRejects } from "../testing/assert.ts";
import { freePort, ROOT } from "./agent.ts";
import { buildOpenSearch, openSearchAvailable, type OpenSearchNode, startOpenSearch } from "./opensearch.ts";

const skipReason = await openSearchAvailable();
if (skipReason) console.warn(`opensearch tests skipped: ${skipReason}`);
const ignore = skipReason !== undefined;

/** No idle connections kept: no request rides a keep-alive connection to a JVM the test has since killed. */
const http = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });

async function req(
  node: OpenSearchNode,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const ndjson = Array.isArray(body);
  const res = await fetch(`${node.url}${path}`, {
    client: http,
    method,
    headers: { "content-type": ndjson ? "application/x-ndjson" : "application/json" },
    body: body === undefined
      ? undefined
      : ndjson
      ? body.map((l) => JSON.stringify(l)).join("\n") + "\n"
      : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function count(node: OpenSearchNode, index: string): Promise<number> {
  const { status, json } = await req(node, "GET", `/${index}/_count`);
  assertEquals(status, 200, JSON.stringify(json));
  return json.count as number;
}

/** The JVM's pid as the node itself reports it (the harness API does not expose the child). */
async function nodePid(node: OpenSearchNode): Promise<number> {
  const { json } = await req(node, "GET", "/_nodes/_local/process");
  const nodes = Object.values(json.nodes as Record<string, { process: { id: number } }>);
  assertEquals(nodes.length, 1);
  return nodes[0].process.id;
}

function rssMiB(pid: number): number {
  const kb = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+) kB/m);
  assert(kb, `no VmRSS for ${pid}`);
  return Math.round(Number(kb[1]) / 1024);
}

function alive(pid: number): boolean {
  try {
    // A zombie is gone for our purposes: it holds no memory, port or files.
    return !/^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

/** Java processes running our launcher with this data dir (none may outlive a test). */
function javaNodesFor(dataDir: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (cmd.includes("huatuo.it.OpenSearchNode") && cmd.includes(dataDir)) pids.push(Number(e.name));
    } catch { /* exited while listing */ }
  }
  return pids;
}

function docs(from: number, to: number, round: number): unknown[] {
  const lines: unknown[] = [];
  for (let i = from; i < to; i++) {
    lines.push({ index: { _index: "huatuo-it-events", _id: `tracer-${i}` } });
    lines.push({
      hostname: "huatuo-it",
      tracer_name: i % 2 ? "oom" : "softlockup",
      tracer_time: new Date(1_700_000_000_000 + i * 1000).toISOString(),
      tracer_data: { seq: i, round },
    });
  }
  return lines;
}

async function bulk(node: OpenSearchNode, lines: unknown[]): Promise<Record<string, number>> {
  const { status, json } = await req(node, "POST", "/_bulk?refresh=wait_for", lines);
  assertEquals(status, 200);
  assertEquals(json.errors, false, JSON.stringify(json).slice(0, 2000));
  const results: Record<string, number> = {};
  for (const item of json.items as { index: { result: string } }[]) {
    results[item.index.result] = (results[item.index.result] ?? 0) + 1;
  }
  return results;
}

Deno.test({
  name:
    "opensearch: bulk with _id, search, stop/start keeps the docs, a re-sent _id updates in place, crash-safe",
  ignore,
  fn: async () => {
    const t0 = performance.now();
    await buildOpenSearch();
    const buildMs = performance.now() - t0;
    const t1 = performance.now();
    const node = await startOpenSearch();
    const firstStartMs = performance.now() - t1;
    try {
      const root = await req(node, "GET", "/");
      assertEquals((root.json.version as { number: string }).number, "2.19.6");

      const created = await req(node, "PUT", "/huatuo-it-events", {
        settings: { number_of_shards: 1, number_of_replicas: 0 },
        mappings: { properties: { tracer_time: { type: "date" }, tracer_name: { type: "keyword" } } },
      });
      assertEquals(created.status, 200, JSON.stringify(created.json));

      assertEquals(await bulk(node, docs(0, 500, 1)), { created: 500 });
      assertEquals(await count(node, "huatuo-it-events"), 500);
      const oom = await req(node, "POST", "/huatuo-it-events/_search", {
        query: { bool: { filter: [{ term: { tracer_name: "oom" } }, { term: { "tracer_data.seq": 7 } }] } },
      });
      const hits = oom.json.hits as { total: { value: number }; hits: { _id: string }[] };
      assertEquals(hits.total.value, 1);
      assertEquals(hits.hits[0]._id, "tracer-7");
      const oomCount = await req(node, "POST", "/huatuo-it-events/_count", {
        query: { term: { tracer_name: "oom" } },
      });
      assertEquals(oomCount.json.count, 250);

      const pid = await nodePid(node);
      const rssLoaded = rssMiB(pid);
      await node.stop();
      assert(!alive(pid), `java ${pid} still running after stop()`);
      await assertRejects(() => fetch(node.url));

      const t2 = performance.now();
      await node.start();
      const restartMs = performance.now() - t2;
      const pid2 = await nodePid(node);
      assert(pid2 !== pid);
      assertEquals(await count(node, "huatuo-it-events"), 500, "docs lost across stop/start");

      // The agent's retries re-send documents with the same _id: they must replace, never duplicate.
      assertEquals(await bulk(node, docs(0, 500, 2)), { updated: 500 });
      assertEquals(await bulk(node, docs(500, 600, 2)), { created: 100 });
      assertEquals(await count(node, "huatuo-it-events"), 600);
      const doc = await req(node, "GET", "/huatuo-it-events/_doc/tracer-7");
      assertEquals(doc.json._version, 2);
      assertEquals((doc.json._source as { tracer_data: { round: number } }).tracer_data.round, 2);

      const rssAfter = rssMiB(pid2);

      // A crash (SIGKILL, no flush): acknowledged writes are in the fsynced translog; start() sees the dead
      // JVM and starts a new one.
      Deno.kill(pid2, "SIGKILL");
      while (alive(pid2)) await new Promise((r) => setTimeout(r, 50));
      await node.start();
      assertEquals(await count(node, "huatuo-it-events"), 600, "acknowledged docs lost in a crash");

      const ms = (t: number) => Math.round(t);
      console.log(
        `opensearch: build ${ms(buildMs)} ms (cached when ~0), start ${ms(firstStartMs)} ms, restart ` +
          `${ms(restartMs)} ms, RSS ${rssLoaded} MiB after 500 docs, ${rssAfter} MiB after restart + 600`,
      );
      assertMatch(node.logs(), /\] started$/m);
    } finally {
      await node.destroy();
    }
    await assertRejects(() => Deno.stat(node.dataDir), Deno.errors.NotFound);
    assertEquals(javaNodesFor(node.dataDir), []);
  },
});

Deno.test({
  name: "opensearch: a start failure throws with the node's log and leaves no process",
  ignore,
  fn: async () => {
    // A regular file where the node's data/ directory goes: the JVM starts, cannot create it, and exits.
    const dataDir = await Deno.makeTempDir({ prefix: "huatuo-it-opensearch-" });
    try {
      await Deno.writeTextFile(`${dataDir}/data`, "not a directory");
      const err = await startOpenSearch({ dataDir }).then(() => undefined, (e: Error) => e);
      assert(err, "start with a file in place of data/ succeeded");
      assertMatch(err.message, /OpenSearch exited with code [1-9]\d* before it was ready/);
      assertMatch(err.message, /FileAlreadyExistsException: .*\/data/);
      assertEquals(javaNodesFor(dataDir), []);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }

    // A port another listener holds is refused before any JVM starts.
    const port = freePort();
    const holder = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      await assertRejects(() => startOpenSearch({ port }), /port \d+ is already in use/);
    } finally {
      holder.close();
    }
  },
});

Deno.test({
  name: "opensearch: a test process killed outright takes its node down (stdin EOF)",
  ignore,
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "huatuo-it-opensearch-" });
    const script = `${dataDir}.ts`;
    await Deno.writeTextFile(
      script,
      `import { startOpenSearch } from "file://${ROOT}/integration/opensearch.ts";\n` +
        `const node = await startOpenSearch({ dataDir: ${JSON.stringify(dataDir)} });\n` +
        `console.log(node.url);\n` +
        `await new Promise(() => {});\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", `--config=${ROOT}/deno.json`, script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const reader = child.stdout.getReader();
      let out = "";
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      reader.releaseLock();
      assertMatch(out, /^http:\/\/127\.0\.0\.1:\d+\n/);
      const pids = javaNodesFor(dataDir);
      assertEquals(pids.length, 1);

      // SIGKILL: no unload handler, no finally; only the closed stdin pipe tells the JVM.
      child.kill("SIGKILL");
      await child.status;
      const deadline = Date.now() + 45_000;
      while (alive(pids[0]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      assert(!alive(pids[0]), `java ${pids[0]} outlived its killed parent`);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already dead */ }
      await child.stdout.cancel().catch(() => {});
      await child.status;
      for (const pid of javaNodesFor(dataDir)) Deno.kill(pid, "SIGKILL");
      await Deno.remove(script);
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "opensearch: build.sh returns at once when the node is already built",
  ignore,
  fn: async () => {
    await buildOpenSearch();
    const stamp = `${Deno.env.get("HUATUO_OPENSEARCH_OUT") ?? `${ROOT}/_output/opensearch`}/.stamp`;
    const before = Deno.statSync(stamp).mtime?.getTime();
    const t0 = performance.now();
    const out = await new Deno.Command("bash", { args: [`${ROOT}/integration/opensearch/build.sh`] })
      .output();
    const ms = performance.now() - t0;
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEquals(Deno.statSync(stamp).mtime?.getTime(), before, "build.sh rebuilt an up-to-date node");
    assert(ms < 5_000, `cached build.sh took ${ms} ms`);
  },
});
