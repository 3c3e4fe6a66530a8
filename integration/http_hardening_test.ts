// The API server against hostile peers, on the real agent: thousands of idle
// sockets under a small open-files limit, huge bodies, and state changes from
// another host (a network namespace behind a veth pair) with and without the
// token.

import { assert, assertEquals } from "../testing/assert.ts";
import { confWithPort, isRoot, type RunningAgent, startAgent } from "./agent.ts";
import { run, sleep, withCleanup } from "./load.ts";

const skip = !isRoot() ? "needs root (BPF tracers, network namespaces)" : undefined;
if (skip) console.warn(`http_hardening_test skipped: ${skip}`);

const ARGS = ["--region", "it", "--disable-kubelet", "--disable-storage"];

/** The shipped config on `port` with these [APIServer] keys and no local store. */
function conf(port: number, apiServer: string, addr?: string): string {
  return confWithPort(port, (t) => {
    let out = t.replace(/^\s*# Token = ""\s*$/m, apiServer)
      .replace(/^\s*# Path = "huatuo-local"\s*$/m, '\tPath = ""');
    if (addr) out = out.replace(`TCPAddr = "127.0.0.1:${port}"`, `TCPAddr = "${addr}"`);
    return out;
  });
}

function vmRssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

function openFds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

async function timedGet(url: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  await res.body?.cancel();
  return { status: res.status, ms: performance.now() - t0 };
}

/** Sends a request head and then `bodyBytes` of body until the server answers or closes; returns its status line. */
async function postHuge(agent: RunningAgent, head: string, bodyBytes: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: agent.port });
  const enc = new TextEncoder();
  await conn.write(enc.encode(head));
  let answer = "";
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      answer += new TextDecoder().decode(buf.subarray(0, n));
    }
  })();
  const chunk = new Uint8Array(1 << 20).fill(0x61);
  let sent = 0;
  try {
    while (sent < bodyBytes && answer === "") {
      const piece = head.includes("chunked") ? enc.encode(`${chunk.length.toString(16)}\r\n`) : undefined;
      if (piece) await conn.write(piece);
      sent += await conn.write(chunk);
      if (piece) await conn.write(enc.encode("\r\n"));
    }
  } catch {
    // the server closed the connection after answering
  }
  await Promise.race([reading, sleep(5000)]);
  try {
    conn.close();
  } catch { /* closed */ }
  return answer.split("\r\n")[0] + ` (body sent before the answer: ${(sent / 1048576).toFixed(0)} MiB)`;
}

Deno.test({
  name:
    "5000 idle connections under `ulimit -n 1024`: the agent stays up, /metrics answers, idle sockets close",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const agent = await startAgent({
      args: ARGS,
      nofile: 1024,
      conf: (port) => conf(port, "\tReadHeaderTimeout = 2\n\tIdleTimeout = 2"),
    });
    const pid = agent.child.pid;
    const conns: Deno.TcpConn[] = [];
    try {
      const listening = /msg="http server listening".*max_connections=(\d+)/.exec(agent.output());
      const cap = Number(listening?.[1]);
      console.log(`  max_connections=${cap} under nofile 1024; ${openFds(pid)} descriptors open when ready`);
      assert(cap > 100 && cap < 1024, `cap ${cap}`);
      const t0 = performance.now();
      for (let i = 0; i < 5000; i += 250) {
        const batch = await Promise.all(
          Array.from({ length: 250 }, () => Deno.connect({ hostname: "127.0.0.1", port: agent.port })),
        );
        conns.push(...batch);
      }
      console.log(`  5000 connections opened in ${(performance.now() - t0).toFixed(0)} ms`);
      // While they are all held: the agent answers, and never holds more descriptors than its limit allows.
      const health: number[] = [];
      for (let i = 0; i < 20; i++) {
        const h = await timedGet(`${agent.url}/healthz`);
        assertEquals(h.status, 200);
        health.push(h.ms);
      }
      const metrics = await timedGet(`${agent.url}/metrics`);
      assertEquals(metrics.status, 200);
      const fds = openFds(pid);
      health.sort((a, b) => a - b);
      console.log(
        `  /healthz p50 ${health[10].toFixed(1)} ms, max ${health[19].toFixed(1)} ms; /metrics ${
          metrics.ms.toFixed(0)
        } ms; agent fds ${fds}`,
      );
      assert(fds < 1024, `agent holds ${fds} descriptors`);
      // Every idle socket is closed by the agent: evicted at the cap, or at the 2 s header timeout.
      const buf = new Uint8Array(16);
      const closed = await Promise.all(conns.map(async (c) => {
        const timer = setTimeout(() => c.close(), 20_000);
        try {
          return (await c.read(buf)) === null;
        } catch {
          return false;
        } finally {
          clearTimeout(timer);
        }
      }));
      const byAgent = closed.filter(Boolean).length;
      console.log(`  ${byAgent}/5000 idle sockets closed by the agent`);
      assertEquals(byAgent, 5000);
      const stats = await (await fetch(`${agent.url}/metrics`)).text();
      const counter = (name: string) =>
        Number(new RegExp(`^huatuo_bamai_${name}\\{[^}]*\\} (\\S+)$`, "m").exec(stats)?.[1]);
      console.log(
        `  http_connections_evicted_total ${counter("http_connections_evicted_total")}, ` +
          `http_connections_timed_out_total ${counter("http_connections_timed_out_total")}`,
      );
      assert(counter("http_connections_evicted_total") + counter("http_connections_timed_out_total") >= 5000);
      assert(!/Too many open files|Uncaught/.test(agent.output()), agent.output().slice(-2000));

      // A 100 MB body is refused before it is read, whatever its framing.
      const rss0 = vmRssKiB(pid);
      const cl = await postHuge(
        agent,
        "POST /v1/events/watch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n",
        100 << 20,
      );
      const chunked = await postHuge(
        agent,
        "POST /v1/events/watch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        100 << 20,
      );
      const grown = (vmRssKiB(pid) - rss0) / 1024;
      console.log(`  content-length: ${cl}; chunked: ${chunked}; RSS growth ${grown.toFixed(1)} MiB`);
      assert(cl.startsWith("HTTP/1.1 413 "), cl);
      assert(chunked.startsWith("HTTP/1.1 413 "), chunked);
      assert(grown < 20, `RSS grew ${grown} MiB`);
      assertEquals((await timedGet(`${agent.url}/healthz`)).status, 200);
    } finally {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      const { code } = await agent.stop();
      assertEquals(code, 0, agent.output().slice(-2000));
    }
  },
});

const NS = "huatuo-it-api";
const VETH = "huatuo-it-api0";
const HOST_IP = "10.213.81.1";
const NS_IP = "10.213.81.2";

Deno.test({
  name: "tracer stop from another host needs the token; without one only loopback may",
  ignore: skip !== undefined,
  fn: () =>
    withCleanup(async (c) => {
      await run("ip", ["netns", "del", NS], { check: false });
      await run("ip", ["netns", "add", NS]);
      c.defer(`ip netns del ${NS}`, () => run("ip", ["netns", "del", NS]));
      await run("ip", ["link", "add", VETH, "type", "veth", "peer", "name", "eth0", "netns", NS]);
      c.defer(`ip link del ${VETH}`, () => run("ip", ["link", "del", VETH], { check: false }));
      await run("ip", ["addr", "add", `${HOST_IP}/30`, "dev", VETH]);
      await run("ip", ["link", "set", VETH, "up"]);
      await run("ip", ["-n", NS, "addr", "add", `${NS_IP}/30`, "dev", "eth0"]);
      await run("ip", ["-n", NS, "link", "set", "eth0", "up"]);

      /** POST from inside the namespace (another host, as far as the agent can tell). */
      const remotePost = async (port: number, path: string, token?: string) => {
        const args = ["netns", "exec", NS, "curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"];
        if (token) args.push("-H", `Authorization: Bearer ${token}`);
        const out = await run("ip", [...args, "-X", "POST", `http://${HOST_IP}:${port}${path}`]);
        return Number(out.stdout.trim());
      };
      const localPost = async (agent: RunningAgent, path: string, token?: string) => {
        const res = await fetch(`${agent.url}${path}`, {
          method: "POST",
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
        await res.body?.cancel();
        return res.status;
      };
      const state = async (agent: RunningAgent) =>
        (await (await fetch(`${agent.url}/v1/tracers/oom`)).json()).state as string;

      // No token configured: listening on every interface, only loopback may change state.
      let agent = await startAgent({ args: ARGS, conf: (port) => conf(port, "", `0.0.0.0:${port}`) });
      try {
        assertEquals(await remotePost(agent.port, "/v1/tracers/oom/stop"), 403);
        assertEquals(await state(agent), "running");
        assertEquals(await localPost(agent, "/v1/tracers/oom/stop"), 200);
        assertEquals(await state(agent), "stopped");
        assertEquals(await remotePost(agent.port, "/v1/tracers/oom/start"), 403);
        assertEquals(await state(agent), "stopped");
        // The seed's watch stays open without a token.
        const w = await run("ip", [
          "netns",
          "exec",
          NS,
          "curl",
          "-s",
          "-m",
          "1",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-X",
          "POST",
          `http://${HOST_IP}:${agent.port}/v1/events/watch`,
        ], { check: false });
        assertEquals(w.stdout.trim(), "200");
      } finally {
        await agent.stop();
      }

      // With a token: any host that presents it; nobody without it.
      const TOKEN = "it-api-token-4711";
      agent = await startAgent({
        args: ARGS,
        conf: (port) => conf(port, `\tToken = "${TOKEN}"`, `0.0.0.0:${port}`),
      });
      try {
        assertEquals(await remotePost(agent.port, "/v1/tracers/oom/stop"), 401);
        assertEquals(await localPost(agent, "/v1/tracers/oom/stop"), 401);
        assertEquals(await state(agent), "running");
        assertEquals(await remotePost(agent.port, "/v1/tracers/oom/stop", "wrong"), 401);
        assertEquals(await localPost(agent, "/v1/tracers/oom/stop", TOKEN), 200);
        assertEquals(await state(agent), "stopped");
        assertEquals(await remotePost(agent.port, "/v1/tracers/oom/start", TOKEN), 200);
        assertEquals(await state(agent), "running");
        assertEquals(await remotePost(agent.port, "/v1/events/watch"), 401);
      } finally {
        await agent.stop();
      }
    }),
});
