// The events watch endpoint cannot hurt the real agent:
//   - a subscriber with a pattern that is catastrophic for a backtracking
//     regex engine, `(.*){25}Z`, is open during a burst of real kernel events
//     (UDP datagrams to closed ports on 127.0.0.1 → dropwatch); /healthz
//     keeps answering (p99 < 50 ms) and a normal subscriber gets every event
//     the agent recorded in its local file;
//   - 100 MB watch bodies, announced by Content-Length or streamed chunked,
//     get a 413 and the agent's RSS grows by less than 20 MB.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { isRoot, type RunningAgent, startAgent } from "./agent.ts";
import { closedUdpPortRange, sleep, udpDrops } from "./load.ts";

if (!isRoot()) console.warn("watch_hardening_test: skipped (needs root: dropwatch loads BPF programs)");

/** A reading watch client collecting the destination ports of the dropwatch events it gets. */
async function watchClient(agent: RunningAgent, body: string) {
  const abort = new AbortController();
  const res = await fetch(`${agent.url}/v1/events/watch`, { method: "POST", body, signal: abort.signal });
  if (res.status !== 200) throw new Error(`watch ${body}: HTTP ${res.status}: ${await res.text()}`);
  const dports: number[] = [];
  let ended = false;
  const done = (async () => {
    let buf = "";
    try {
      for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const data = /^data: (.*)$/m.exec(buf.slice(0, end))?.[1];
          buf = buf.slice(end + 2);
          if (data) dports.push(JSON.parse(data).data.tracer_data?.dport ?? -1);
        }
      }
    } catch { /* aborted */ }
    ended = true;
  })();
  return { dports, ended: () => ended, close: () => abort.abort(), done };
}

/**
 * Requests /healthz every `everyMs` whether or not earlier requests were
 * answered (so a stall delays every request made during it, and counts that
 * many times): prints "start <n> <epoch ms>" and "end <n> <latency ms>".
 */
const PROBE = `
const [url, timeoutMs, everyMs] = Deno.args;
let n = 0;
setInterval(async () => {
  const id = n++;
  console.log("start", id, Date.now());
  const t0 = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(Number(timeoutMs)) });
    await res.body?.cancel();
  } catch { /* timed out: counts as the time waited */ }
  console.log("end", id, (performance.now() - t0).toFixed(2));
}, Number(everyMs));`;

/**
 * Probes /healthz from a separate process, so this test's own event loop
 * (busy sending datagrams and parsing the stream) does not add to the
 * latencies it reports.
 */
function healthProbe(agent: RunningAgent, timeoutMs: number, everyMs: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", PROBE, `${agent.url}/healthz`, String(timeoutMs), String(everyMs)],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const text = (async () => {
    let all = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) all += chunk;
    return all;
  })();
  return {
    /**
     * Stops probing; the latencies in ms of the requests started at or after
     * `since` (epoch ms), one still unanswered counting as the time it has waited.
     */
    stop: async (since: number): Promise<number[]> => {
      const stoppedAt = Date.now();
      child.kill("SIGKILL");
      await child.status;
      const started = new Map<string, number>();
      const out: number[] = [];
      for (const line of (await text).trim().split("\n")) {
        const [what, id, value] = line.split(" ");
        if (what === "start") started.set(id, Number(value));
        if (what !== "end" || !started.has(id)) continue;
        if (started.get(id)! >= since) out.push(Number(value));
        started.delete(id);
      }
      for (const at of started.values()) if (at >= since) out.push(stoppedAt - at);
      return out;
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** VmRSS and VmHWM (peak RSS) of a process, in KiB. */
function memKiB(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? NaN);
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}

/**
 * POSTs `size` bytes to /v1/events/watch over a raw socket (fetch would not
 * show an answer that comes before the body is sent): with Content-Length, or
 * chunked. Returns the response's status line and body, however much of the
 * request the agent read.
 */
async function postHuge(agent: RunningAgent, size: number, chunked: boolean): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: agent.port });
  const enc = new TextEncoder();
  const head = `POST /v1/events/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    (chunked ? "Transfer-Encoding: chunked\r\n" : `Content-Length: ${size}\r\n`) +
    "Connection: close\r\n\r\n";
  const reading = (async () => {
    let text = "";
    const buf = new Uint8Array(64 * 1024);
    const dec = new TextDecoder();
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n), { stream: true });
      }
    } catch { /* reset */ }
    return text;
  })();
  try {
    await conn.write(enc.encode(head));
    const chunk = new Uint8Array(1024 * 1024).fill(0x20); // JSON whitespace
    const frame = chunked ? enc.encode(`${chunk.length.toString(16)}\r\n`) : new Uint8Array(0);
    for (let sent = 0; sent < size; sent += chunk.length) {
      if (chunked) await conn.write(frame);
      let at = 0;
      while (at < chunk.length) at += await conn.write(chunk.subarray(at));
      if (chunked) await conn.write(enc.encode("\r\n"));
    }
    if (chunked) await conn.write(enc.encode("0\r\n\r\n"));
  } catch { /* the agent answered and closed the connection: expected */ }
  const text = await Promise.race([reading, sleep(10_000).then(() => "(no response in 10 s)")]);
  try {
    conn.close();
  } catch { /* closed */ }
  return text;
}

Deno.test({
  name:
    "watch hardening: a catastrophic filter cannot stall /healthz or other subscribers; huge bodies get 413",
  ignore: !isRoot(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-watchhard-" });
    const agent = await startAgent({
      args: ["--region", "dev", "--disable-kubelet"],
      conf: (p) =>
        [
          `[Storage.LocalFile]`,
          `Path = "${local}"`,
          `[EventTracing.Dropwatch]`,
          `EventsPerSecond = 0`,
          `[APIServer]`,
          `TCPAddr = "127.0.0.1:${p}"`,
        ].join("\n") + "\n",
    });
    // An agent stuck in a regex never handles SIGTERM.
    const stop = async () => {
      const kill = setTimeout(() => agent.child.kill("SIGKILL"), 5000);
      try {
        return await agent.stop();
      } finally {
        clearTimeout(kill);
      }
    };
    try {
      // 1. A burst of real events with a catastrophic subscriber connected.
      const evil = await watchClient(agent, '{"filters": {"tracer_name": "(.*){25}Z"}}');
      const normal = await watchClient(
        agent,
        '{"include_tracer_data": true, "filters": {"tracer_name": "^dropwatch$"}}',
      );
      const probe = healthProbe(agent, 5000, 10);
      await sleep(1000); // the probe process starts (its requests before the burst are not counted)
      const n = 3000;
      const base = closedUdpPortRange(n);
      const t0 = performance.now();
      const burstStart = Date.now();
      await udpDrops(base, n, 2000);
      const inRange = (p: number) => p >= base && p < base + n;
      // Until every drop arrived, or none for a second (the kernel's ring may lose some on a busy machine).
      const deadline = Date.now() + 10_000;
      for (let seen = -1; Date.now() < deadline;) {
        const now = normal.dports.filter(inRange).length;
        if (now === n || now === seen) break;
        seen = now;
        await sleep(1000);
      }
      const latencies = await probe.stop(burstStart);
      const burstMs = performance.now() - t0;
      const p50 = percentile(latencies, 50);
      const p99 = percentile(latencies, 99);
      const max = Math.max(...latencies);
      console.log(
        `  /healthz during the ${burstMs.toFixed(0)} ms burst: ${latencies.length} requests, ` +
          `p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(0)} ms`,
      );
      assert(p99 < 50, `/healthz p99 ${p99.toFixed(1)} ms during the burst (max ${max.toFixed(0)} ms)`);

      // Every event the agent recorded reached the normal subscriber, once.
      const recorded = Deno.readTextFileSync(`${local}/dropwatch`).trim().split("\n")
        .map((l) => JSON.parse(l).tracer_data?.dport as number).filter(inRange);
      const got = normal.dports.filter(inRange);
      console.log(
        `  ${n} drops sent, ${recorded.length} recorded, ${got.length} delivered to the normal subscriber`,
      );
      assert(recorded.length > n * 0.9, `the agent recorded ${recorded.length} of ${n} drops`);
      assertEquals(got.sort((a, b) => a - b), recorded.sort((a, b) => a - b));
      assertEquals(evil.dports.length, 0);
      assert(!evil.ended(), "the catastrophic subscriber stays connected (its filter is cheap)");
      const metrics = await (await fetch(`${agent.url}/metrics`)).text();
      assertMatch(metrics, /^huatuo_bamai_events_watch_clients_filter_budget_exceeded_total(\{[^}]*\})? 0$/m);
      evil.close();
      normal.close();
      await Promise.all([evil.done, normal.done]);

      // 2. 100 MB bodies: answered 413 without being buffered.
      await sleep(500);
      const pid = agent.child.pid;
      Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5"); // resets VmHWM to the current RSS
      const before = memKiB(pid).rss;
      for (const chunked of [false, true]) {
        const res = await postHuge(agent, 100 * 1024 * 1024, chunked);
        assertMatch(
          res,
          /^HTTP\/1\.1 413 /,
          `${chunked ? "chunked" : "Content-Length"}: ${res.slice(0, 200)}`,
        );
        assertMatch(res, /\{"error":"request body larger than (65536|1048576) bytes"\}/);
      }
      const after = memKiB(pid);
      const grownMiB = (after.peak - before) / 1024;
      console.log(
        `  agent RSS ${(before / 1024).toFixed(0)} MiB; peak during two 100 MB bodies +${
          grownMiB.toFixed(1)
        } MiB`,
      );
      assert(grownMiB < 20, `agent RSS peaked ${grownMiB.toFixed(1)} MiB above where it was`);
      const health = await fetch(`${agent.url}/healthz`);
      assertEquals(health.status, 200);
      await health.body?.cancel();

      const { code } = await stop();
      assertEquals(code, 0);
    } finally {
      await stop();
      Deno.removeSync(local, { recursive: true });
    }
  },
});
