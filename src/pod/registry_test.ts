import { assert, assertEquals } from "../testing/assert.ts";
import { HostFs } from "../host/fs.ts";
import { createLogger } from "../log/logger.ts";
import type { PodInfo } from "./container.ts";
import { CgroupContainerRegistry, type PodSource } from "./registry.ts";
import { CgroupTestTree, sampleSpecs, statInode } from "./cgroup_test_tree.ts";

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: "Debug", write: (l) => lines.push(l) }) };
}

Deno.test("registry on real cgroups: lookups, pod source, churn on refresh and on its timer", async () => {
  const tree = await CgroupTestTree.create("disc-reg");
  if (!tree) return;
  const { lines, log } = capture();
  const names = new Map<string, PodInfo>();
  const source: PodSource = { podInfo: (_uid, id) => names.get(id) };
  const reg = new CgroupContainerRegistry({ fs: new HostFs(), log, root: tree.root, intervalMs: 150 });
  try {
    const specs = sampleSpecs();
    for (const s of specs) await tree.add(s);
    await reg.start();
    assertEquals(reg.list().map((c) => c.id), specs.map((s) => s.id).sort());
    const memory = Object.keys(reg.list()[0].cgroupPaths).find((h) => h === "memory")!;
    for (const t of tree.containers.values()) {
      const c = reg.byId(t.id);
      assert(c, t.rel);
      const ino2 = await statInode(t.dirs["unified"]);
      const mem = await statInode(t.dirs[memory]);
      const cpu = await statInode(t.dirs["cpu"] ?? t.dirs["cpu,cpuacct"]);
      assertEquals(reg.byCgroup2Id(ino2)?.id, t.id);
      assertEquals(reg.byCgroup2Id(BigInt(ino2))?.id, t.id);
      assertEquals(reg.byMemcgId(mem)?.id, t.id);
      assertEquals(reg.byCpuCgroupId(cpu)?.id, t.id);
      assertEquals(reg.byCgroupId(ino2)?.id, t.id);
      const ns = await statInode(`/proc/${t.pid}/ns/net`, true);
      // Only the container with a namespace of its own maps; host-network ones do not.
      assertEquals(reg.byNetns(ns)?.id, t.ownNetns ? t.id : undefined, t.rel);
    }
    for (const s of specs) {
      assert(lines.some((l) => l.includes("container appeared") && l.includes(`id=${s.id.slice(0, 12)}`)));
    }

    // Names from the pod source apply on relabel(), without a rescan.
    const named = specs[0];
    names.set(named.id, { name: "app", pod: "web-0", namespace: "shop", qos: "burstable", type: "normal" });
    reg.setPodSource(source);
    assertEquals(reg.byId(named.id)?.pod?.pod, "web-0");
    assertEquals(reg.byId(specs[1].id)?.pod, undefined);

    // Gone after the next explicit refresh.
    await tree.remove(specs[2].id);
    await reg.refresh();
    assertEquals(reg.byId(specs[2].id), undefined);
    assertEquals(reg.list().length, specs.length - 1);
    assert(lines.some((l) => l.includes("container gone") && l.includes(`id=${specs[2].id.slice(0, 12)}`)));

    // And after the timer's refresh, with nobody calling refresh().
    await tree.remove(named.id);
    const deadline = Date.now() + 3000;
    while (reg.byId(named.id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assertEquals(reg.byId(named.id), undefined, "timer refresh did not drop the removed container");
    assertEquals(lines.filter((l) => l.includes("level=warn")), []);
  } finally {
    reg.stop();
    await reg.idle();
    await tree.cleanup();
  }
});

Deno.test("registry logs a discovery failure once, and its recovery", async () => {
  const base = await Deno.makeTempDir({ prefix: "huatuo-disc-" });
  const { lines, log } = capture();
  const reg = new CgroupContainerRegistry({ fs: new HostFs(), log, mountBase: `${base}/cgroup` });
  try {
    for (let i = 0; i < 3; i++) await reg.refresh();
    assertEquals(reg.list(), []);
    assertEquals(lines.filter((l) => l.includes("container discovery failed")).length, 1);
    await Deno.mkdir(`${base}/cgroup`);
    await Deno.writeTextFile(`${base}/cgroup/cgroup.controllers`, "");
    await reg.refresh();
    assertEquals(lines.filter((l) => l.includes("container discovery recovered")).length, 1);
    // Concurrent refreshes share one scan.
    const a = reg.refresh();
    assert(a === reg.refresh());
    await a;
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
