// memburst: the condition over the sliding window, the window itself, the
// trigger over a fixture host whose /proc/meminfo the test rewrites, and the
// largest processes by RSS (fixture and real /proc).

import { assert, assertEquals } from "../../../testing/assert.ts";
import { defaultConfig } from "../../config/schema.ts";
import { HostFs } from "../../host/fs.ts";
import { topByRss } from "../../autotracing/procs.ts";
import { memburstFires, MemBurstTrigger, SlidingWindow } from "./memburst.ts";

const GiB = 1024 ** 3;

Deno.test("memburst fires when anon reached (1 + DeltaMemoryBurst%) × the window's oldest AND DeltaAnonThreshold% of RAM", () => {
  const cfg = { DeltaMemoryBurst: 100, DeltaAnonThreshold: 70 };
  const total = 10 * GiB;
  assertEquals(memburstFires([3 * GiB, 1 * GiB], { anon: 7 * GiB, total }, cfg), true, "doubled, 70 %");
  assertEquals(
    memburstFires([4 * GiB], { anon: 7 * GiB, total }, cfg),
    false,
    "not doubled since the oldest",
  );
  assertEquals(memburstFires([3 * GiB], { anon: 6.9 * GiB, total }, cfg), false, "below 70 % of RAM");
  assertEquals(memburstFires([], { anon: 9 * GiB, total }, cfg), false, "no history yet");
  assertEquals(memburstFires([8 * GiB], { anon: 8 * GiB, total }, { ...cfg, DeltaMemoryBurst: 0 }), true);
});

Deno.test("SlidingWindow keeps the last N values, oldest first", () => {
  const w = new SlidingWindow(3);
  for (const v of [1, 2, 3, 4, 5]) w.push(v);
  assertEquals(w.values, [3, 4, 5]);
  w.clear();
  assertEquals(w.values, []);
});

function host() {
  const root = Deno.makeTempDirSync({ prefix: "huatuo-memburst-" });
  Deno.mkdirSync(`${root}/proc`);
  const meminfo = Deno.readTextFileSync(new URL("../../../fixtures/autotracing/meminfo", import.meta.url));
  const anon = (kB: number) =>
    Deno.writeTextFileSync(
      `${root}/proc/meminfo`,
      meminfo.replace(/^AnonPages:\s+\d+ kB$/m, `AnonPages: ${kB} kB`),
    );
  const proc = (pid: number, name: string, rssKb?: number) => {
    Deno.mkdirSync(`${root}/proc/${pid}`);
    Deno.writeTextFileSync(
      `${root}/proc/${pid}/status`,
      `Name:\t${name}\nState:\tS (sleeping)\nTgid:\t${pid}\n${
        rssKb === undefined ? "" : `VmRSS:\t${rssKb} kB\n`
      }`,
    );
  };
  return { fs: new HostFs(root), anon, proc, cleanup: () => Deno.removeSync(root, { recursive: true }) };
}

Deno.test("memburst trigger: a window of SlidingWindowLength readings; the top DumpProcessMaxNum processes by RSS", async () => {
  const h = host();
  try {
    // MemTotal of the fixture: 24683772 kB; 10 % is 2468377 kB.
    const cfg = {
      ...defaultConfig().AutoTracing.MemoryBurst,
      DeltaAnonThreshold: 10,
      SlidingWindowLength: 2,
      DumpProcessMaxNum: 2,
    };
    const t = new MemBurstTrigger(h.fs, cfg);
    h.anon(1_000_000);
    t.prepare();
    h.anon(1_500_000);
    assertEquals(t.poll(), []);
    h.anon(2_600_000); // 2.6× the oldest (1.0 M) and over 10 % of RAM
    assertEquals(t.poll(), [{ key: "host", data: {} }]);
    h.anon(2_600_000); // the oldest is now 1.5 M: not doubled
    assertEquals(t.poll(), []);
    h.anon(5_300_000); // doubled from 2.6 M, two readings ago
    assertEquals(t.poll().length, 1);

    h.proc(10, "python3", 2_097_152);
    h.proc(11, "java", 8_388_608);
    h.proc(12, "sleep", 700);
    h.proc(2, "kthreadd"); // a kernel thread: no VmRSS
    const r = await t.capture();
    assertEquals(r.data, {
      top_memory_usage: [
        { pid: 11, process_name: "java", memory_size: 8_388_608 * 1024 },
        { pid: 10, process_name: "python3", memory_size: 2_097_152 * 1024 },
      ],
    });
    assertEquals(r.samples, 2);
    assertEquals(t.manualData(), {});
  } finally {
    h.cleanup();
  }
});

Deno.test("topByRss on the real /proc: this process is listed with its VmRSS, largest first", async () => {
  const top = await topByRss(new HostFs(""), 100_000);
  const me = top.find((p) => p.pid === Deno.pid);
  assert(me, "this test process is listed");
  assert(me.memory_size > 10 * 1024 * 1024, `deno's RSS ${me.memory_size}`);
  assert(top.every((p, i) => i === 0 || top[i - 1].memory_size >= p.memory_size));
});
