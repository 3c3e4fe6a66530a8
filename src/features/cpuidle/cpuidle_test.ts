// cpuidle: the three (value, rise) pairs, a fixture container's cpuacct.stat
// read per Interval against its CFS quota, the document's fields, the
// container-scoped profile, Filter.

import { assertEquals, assertRejects, assertThrows } from "../../../testing/assert.ts";
import { context, copyFixture, staticRegistry, V1_ID, v1Container } from "../../../testing/containers.ts";
import { defaultConfig } from "../../config/schema.ts";
import type { Profile, Profiler, ProfileRequest } from "../../profile/profile.ts";
import { UnsupportedError } from "../../tracing/manager.ts";
import { containerScope, cpuidleData, cpuidleFires, CpuIdleTrigger } from "./cpuidle.ts";

const cfg = { ...defaultConfig().AutoTracing.CPUIdle, Interval: 10 };

Deno.test("cpuidle fires when any (value, rise) pair reaches its thresholds", () => {
  const r = (usr: number, sys: number, dusr: number, dsys: number) => ({
    util: { usr, sys, total: usr + sys },
    delta: { usr: dusr, sys: dsys, total: dusr + dsys },
  });
  // The seed's example: user 80 up 48.
  assertEquals(cpuidleFires(r(80, 12, 48, 5), cfg), true);
  assertEquals(cpuidleFires(r(80, 12, 40, 5), cfg), false, "user high, rise too small; total 92 up 45 < 55");
  assertEquals(cpuidleFires(r(10, 45, 0, 20), cfg), true, "sys pair at its thresholds");
  assertEquals(cpuidleFires(r(50, 40, 30, 25), cfg), true, "usage 90 up 55");
  assertEquals(cpuidleFires(r(50, 39, 30, 25), cfg), false, "usage 89");
  assertEquals(cpuidleFires(r(100, 0, 0, 0), cfg), false, "saturated but steady");
});

class FakeProfiler implements Profiler {
  asked: ProfileRequest[] = [];
  capture(req: ProfileRequest): Promise<Profile> {
    this.asked.push(req);
    const samples = [{ tgid: 1201, process: "java", frames: ["com.example.App.main"], count: 8 }];
    return Promise.resolve({ samples, total: 8, lost: 0, durationMs: req.durationMs, frequencyHz: 99 });
  }
}

Deno.test("cpuidle trigger: per-container use against its quota, fires on the jump, profiles its cgroup", async () => {
  const root = await copyFixture("v1");
  try {
    // The fixture container: CFS quota 2 CPUs; cpuacct.stat in USER_HZ ticks (10 ms).
    const c = { ...v1Container(`${root}`), cgroupId: 0, cpuCgroupId: 4242 };
    const stat = `${c.cgroupPaths.cpuacct}/cpuacct.stat`;
    let now = 0;
    const profiler = new FakeProfiler();
    const t = new CpuIdleTrigger(context(root).fs, cfg, staticRegistry([c]), profiler, () => now);
    t.prepare();
    Deno.writeTextFileSync(stat, "user 4000\nsystem 1000\n");
    assertEquals(await t.poll(), [], "the first reading has no window");
    now += 10_000;
    Deno.writeTextFileSync(stat, "user 4200\nsystem 1200\n"); // 200 ticks of 2000: 10% each
    assertEquals(await t.poll(), [], "the first window has no previous one to rise from");
    now += 10_000;
    Deno.writeTextFileSync(stat, "user 6000\nsystem 1300\n"); // user 90%, sys 5%
    const [f] = await t.poll();
    assertEquals([f.key, f.container?.id], [V1_ID, V1_ID]);
    assertEquals(f.data, {
      user: 90,
      user_threshold: 75,
      deltauser: 80,
      deltauser_threshold: 45,
      sys: 5,
      sys_threshold: 45,
      deltasys: -5,
      deltasys_threshold: 20,
      usage: 95,
      usage_threshold: 90,
      deltausage: 75,
      deltausage_threshold: 55,
    });
    const signal = new AbortController().signal;
    const r = await t.capture(f, { durationMs: 10_000, signal });
    assertEquals(profiler.asked[0].scope, { kind: "container", cgroup2Id: undefined, cpuCgroupInode: 4242n });
    assertEquals((r.data.flamedata as { label: string }[]).map((x) => x.label), [
      "all",
      "java",
      "com.example.App.main",
    ]);
    assertEquals(t.manualData(c), f.data, "on demand: the latest reading");
    assertEquals(cpuidleData(undefined, cfg).usage, 0);
    // A container that goes away leaves no state.
    const empty = new CpuIdleTrigger(context(root).fs, cfg, staticRegistry([]), profiler, () => now);
    empty.prepare();
    assertEquals(await empty.poll(), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("cpuidle: Filter rules decide which containers it watches; no profiler: unsupported", async () => {
  const c = v1Container(); // pod coredns-855c4dd65d-8v5kg in kube-system, burstable
  const rules = (Excluded: { Field: "container_host_namespace"; Pattern: string }[]) =>
    new CpuIdleTrigger(context("/").fs, { ...cfg, Filter: { Included: [], Excluded } }, staticRegistry([c]), {
      capture: () => Promise.reject(new Error("unused")),
    });
  assertEquals(rules([]).admits(c), true);
  assertEquals(rules([{ Field: "container_host_namespace", Pattern: "^kube-" }]).admits(c), false);
  const none = new CpuIdleTrigger(context("/").fs, cfg, staticRegistry([c]), undefined);
  await assertRejects(() => Promise.resolve().then(() => none.prepare()), UnsupportedError);
  assertThrows(() => containerScope({ ...c, cgroupId: 0, cpuCgroupId: 0 }), /no cgroup id/);
  assertEquals(containerScope({ ...c, cgroupId: 77, cpuCgroupId: 0 }), {
    kind: "container",
    cgroup2Id: 77n,
    cpuCgroupInode: undefined,
  });
});
