import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import { cpuUtil, iowaitPercent, parseCpuLine, parseCpuTotal, totalTicks, ZERO_CPU_TIMES } from "./stat.ts";

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
  assertThrows(
    () => parseCpuTotal("cpu  6333 0 26"),
    /stat: "cpu" line: expected at least 4 numeric tick counters/,
  );
  assertThrows(
    () => parseCpuTotal("cpu  6333 0 2605 x 1\n", "/p/stat"),
    /^SourceError: \/p\/stat: "cpu" line/,
  );
});

Deno.test("parseCpuLine: 4..10 fields, the missing ones 0; guest fields not read (already in user/nice)", () => {
  const all = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const line = (n: number) => "cpu  " + all.slice(0, n).join(" ");
  assertEquals(parseCpuLine(line(4)), {
    user: 1,
    nice: 2,
    system: 3,
    idle: 4,
    iowait: 0,
    irq: 0,
    softirq: 0,
    steal: 0,
  });
  assertEquals(parseCpuLine(line(5))?.iowait, 5);
  assertEquals(parseCpuLine(line(7)), {
    user: 1,
    nice: 2,
    system: 3,
    idle: 4,
    iowait: 5,
    irq: 6,
    softirq: 7,
    steal: 0,
  });
  for (const n of [8, 9, 10]) assertEquals(totalTicks(parseCpuLine(line(n))!), 36, `${n} fields`);
  // A later kernel's extra field is not a reason to fail.
  assertEquals(totalTicks(parseCpuLine(line(10) + " 11")!), 36);
  assertEquals(parseCpuLine(line(3)), undefined);
  assertEquals(parseCpuLine("cpu"), undefined);
  assertEquals(parseCpuLine("cpu  1 2 3 -4"), undefined);
  assertEquals(parseCpuLine("cpu  1 2 3 4 five"), undefined);
  // Per-CPU lines parse the same way; trailing spaces and tabs are fine.
  assertEquals(parseCpuLine("cpu0\t1 2 3 4  \n")?.idle, 4);
});

Deno.test("parseCpuTotal: a minimal 4-field fixture (older kernels) gives the since-boot average", () => {
  const t = parseCpuTotal("cpu  60 0 20 120\ncpu0 60 0 20 120\n");
  assertEquals(cpuUtil(ZERO_CPU_TIMES, t), { usr: 30, sys: 10, total: 40 });
});

Deno.test("iowaitPercent: Δiowait over all eight counters, since boot and between readings", () => {
  const t = parseCpuTotal(STAT);
  assertEquals(iowaitPercent(ZERO_CPU_TIMES, t), 493 / (6333 + 2605 + 101210 + 493 + 124 + 74) * 100);
  const next = { ...t, iowait: t.iowait + 25, idle: t.idle + 50, steal: t.steal + 25 };
  assertEquals(iowaitPercent(t, next), 25);
  assertEquals(iowaitPercent(t, t), undefined, "no tick passed");
  assertEquals(iowaitPercent(next, { ...t, user: t.user + 1000 }), undefined, "iowait went back");
});
