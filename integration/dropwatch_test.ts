// dropwatch end to end: the real agent, a real packet drop (a UDP datagram
// to a closed port on loopback, from a known source port) → a "dropwatch"
// document in <LocalFile.Path>/dropwatch and a CloudEvent on
// POST /v1/events/watch, and the drop counted on /metrics.

import { bind, close, sendto, socket } from "../ffi/libc.ts";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { isRoot, scrape, startAgent } from "./agent.ts";

const AF_INET = 2, SOCK_DGRAM = 2;

function sockaddrIn(port: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  b.set([127, 0, 0, 1], 4);
  return b;
}

/** A UDP socket bound to a random free port on 127.0.0.1. */
function boundUdp(): { fd: number; port: number } {
  for (;;) {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const fd = socket(AF_INET, SOCK_DGRAM, 0);
    try {
      bind(fd, sockaddrIn(port));
      return { fd, port };
    } catch {
      close(fd);
    }
  }
}

const metric = (text: string, reason: string) => {
  const m = new RegExp(`^huatuo_bamai_dropwatch_drops_total\\{[^}]*reason="${reason}"[^}]*\\} (\\S+)$`, "m")
    .exec(text);
  return m ? Number(m[1]) : 0;
};

if (!isRoot()) console.warn("dropwatch integration test skipped: loading BPF needs root");

Deno.test({
  name: "dropwatch: a UDP datagram to a closed port → local file document, CloudEvent and drops_total",
  ignore: !isRoot(),
  async fn() {
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-dropwatch-" });
    const agent = await startAgent({
      args: ["--region", "dev", "--procfs-prefix", "fixtures"],
      conf: (p) => `[Storage.LocalFile]\nPath = "${local}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
    });
    const src = boundUdp();
    const dst = boundUdp();
    close(dst.fd); // now closed: the datagram is dropped with NO_SOCKET
    try {
      const dw = await (await fetch(`${agent.url}/v1/tracers/dropwatch`)).json() as { state: string };
      assertEquals(dw.state, "running", `dropwatch tracer: ${JSON.stringify(dw)}`);

      const stream = await fetch(`${agent.url}/v1/events/watch`, {
        method: "POST",
        body: '{"filters": {"tracer_name": "^dropwatch$"}, "include_tracer_data": true}',
        signal: AbortSignal.timeout(20_000),
      });
      assertEquals(stream.status, 200);
      const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
      const before = metric(await scrape(agent), "NO_SOCKET");

      sendto(src.fd, new Uint8Array(200), 0, sockaddrIn(dst.port));
      const sentAt = performance.now();

      type Ce = { source: string; data: { tracer_id: string; tracer_data: Record<string, unknown> } };
      let buf = "";
      let event: Ce | undefined;
      while (!event) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          const msg = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m = /^data: (.*)$/m.exec(msg);
          if (!m) continue;
          const ce = JSON.parse(m[1]) as Ce;
          if (ce.data.tracer_data?.dport === dst.port && ce.data.tracer_data?.sport === src.port) event = ce;
        }
      }
      const ms = performance.now() - sentAt;
      await reader.cancel();
      assert(event, "a dropwatch CloudEvent for our datagram arrived");
      assert(ms < 1000, `event ${ms.toFixed(0)} ms after the drop`);
      assertEquals(event.source, `/huatuo/${Deno.hostname()}/dropwatch`);
      const d = event.data.tracer_data;
      assertEquals([d.type, d.reason, d.protocol], ["common_drop", "NO_SOCKET", "udp"]);
      assertEquals([d.saddr, d.daddr, d.sport, d.dport, d.pkt_len], [
        "127.0.0.1",
        "127.0.0.1",
        src.port,
        dst.port,
        228,
      ]);
      assertEquals([d.netdev_name, d.netdev_ifindex, d.pid], ["lo", 1, Deno.pid]);
      assertMatch(d.stack as string, /\n__udp4_lib_rcv\+/);

      const docs = Deno.readTextFileSync(`${local}/dropwatch`).trim().split("\n").map((l) => JSON.parse(l));
      const doc = docs.find((x) => x.tracer_id === event!.data.tracer_id);
      assert(doc, `no document ${event.data.tracer_id} in ${local}/dropwatch`);
      assertEquals(doc.tracer_name, "dropwatch");
      assertEquals(doc.region, "dev");
      assertEquals(doc.tracer_data, d);

      const text = await scrape(agent);
      const after = metric(text, "NO_SOCKET");
      assert(after >= before + 1, `dropwatch_drops_total{reason="NO_SOCKET"} ${before} → ${after}`);
      // Every record read was decoded: the handler-error series is there, at 0.
      assertMatch(text, /^huatuo_bamai_bpf_buffer_errors_total\{[^}]*buffer="dropwatch_events"[^}]*\} 0$/m);
    } finally {
      close(src.fd);
      assertEquals((await agent.stop()).code, 0);
      Deno.removeSync(local, { recursive: true });
    }
  },
});
