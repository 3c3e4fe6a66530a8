// cpusys: the condition (sys AND its rise), the readings between /proc/stat
// samples of a fixture host, the document's fields and the profile it asks
// for; no profiler: unsupported.

import { assert, assertEquals, assertRejects } from "../../../testing/assert.ts";
import { HostFs } from "../../host/fs.ts";
import { defaultConfig } from "../../config/schema.ts";
import type { Profile, Profiler, ProfileRequest } from "../../profile/profile.ts";
import { UnsupportedError } from "../../tracing/manager.ts";
import { CPUSYS_COOLDOWN_SEC, cpusysData, cpusysFires, CpuSysTrigger } from "./cpusys.ts";

const cfg = { ...defaultConfig().AutoTracing.CPUSys, Interval: 1, RunTracingToolTimeout: 3 };

Deno.test("cpusys fires when sys reaches SysThreshold AND rose by DeltaSysThreshold", () => {
  const t = { SysThreshold: 45, DeltaSysThreshold: 20 };
  assertEquals(cpusysFires({ nowSys: 52, deltaSys: 25 }, t), true, "the seed's example");
  assertEquals(cpusysFires({ nowSys: 45, deltaSys: 20 }, t), true, "reaching is enough");
  assertEquals(cpusysFires({ nowSys: 60, deltaSys: 5 }, t), false, "high but steady");
  assertEquals(cpusysFires({ nowSys: 30, deltaSys: 25 }, t), false, "a rise below the threshold");
  assertEquals(cpusysFires({ nowSys: 44.99, deltaSys: 40 }, t), false);
});

/** A host whose /proc/stat the test rewrites: "cpu user nice system idle iowait irq softirq steal". */
function host() {
  const root = Deno.makeTempDirSync({ prefix: "huatuo-cpusys-" });
  Deno.mkdirSync(`${root}/proc`);
  const write = (user: number, system: number, idle: number, softirq = 0) =>
    Deno.writeTextFileSync(
      `${root}/proc/stat`,
      `cpu  ${user} 0 ${system} ${idle} 0 0 ${softirq} 0 0 0\ncpu0 ${user} 0 ${system} ${idle} 0 0 ${softirq} 0 0 0\n`,
    );
  return { fs: new HostFs(root), write, cleanup: () => Deno.removeSync(root, { recursive: true }) };
}

class FakeProfiler implements Profiler {
  asked: ProfileRequest[] = [];
  capture(req: ProfileRequest): Promise<Profile> {
    this.asked.push(req);
    return Promise.resolve({
      samples: [{ tgid: 7, process: "stress-ng", frames: ["entry_SYSCALL_64", "do_syscall_64"], count: 40 }],
      total: 40,
      lost: 0,
      durationMs: req.durationMs,
      frequencyHz: 99,
    });
  }
}

Deno.test("cpusys trigger: sys per Interval from /proc/stat, fires on the jump, profiles the host", async () => {
  const h = host();
  try {
    const profiler = new FakeProfiler();
    const t = new CpuSysTrigger(h.fs, cfg, profiler);
    assertEquals([t.intervalMs, t.captureMs, t.cooldownMs], [1000, 3000, CPUSYS_COOLDOWN_SEC * 1000]);
    h.write(1000, 1000, 8000);
    t.prepare();
    h.write(1100, 1100, 8800); // 10% sys: the first Interval has nothing to rise from
    assertEquals(t.poll(), []);
    h.write(1200, 1500, 9100, 200); // sys 40 + softirq 20 of 1000 ticks = 60%, up 50
    const [f] = t.poll();
    assertEquals(f.key, "host");
    assertEquals(f.data, { now_sys: 60, sys_threshold: 45, deltasys: 50, deltasys_threshold: 20 });
    h.write(1300, 2100, 9400, 200); // 60% again: steady, no rise
    assertEquals(t.poll(), []);
    h.write(1300, 2100, 9400, 200); // no tick passed (a static fixture): nothing
    assertEquals(t.poll(), []);
    const signal = new AbortController().signal;
    const r = await t.capture(f, { durationMs: 3000, signal });
    assertEquals(profiler.asked, [{ durationMs: 3000, scope: { kind: "host" }, signal }]);
    assertEquals(r.samples, 40);
    const flame = r.data.flamedata as { label: string; value: number }[];
    assertEquals(flame.map((x) => x.label), ["all", "stress-ng", "entry_SYSCALL_64", "do_syscall_64"]);
    assert(flame.every((x) => x.value === 40));
    // On demand: the latest reading (60, up 0 since the previous Interval).
    assertEquals(t.manualData(), { now_sys: 60, sys_threshold: 45, deltasys: 0, deltasys_threshold: 20 });
  } finally {
    h.cleanup();
  }
});

Deno.test("cpusys without a CPU profiler is unsupported; without /proc/stat it fails to start", async () => {
  const h = host();
  try {
    const none = new CpuSysTrigger(h.fs, cfg, undefined);
    await assertRejects(() => Promise.resolve().then(() => none.prepare()), UnsupportedError);
    const broken = new CpuSysTrigger(h.fs, cfg, new FakeProfiler());
    await assertRejects(() => Promise.resolve().then(() => broken.prepare()), /proc\/stat/);
    assertEquals(cpusysData(undefined, cfg), {
      now_sys: 0,
      sys_threshold: 45,
      deltasys: 0,
      deltasys_threshold: 20,
    });
  } finally {
    h.cleanup();
  }
});
