import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { cpuUtil, parseCpuTotal, ZERO_CPU_TIMES } from "./stat.ts";

const STAT = `cpu  6333 0 2605 101210 493 0 124 74 0 0
cpu0 2465 0 924 51953 19 0 25 31 0 0
intr 1 2 3
`;

Deno.test("parseCpuTotal reads the aggregate line (captured from a 2-CPU VM)", () => {
  assertEquals(parseCpuTotal(STAT), {
    user: 6333,
    nice: 0,
    system: 2605,
    idle: 101210,
    iowait: 493,
    irq: 0,
    softirq: 124,
    steal: 74,
  });
});

Deno.test("cpuUtil: since boot and between two readings, in percent", () => {
  const t = parseCpuTotal(STAT);
  const all = 6333 + 2605 + 101210 + 493 + 124 + 74;
  const u = cpuUtil(ZERO_CPU_TIMES, t)!;
  assertEquals(u.usr, 6333 / all * 100);
  assertEquals(u.sys, (2605 + 124) / all * 100);
  assert(Math.abs(u.total - (all - 101210 - 493) / all * 100) < 1e-9);
  const next = { ...t, user: t.user + 30, system: t.system + 10, idle: t.idle + 60 };
  const d = cpuUtil(t, next)!;
  assertEquals([d.usr, d.sys, d.total], [30, 10, 40]);
  assertEquals(cpuUtil(t, t), undefined);
});

Deno.test("parseCpuTotal rejects missing and truncated lines", () => {
  assertThrows(() => parseCpuTotal("intr 1 2\n"), /no aggregate "cpu" line/);
  assertThrows(() => parseCpuTotal("cpu  6333 0 26"), /at least 8 tick counters/);
});
