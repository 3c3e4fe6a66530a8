// The watch stream under real kernel events: UDP datagrams to closed ports on
// 127.0.0.1 are real packet drops (skb:kfree_skb NO_SOCKET), each a dropwatch
// event identified by its destination port. On the real agent:
//   - a client that never reads is cut off (counted) while a reading client
//     gets every event, promptly;
//   - a client reconnecting with Last-Event-ID gets exactly what it missed;
//   - `: ping` arrives every KeepAliveInterval on an idle stream;
//   - a stream still open does not hold up the agent's shutdown.

import { assert, assertEquals } from "../testing/assert.ts";
import { isRoot, type RunningAgent, startAgent } from "./agent.ts";
import { closedUdpPortRange, sleep, udpDrops } from "./load.ts";

if (!isRoot()) console.warn("watch_live_test: skipped (needs root: dropwatch loads BPF programs)");

interface Received {
  id: number;
  dport: number;
  at: number;
}

/** A watch client that parses every SSE message (or only counts bytes when `parse` is false). */
async function client(agent: RunningAgent, body: string, headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const res = await fetch(`${agent.url}/v1/events/watch`, {
    method: "POST",
    body,
    headers,
    signal: abort.signal,
  });
  assertEquals(res.status, 200);
  const events: Received[] = [];
  const pings: number[] = [];
  const done = (async () => {
    let buf = "";
    try {
      for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
        const at = performance.now();
        buf += chunk;
        for (;;) {
          if (buf.startsWith(": ping\n")) {
            pings.push(at);
            buf = buf.slice(7);
            continue;
          }
          const end = buf.indexOf("\n\n");
          if (end < 0) break;
          const msg = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const id = Number(/^id: (\d+)$/m.exec(msg)?.[1]);
          const data = JSON.parse(/^data: (.*)$/m.exec(msg)?.[1] ?? "null");
          events.push({ id, dport: data?.data?.tracer_data?.dport ?? -1, at });
        }
      }
    } catch { /* aborted */ }
  })();
  return { events, pings, close: () => abort.abort(), done };
}

/** The value of huatuo_bamai_<name> whose labels contain `labels` (text, e.g. 'buffer="x"'). */
async function metric(agent: RunningAgent, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${agent.url}/metrics`)).text();
  const m = new RegExp(`^huatuo_bamai_${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

async function until(ms: number, ok: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

Deno.test({
  name: "watch (real drops): a stalled client is cut off, a reader gets every event; Last-Event-ID; pings",
  ignore: !isRoot(),
  sanitizeResources: false,
  async fn() {
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-watchlive-" });
    const agent = await startAgent({
      args: ["--region", "dev", "--disable-kubelet"],
      conf: (p) =>
        [
          `[Storage.LocalFile]`,
          `Path = "${local}"`,
          `[EventTracing.Dropwatch]`,
          `EventsPerSecond = 0`,
          `[EventsWatch]`,
          `KeepAliveInterval = 1`,
          `[APIServer]`,
          `TCPAddr = "127.0.0.1:${p}"`,
        ].join("\n") + "\n",
    });
    try {
      const filter = '{"include_tracer_data": true, "filters": {"tracer_name": "^dropwatch$"}}';
      const reader = await client(agent, filter);
      // Never reads its body: the kernel's socket buffers fill, then its queue in the agent.
      const stalledRes = await fetch(`${agent.url}/v1/events/watch`, { method: "POST", body: filter });
      assertEquals(stalledRes.status, 200);
      const idle = await client(agent, '{"filters": {"tracer_name": "^no-such-tracer$"}}');

      // 1. Burst of real drops: the reader keeps up; the stalled one is cut off.
      const n = 6000;
      const base = closedUdpPortRange(n);
      await udpDrops(base, n);
      const sentAt = performance.now();
      const mine = () => reader.events.filter((e) => e.dport >= base && e.dport < base + n);
      const all = await until(10_000, () => new Set(mine().map((e) => e.dport)).size === n);
      const lost = await metric(agent, "bpf_buffer_lost_total", 'buffer="dropwatch_events"');
      assert(
        all,
        `reader got ${new Set(mine().map((e) => e.dport)).size} of ${n} drops (ring lost: ${lost})`,
      );
      const lag = Math.max(...mine().map((e) => e.at)) - sentAt;
      assert(lag < 1000, `last event reached the reader ${lag.toFixed(0)} ms after the last send`);
      const ids = reader.events.map((e) => e.id);
      for (let i = 1; i < ids.length; i++) assert(ids[i] > ids[i - 1], `ids not increasing at ${i}`);
      let cutOff = 0;
      for (let i = 0; i < 50 && cutOff < 1; i++) {
        cutOff = await metric(agent, "events_watch_clients_cut_off_total");
        if (cutOff < 1) await sleep(100);
      }
      assert(cutOff >= 1, `the stalled client was not cut off (cut off: ${cutOff})`);
      await stalledRes.body?.cancel().catch(() => {});

      // 2. Disconnect, miss some events, come back with Last-Event-ID.
      const lastSeen = reader.events[reader.events.length - 1].id;
      reader.close();
      await reader.done;
      const m = 300;
      const base2 = closedUdpPortRange(m, base + n + 1000);
      await udpDrops(base2, m);
      await sleep(300);
      const back = await client(agent, filter, { "Last-Event-ID": String(lastSeen) });
      const missed = () => back.events.filter((e) => e.dport >= base2 && e.dport < base2 + m);
      assert(
        await until(5000, () => missed().length === m),
        `replayed ${missed().length} of ${m} missed drops`,
      );
      // Ids are the hub's sequence across all tracers: the filter may skip some, never reorder.
      assert(back.events[0].id > lastSeen, `replay starts at ${back.events[0].id}, after ${lastSeen}`);
      for (let i = 1; i < back.events.length; i++) assert(back.events[i].id > back.events[i - 1].id);
      back.close();
      await back.done;

      // 3. The idle stream got a ping about every second throughout.
      idle.close();
      await idle.done;
      assert(idle.pings.length >= 3, `${idle.pings.length} pings`);
      const gaps = idle.pings.slice(1).map((t, i) => t - idle.pings[i]);
      for (const g of gaps) assert(g > 700 && g < 1500, `ping gaps: ${gaps.map((x) => x.toFixed(0))}`);

      // 4. Streams still open at shutdown do not hold it up.
      await client(agent, filter);
      const { code, ms } = await agent.stop();
      assertEquals(code, 0);
      assert(ms < 3000, `stop took ${ms.toFixed(0)} ms with a watch stream open`);
    } finally {
      // A failure above is what the test reports; the exit code is checked in step 4.
      await agent.stop();
      Deno.removeSync(local, { recursive: true });
    }
  },
});
