import { assert, assertEquals } from "../../testing/assert.ts";
import { HostFs } from "../host/fs.ts";
import { createLogger } from "../log/logger.ts";
import type { PodInfo } from "./container.ts";
import { CgroupContainerRegistry, type PodSource } from "./registry.ts";
import {
  CGROUP_MOUNT,
  CGROUP_TREE_SKIP,
  CgroupTestTree,
  removeCgroupTree,
  sampleSpecs,
  statInode,
} from "../../testing/cgroup_tree.ts";

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: "Debug", write: (l) => lines.push(l) }) };
}

Deno.test({
  name: "registry on real cgroups: lookups, pod source, churn on refresh and on its timer",
  ignore: CGROUP_TREE_SKIP !== undefined,
  fn: async () => {
    const tree = await CgroupTestTree.create("disc-reg");
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
  },
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

Deno.test({
  name: "registry: v1 blkio ids and controller-exact lookups (v1 inode where a v1 hierarchy holds it)",
  ignore: CGROUP_TREE_SKIP !== undefined,
  fn: async () => {
    const tree = await CgroupTestTree.create("bpfc-reg");
    // The test tree has no blkio hierarchy: the containers get one here, as iolatency needs.
    const blkioRoot = `${CGROUP_MOUNT}/blkio${tree.root}`;
    const hasBlkio = await Deno.stat(`${CGROUP_MOUNT}/blkio/cgroup.procs`).then(() => true, () => false);
    const { log } = capture();
    const reg = new CgroupContainerRegistry({ fs: new HostFs(), log, root: tree.root });
    try {
      const specs = sampleSpecs().slice(0, 3);
      for (const s of specs) {
        const t = await tree.add(s);
        if (!hasBlkio) continue;
        await Deno.mkdir(`${blkioRoot}${s.rel}`, { recursive: true });
        await Deno.writeTextFile(`${blkioRoot}${s.rel}/cgroup.procs`, `${t.pid}\n`);
      }
      await reg.refresh();
      for (const t of tree.containers.values()) {
        const cpu = await statInode(t.dirs["cpu"] ?? t.dirs["cpu,cpuacct"]);
        const mem = await statInode(t.dirs["memory"]);
        const v2 = await statInode(t.dirs["unified"]);
        assertEquals(reg.byControllerCgroupId("cpu", BigInt(cpu))?.id, t.id);
        assertEquals(reg.byControllerCgroupId("memory", mem)?.id, t.id);
        // cpu and memory are v1 here: a cgroup2 id is not theirs.
        if (reg.byCpuCgroupId(v2)?.id !== t.id) assertEquals(reg.byControllerCgroupId("cpu", v2), undefined);
        if (!hasBlkio) continue;
        const blkio = await statInode(`${blkioRoot}${t.rel}`);
        assertEquals(reg.blkioCgroupId(t.id), blkio);
        assertEquals(reg.byBlkioCgroupId(blkio)?.id, t.id);
        assertEquals(reg.byControllerCgroupId("blkio", blkio)?.id, t.id);
      }
      if (!hasBlkio) console.warn("no v1 blkio hierarchy: blkio lookups not checked");
      // Indexes follow relabel() and a removal.
      reg.relabel();
      const gone = specs[0];
      const goneBlkio = reg.blkioCgroupId(gone.id);
      await tree.remove(gone.id);
      await removeCgroupTree(`${blkioRoot}${gone.rel}`);
      await reg.refresh();
      assertEquals(reg.blkioCgroupId(gone.id), 0);
      if (hasBlkio) assertEquals(reg.byBlkioCgroupId(goneBlkio), undefined);
      assertEquals(reg.list().length, specs.length - 1);
    } finally {
      await tree.cleanup();
      await removeCgroupTree(blkioRoot);
    }
  },
});
