// dropwatch collector: the samples from counts, and on the real kernel
// (root) a burst of drops against the default rate limit: every drop is
// counted by reason, the ones over the limit are counted as suppressed.

import { bind, close, sendto, socket } from "../../../ffi/libc.ts";
import { defaultConfig } from "../../config/schema.ts";
import { DEFAULT_BURST, DEFAULT_EVENTS_PER_SEC, DropNames } from "./tracer.ts";
import type { EventInput } from "../../events/sink.ts";
import { HostFs } from "../../host/fs.ts";
import { silentLogger } from "../../log/logger.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import { assert, assertEquals } from "../../../testing/assert.ts";
import type { Sample } from "../../core/sample.ts";
import dropwatch, { dropSamples } from "./dropwatch.ts";
import { exists } from "../../../testing/fs.ts";
import { testTracerContext } from "../../../testing/tracer.ts";

const OUT = new URL("../../../_output/bpf", import.meta.url).pathname;

Deno.test("dropSamples: one drops_total series per reason name, then suppressed_total", () => {
  const names = new DropNames(
    new Map([[3, "NO_SOCKET"], [12, "NETFILTER_DROP"]]),
    new Map([[2, "OPENVSWITCH"]]),
    new Map(),
    "t",
  );
  const samples = dropSamples(new Map([[12, 5], [3, 7], [(2 << 16) | 1, 2], [500, 1]]), names, 42);
  assertEquals(samples.map((s) => [s.name, s.type, s.labels?.reason, s.value]), [
    ["dropwatch_drops_total", "counter", "NETFILTER_DROP", 5],
    ["dropwatch_drops_total", "counter", "NO_SOCKET", 7],
    ["dropwatch_drops_total", "counter", "OPENVSWITCH:1", 2],
    ["dropwatch_drops_total", "counter", "reason 500", 1],
    ["dropwatch_suppressed_total", "counter", undefined, 42],
  ]);
});

const skip = Deno.uid() !== 0
  ? "needs root"
  : !exists(`${OUT}/dropwatch.o`)
  ? "run ./build.sh bpf first"
  : undefined;
if (skip) console.warn(`dropwatch collector test: real-kernel test skipped (${skip})`);

const value = (samples: Sample[], name: string, reason?: string) =>
  samples.find((s) => s.name === name && s.labels?.reason === reason)?.value ?? 0;

const AF_INET = 2, SOCK_DGRAM = 2;

function sockaddrIn(port: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  b.set([127, 0, 0, 1], 4);
  return b;
}

/** A UDP port nothing listens on: one we could bind, released. */
function closedUdpPort(): number {
  for (;;) {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const fd = socket(AF_INET, SOCK_DGRAM, 0);
    try {
      bind(fd, sockaddrIn(port));
      return port;
    } catch {
      continue;
    } finally {
      close(fd);
    }
  }
}

Deno.test({
  name: "a burst of 1000 drops: all counted by reason, at most the rate limit reported, the rest suppressed",
  ignore: skip !== undefined,
  async fn() {
    const events: EventInput[] = [];
    const parts = dropwatch.create({
      fs: new HostFs(),
      config: defaultConfig(),
      log: silentLogger,
      bpf: new BpfRuntime(OUT),
      events: (ev) => events.push(ev),
    });
    const c = { ...parts.collector!, tracer: parts.tracer! };
    const ac = new AbortController();
    await c.tracer.start(testTracerContext(ac.signal));
    const fd = socket(AF_INET, SOCK_DGRAM, 0);
    try {
      bind(fd, sockaddrIn(0));
      const port = closedUdpPort();
      const before = await c.collect();
      const N = 1000;
      const t0 = performance.now();
      const payload = new Uint8Array(8);
      for (let i = 0; i < N; i++) sendto(fd, payload, 0, sockaddrIn(port));
      const seconds = (performance.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 100));
      const after = await c.collect();

      const mine = events.filter((e) => e.data.dport === port).length;
      const counted = value(after, "dropwatch_drops_total", "NO_SOCKET") -
        value(before, "dropwatch_drops_total", "NO_SOCKET");
      const suppressed = value(after, "dropwatch_suppressed_total") -
        value(before, "dropwatch_suppressed_total");
      assert(counted >= N, `NO_SOCKET drops counted: ${counted} of ${N}`);
      // Default: 100 events/s per CPU, bursts of 20; the sender may run on any CPU.
      const cpus = navigator.hardwareConcurrency;
      const limit = cpus * (DEFAULT_BURST + Math.ceil(DEFAULT_EVENTS_PER_SEC * seconds));
      assert(
        mine >= 1 && mine <= limit,
        `reported ${mine} of ${N}, limit ${limit} in ${seconds.toFixed(2)} s`,
      );
      assert(mine + suppressed >= N, `reported ${mine} + suppressed ${suppressed} < ${N}`);
      assert(after.some((s) => s.name === "dropwatch_drops_total" && s.labels?.reason === "NO_SOCKET"));
    } finally {
      close(fd);
      ac.abort();
      await c.tracer!.stop();
    }
  },
});
