import { assert, assertEquals } from "../../testing/assert.ts";
import { HostFs } from "../host/fs.ts";
import {
  discoverContainers,
  findHierarchies,
  lowestPid,
  netnsInode,
  normalizeRoot,
  primaryHierarchy,
} from "./discovery.ts";
import {
  CGROUP_TREE_SKIP,
  CgroupTestTree,
  randomHex,
  sampleSpecs,
  statInode,
} from "../../testing/cgroup_tree.ts";

const fs = new HostFs();

Deno.test("lowestPid and normalizeRoot", () => {
  assertEquals(lowestPid(""), 0);
  assertEquals(lowestPid("812\n77\n4096\n"), 77);
  assertEquals(lowestPid("x\n\n12"), 12);
  assertEquals(normalizeRoot(undefined), "/");
  assertEquals(normalizeRoot("//huatuo-it-disc/./a/"), "/huatuo-it-disc/a");
  let threw = false;
  try {
    normalizeRoot("/a/../b");
  } catch {
    threw = true;
  }
  assert(threw, "'..' must be refused");
});

/** A fake hybrid mount base: v1 dirs carry cgroup.procs, the cgroup2 dir cgroup.controllers. */
async function fakeMounts(base: string, v1: string[], unified: string | undefined): Promise<void> {
  for (const name of v1) {
    await Deno.mkdir(`${base}/${name}`, { recursive: true });
    await Deno.writeTextFile(`${base}/${name}/cgroup.procs`, "");
  }
  if (unified !== undefined) {
    await Deno.mkdir(`${base}/${unified}`, { recursive: true });
    await Deno.writeTextFile(`${base}/${unified}/cgroup.controllers`, "cpu memory\n");
  }
}

Deno.test("findHierarchies: hybrid with cpu,cpuacct aliases, and pure cgroup2", async () => {
  const base = await Deno.makeTempDir({ prefix: "huatuo-disc-" });
  try {
    await fakeMounts(`${base}/hybrid`, ["cpu,cpuacct", "memory", "systemd"], "unified");
    await Deno.symlink("cpu,cpuacct", `${base}/hybrid/cpu`);
    await Deno.symlink("cpu,cpuacct", `${base}/hybrid/cpuacct`);
    await Deno.mkdir(`${base}/hybrid/not-a-cgroup`);
    const hs = await findHierarchies(`${base}/hybrid`);
    assertEquals(hs.map((h) => [h.name, h.controllers]), [
      ["cpu,cpuacct", ["cpu", "cpuacct"]],
      ["memory", ["memory"]],
      ["systemd", ["systemd"]],
      ["unified", []],
    ]);
    await fakeMounts(`${base}/v2`, [], "");
    assertEquals(await findHierarchies(`${base}/v2`), [{
      name: "unified",
      path: `${base}/v2`,
      controllers: [],
    }]);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("discoverContainers over a fixture tree (HostFs prefix): merge per id, no process", async () => {
  const prefix = await Deno.makeTempDir({ prefix: "huatuo-disc-" });
  try {
    const base = `${prefix}/sys/fs/cgroup`;
    await fakeMounts(base, ["cpu,cpuacct", "memory"], "unified");
    const id = randomHex(64);
    const uid = crypto.randomUUID();
    const rel = `/kubepods/burstable/pod${uid}/${id}`;
    for (const h of ["cpu,cpuacct", "memory", "unified"]) {
      await Deno.mkdir(`${base}/${h}${rel}/sub`, { recursive: true });
      await Deno.writeTextFile(`${base}/${h}${rel}/cgroup.procs`, "");
    }
    const res = await discoverContainers({ fs: new HostFs(prefix) });
    assertEquals(res.errors, []);
    assertEquals(res.containers.length, 1);
    const c = res.containers[0];
    assertEquals([c.id, c.podUid, c.qosFromPath, c.runtime], [id, uid, "burstable", ""]);
    assertEquals(c.cgroupPaths, {
      "cpu,cpuacct": `${base}/cpu,cpuacct${rel}`,
      memory: `${base}/memory${rel}`,
      unified: `${base}/unified${rel}`,
    });
    assertEquals(c.cgroupId, (await Deno.stat(`${base}/unified${rel}`)).ino);
    assertEquals(c.memcgId, (await Deno.stat(`${base}/memory${rel}`)).ino);
    assertEquals(c.cpuCgroupId, (await Deno.stat(`${base}/cpu,cpuacct${rel}`)).ino);
    assertEquals([c.initPid, c.netnsInode], [0, 0]);
    // Only the memory hierarchy is walked, not the container's own sub-cgroup: root + kubepods +
    // burstable + pod; the other hierarchies' directories are found by path.
    assertEquals(res.dirs, 4);
  } finally {
    await Deno.remove(prefix, { recursive: true });
  }
});

Deno.test("discoverContainers: a walk bound is reported, not silent", async () => {
  const prefix = await Deno.makeTempDir({ prefix: "huatuo-disc-" });
  try {
    await fakeMounts(`${prefix}/sys/fs/cgroup`, [], "");
    for (let i = 0; i < 20; i++) await Deno.mkdir(`${prefix}/sys/fs/cgroup/s${i}.slice`);
    const res = await discoverContainers({ fs: new HostFs(prefix), maxDirs: 5 });
    assertEquals(res.dirs, 5);
    assertEquals(res.errors.length, 1);
    assert(res.errors[0].includes("walk stopped after 5 directories"), res.errors[0]);
  } finally {
    await Deno.remove(prefix, { recursive: true });
  }
});

Deno.test({
  name: "discoverContainers on the real cgroup hierarchies: both driver grammars, ids, pids, netns",
  ignore: CGROUP_TREE_SKIP !== undefined,
  fn: async () => {
    const tree = await CgroupTestTree.create("disc");
    try {
      const specs = sampleSpecs();
      for (const s of specs) await tree.add(s);
      const res = await discoverContainers({ fs, root: tree.root });
      assertEquals(res.errors, []);
      assertEquals(res.containers.map((c) => c.id), specs.map((s) => s.id).sort());
      const memory = res.hierarchies.find((h) => h.controllers.includes("memory"))!.name;
      const cpu = res.hierarchies.find((h) => h.controllers.includes("cpu"))!.name;
      for (const c of res.containers) {
        const t = tree.containers.get(c.id)!;
        assertEquals([c.podUid, c.qosFromPath, c.runtime], [t.podUid, t.qos, t.runtime], t.rel);
        for (const [h, dir] of Object.entries(t.dirs)) assertEquals(c.cgroupPaths[h], dir, `${h} ${t.rel}`);
        assertEquals(c.cgroupId, await statInode(t.dirs["unified"]), `cgroupId ${t.rel}`);
        assertEquals(c.memcgId, await statInode(t.dirs[memory]), `memcgId ${t.rel}`);
        assertEquals(c.cpuCgroupId, await statInode(t.dirs[cpu]), `cpuCgroupId ${t.rel}`);
        assertEquals(c.initPid, t.pid, `initPid ${t.rel}`);
        assertEquals(c.netnsInode, await statInode(`/proc/${t.pid}/ns/net`, true), `netns ${t.rel}`);
        const mine = await statInode(`/proc/${Deno.pid}/ns/net`, true);
        assertEquals(c.netnsInode !== mine, t.ownNetns === true, `own netns ${t.rel}`);
      }
      assertEquals(netnsInode(fs, Deno.pid), await statInode(`/proc/${Deno.pid}/ns/net`, true));

      // A removed container is not found by the next scan.
      const gone = specs[3];
      await tree.remove(gone.id);
      const after = await discoverContainers({ fs, root: tree.root });
      assertEquals(
        after.containers.map((c) => c.id),
        specs.filter((s) => s !== gone).map((s) => s.id).sort(),
      );
    } finally {
      await tree.cleanup();
    }
  },
});

Deno.test("primaryHierarchy: v1 memory on v1/hybrid hosts, else the unified one", () => {
  const h = (name: string, controllers: string[]) => ({ name, path: `/sys/fs/cgroup/${name}`, controllers });
  const hybrid = [h("cpu,cpuacct", ["cpu", "cpuacct"]), h("memory", ["memory"]), h("unified", [])];
  assertEquals(primaryHierarchy(hybrid).name, "memory");
  assertEquals(primaryHierarchy([h("unified", [])]).name, "unified");
  assertEquals(primaryHierarchy([h("cpu,cpuacct", ["cpu", "cpuacct"]), h("unified", [])]).name, "unified");
});
