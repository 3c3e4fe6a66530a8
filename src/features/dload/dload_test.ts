// dload: task-state counts, the 1-minute EMA, the fixture container
// (fixtures/autotracing/dload) counted per Interval, the capture (the
// container's D-state stacks first, then the host's), IssuesList marking.

import { assert, assertEquals } from "../../../testing/assert.ts";
import { staticRegistry } from "../../../testing/containers.ts";
import { defaultConfig } from "../../config/schema.ts";
import { HostFs } from "../../host/fs.ts";
import type { Container } from "../../pod/container.ts";
import { countStates, DLOAD_EMA_SEC, dloadData, DloadTrigger, ema, emaDecay } from "./dload.ts";

const ROOT = new URL("../../../fixtures/autotracing/dload", import.meta.url).pathname;

Deno.test("countStates: R running; S and I sleeping; D uninterruptible; T and t stopped; Z and X not counted", () => {
  assertEquals(countStates(["R", "S", "S", "I", "D", "D", "T", "t", "Z", "X"]), {
    running: 1,
    sleeping: 3,
    uninterruptible: 2,
    stopped: 2,
  });
});

Deno.test("the EMA is the kernel's load average over a 1-minute constant", () => {
  assertEquals(DLOAD_EMA_SEC, 60);
  const d = emaDecay(5);
  assert(Math.abs(d - 0.9200444146293233) < 1e-12, "exp(-5/60): the kernel's EXP_1 = 1884/2048 = 0.9199");
  // 8 tasks in D from 0: after one minute of 10 s polls the average is 8·(1 − 1/e) ≈ 5.06.
  let x = 0;
  for (let i = 0; i < 6; i++) x = ema(x, 8, emaDecay(10));
  assert(Math.abs(x - 8 * (1 - Math.exp(-1))) < 1e-9, String(x));
  // And decays the same way once they are gone.
  assert(Math.abs(ema(x, 0, emaDecay(60)) - x / Math.E) < 1e-9);
});

const container: Container = {
  id: "d".repeat(64),
  podUid: "",
  qosFromPath: "burstable",
  runtime: "containerd",
  cgroupPaths: { cpu: `${ROOT}/sys/fs/cgroup/cpu/kubepods/podx/ctr1` },
  cgroupId: 0,
  memcgId: 0,
  cpuCgroupId: 0,
  blkioCgroupId: 0,
  initPid: 1201,
  netnsInode: 0,
  pod: { name: "app", pod: "app-0", namespace: "shop", qos: "burstable", type: "normal" },
};

Deno.test("dload trigger: counts the container's threads per Interval, fires when the EMA is above ThresholdLoad", async () => {
  const cfg = { ...defaultConfig().AutoTracing.Dload, Interval: 10, ThresholdLoad: 0.25 };
  const issues: [string, string][] = [["frozen_fs", "percpu_rwsem_wait"], ["never", "no_such_frame"]];
  const t = new DloadTrigger(new HostFs(ROOT), cfg, issues, staticRegistry([container]));
  t.prepare();
  // Of 1201 (R), 1202 (S), 1203 (D) and 1209 (exited): one thread in D.
  assertEquals(await t.poll(), [], "1 in D: the average is 0.15 after 10 s, 0.28 after 20 s");
  const [f] = await t.poll();
  assertEquals([f.key, f.container?.id], [container.id, container.id]);
  const e1 = 1 - emaDecay(10), e2 = 1 - emaDecay(10) ** 2;
  assertEquals(f.data, {
    threshold: 0.25,
    nr_sleeping: 1,
    nr_running: 1,
    nr_stopped: 0,
    nr_uninterruptible: 1,
    nr_iowait: 0,
    load_avg: Math.round(2 * e2 * 100) / 100,
    dload_avg: Math.round(e2 * 100) / 100,
  });
  assert(e1 <= 0.25 && e2 > 0.25);
  const r = await t.capture(f);
  const stack = r.data.stack as string;
  // The container's D task first, then the host's; the sleeping and running ones not at all.
  assertEquals(
    stack.split("\n").filter((l) => l.startsWith("task:")),
    ["task:app log state:D pid:1203 tgid:1203", "task:jbd2/vda-8 state:D pid:4001 tgid:4001"],
  );
  assert(stack.includes(" percpu_rwsem_wait+0x10e/0x130\n"), stack);
  assertEquals(r.data.known_issue, "frozen_fs");
  assertEquals(r.data.nr_iowait, 0, "a frozen file system is a lock wait, not block I/O");
  assertEquals(r.samples, 2);
  // Field order is the seed's: nr_iowait stays in its place when the capture fills it.
  assertEquals(Object.keys({ ...f.data, ...r.data }), [
    "threshold",
    "nr_sleeping",
    "nr_running",
    "nr_stopped",
    "nr_uninterruptible",
    "nr_iowait",
    "load_avg",
    "dload_avg",
    "known_issue",
    "stack",
  ]);
  assertEquals(t.manualData(container), f.data);
  assertEquals(dloadData(undefined, 5).dload_avg, 0);
});

Deno.test("dload: ThresholdLoad 0 fires on any D-state load; no IssuesList match leaves known_issue empty", async () => {
  const cfg = { ...defaultConfig().AutoTracing.Dload, ThresholdLoad: 0 };
  const t = new DloadTrigger(
    new HostFs(ROOT),
    cfg,
    [["other", "ext4_writepages"]],
    staticRegistry([container]),
  );
  t.prepare();
  const [f] = await t.poll();
  assertEquals((await t.capture(f)).data.known_issue, "");
});
