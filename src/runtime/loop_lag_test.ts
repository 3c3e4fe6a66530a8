import { assertEquals } from "../../testing/assert.ts";
import { LoopLagMonitor, memorySamples } from "./loop_lag.ts";

Deno.test("loop lag: late ticks count as lag, 100 ms or more as a stall; max resets when read", () => {
  let t = 0;
  const m = new LoopLagMonitor(50, () => t);
  m.start();
  m.stop(); // ticks are driven by hand below
  t = 50;
  m.tick(); // on time
  t = 130;
  m.tick(); // due at 100: 30 ms late
  t = 400;
  m.tick(); // due at 180: 220 ms late
  assertEquals(m.takeMaxMs(), 220);
  assertEquals(m.takeMaxMs(), 0);
  assertEquals(m.stalls, 1);
  assertEquals(m.stalledMs, 220);
});

Deno.test("memorySamples: one process_memory_bytes series per kind", () => {
  const s = memorySamples({ rss: 4, heapTotal: 3, heapUsed: 2, external: 1 });
  assertEquals(s.map((x) => [x.labels?.kind, x.value]), [["rss", 4], ["heap_total", 3], ["heap_used", 2], [
    "external",
    1,
  ]]);
});
