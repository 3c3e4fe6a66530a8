import { assert, assertEquals } from "../../../testing/assert.ts";
import {
  type CgroupController,
  type Container,
  type ContainerRegistry,
  type ControllerIdLookup,
  controllerLookup,
} from "../../pod/container.ts";
import { CgroupKeyJoin, u64Key } from "./bpf_join.ts";
import { runqlatContainerSamples } from "../runqlat/runqlat.ts";
import { iolatCgroupKey, iolatencyContainerSamples } from "../iolatency/iolatency.ts";
import { memcgReclaimContainerSamples } from "../memory_reclaim/memory_reclaim.ts";

function container(
  id: string,
  ids: Partial<Pick<Container, "cgroupId" | "memcgId" | "cpuCgroupId">>,
): Container {
  return {
    id: id.repeat(64).slice(0, 64),
    podUid: "",
    qosFromPath: "burstable",
    runtime: "containerd",
    cgroupPaths: {},
    cgroupId: ids.cgroupId ?? 0,
    memcgId: ids.memcgId ?? 0,
    cpuCgroupId: ids.cpuCgroupId ?? 0,
    blkioCgroupId: 0,
    initPid: 0,
    netnsInode: 0,
  };
}

const A = container("a", { cgroupId: 100, cpuCgroupId: 7, memcgId: 8 });
const B = {
  ...container("b", { cgroupId: 200, cpuCgroupId: 100, memcgId: 9 }),
  pod: { name: "etcd", pod: "etcd-host", namespace: "kube-system", qos: "burstable", type: "normal" },
};

/** A registry that, like CgroupContainerRegistry on a hybrid host, knows which hierarchy a controller is in. */
function fakeRegistry(
  list: Container[],
  current: Container[] = list,
): ContainerRegistry & ControllerIdLookup {
  const find = (pick: (c: Container) => number, id: number | bigint) =>
    current.find((c) => pick(c) !== 0 && BigInt(pick(c)) === BigInt(id));
  return {
    list: () => current,
    byId: (id) => current.find((c) => c.id === id),
    byCgroupId: (id) => find((c) => c.cgroupId, id) ?? find((c) => c.memcgId, id),
    byNetns: () => undefined,
    byControllerCgroupId: (controller: CgroupController, id) =>
      controller === "cpu" ? find((c) => c.cpuCgroupId, id) : find((c) => c.cgroupId, id),
  };
}

Deno.test("controllerLookup uses the controller's id kind, never another hierarchy's", () => {
  const reg = fakeRegistry([A, B]);
  const cpu = controllerLookup(reg, "cpu");
  assertEquals(cpu(7n)?.id, A.id);
  // 100 is A's cgroup2 id but B's cpu inode: a cpu key 100 is B.
  assertEquals(cpu(100n)?.id, B.id);
  assertEquals(controllerLookup(reg, "blkio")(100n)?.id, A.id);
  // A plain ContainerRegistry falls back to byCgroupId.
  const { byControllerCgroupId: _, ...plain } = reg;
  assertEquals(controllerLookup(plain, "cpu")(7n), undefined);
  assertEquals(controllerLookup(plain, "memory")(200n)?.id, B.id);
});

Deno.test("join: known ids matched, unknown ids dropped, then deleted after the grace period", () => {
  const reg = fakeRegistry([A, B]);
  const lookup = controllerLookup(reg, "cpu");
  const join = new CgroupKeyJoin(30_000);
  const entries = [{ cgroup: 7n, v: 1 }, { cgroup: 100n, v: 2 }, { cgroup: 555n, v: 3 }];

  let r = join.join(entries, lookup, 1_000);
  assertEquals(r.matched.map((m) => [m.entry.v, m.container.id]), [[1, A.id], [2, B.id]]);
  assertEquals(r.stale, [], "an unknown id may be a container the registry has not found yet");

  r = join.join(entries, lookup, 30_999);
  assertEquals(r.stale, [], "still within the grace period");
  r = join.join(entries, lookup, 31_000);
  assertEquals(r.stale.map((e) => e.cgroup), [555n], "unknown for the whole grace period");
  assertEquals(r.matched.length, 2);

  // Deleted and re-created by BPF: a fresh grace period starts.
  r = join.join(entries, lookup, 32_000);
  assertEquals(r.stale, []);
});

Deno.test("join: an unknown id that becomes a container keeps its entry", () => {
  const C = container("c", { cpuCgroupId: 555 });
  const current: Container[] = [A];
  const reg = fakeRegistry([A, C], current);
  const join = new CgroupKeyJoin(30_000);
  const entries = [{ cgroup: 555n }];
  assertEquals(join.join(entries, controllerLookup(reg, "cpu"), 0).matched, []);
  current.push(C); // the next registry refresh finds it
  const r = join.join(entries, controllerLookup(reg, "cpu"), 40_000);
  assertEquals(r.matched.map((m) => m.container.id), [C.id]);
  assertEquals(r.stale, []);
});

Deno.test("join: a container's ids are stale as soon as the registry drops it; every entry of the id", () => {
  const current: Container[] = [A, B];
  const reg = fakeRegistry([A, B], current);
  const lookup = controllerLookup(reg, "blkio"); // cgroup2 ids
  const join = new CgroupKeyJoin(60_000);
  const entries = [
    { cgroup: 100n, dev: 1, kind: 0 },
    { cgroup: 100n, dev: 1, kind: 1 },
    { cgroup: 200n, dev: 1, kind: 0 },
  ];
  assertEquals(join.join(entries, lookup, 0).matched.length, 3);
  current.splice(0, 1); // A deleted
  const r = join.join(entries, lookup, 1_000);
  assertEquals(r.matched.map((m) => m.container.id), [B.id]);
  assertEquals(r.stale, entries.slice(0, 2));
  // Gone from the map after the delete: forgotten; if BPF re-adds it, it is an unknown id again.
  assertEquals(join.join(entries.slice(2), lookup, 2_000).stale, []);
  assertEquals(join.join(entries, lookup, 3_000).stale, [], "back, but now within a fresh grace period");
});

Deno.test("sample builders: seed names and label sets", () => {
  const runq = runqlatContainerSamples([{ entry: { cgroup: 100n, zones: [226, 0, 0, 3] }, container: B }]);
  assertEquals(runq.map((s) => [s.name, s.value, s.labels?.zone]), [
    ["runqlat_container_latency", 226, "0"],
    ["runqlat_container_latency", 0, "1"],
    ["runqlat_container_latency", 0, "2"],
    ["runqlat_container_latency", 3, "3"],
  ]);
  assertEquals(runq[0].labels, {
    container_host: "etcd-host",
    container_hostnamespace: "kube-system",
    container_level: "burstable",
    container_name: "etcd",
    container_type: "normal",
    zone: "0",
  });

  const dev = (253 << 20) | 1;
  const io = iolatencyContainerSamples([
    { entry: { cgroup: 200n, dev, kind: 1, zones: [0, 0, 0, 0, 0, 2] }, container: B },
    { entry: { cgroup: 200n, dev, kind: 0, zones: [1, 0, 0, 0, 0, 0] }, container: B },
    { entry: { cgroup: 200n, dev, kind: 9, zones: [1, 0, 0, 0, 0, 0] }, container: B },
  ]);
  assertEquals(io.length, 12, "six zones per kind; an unknown kind is skipped");
  const d2c5 = io.find((s) => s.name === "iolatency_container_blkdisk_d2c" && s.labels?.zone === "5")!;
  assertEquals(d2c5.value, 2);
  assertEquals(d2c5.labels?.disk, "253:1");
  assertEquals(d2c5.help, "container blkio d2c latency");
  assertEquals(Object.keys(d2c5.labels!).sort(), [
    "container_host",
    "container_hostnamespace",
    "container_level",
    "container_name",
    "container_type",
    "disk",
    "zone",
  ]);
  assert(io.some((s) => s.name === "iolatency_container_blkdisk_q2c" && s.value === 1));

  const mem = memcgReclaimContainerSamples([{ entry: { cgroup: 8n, count: 5, stallNs: 9e6 }, container: A }]);
  assertEquals(mem.map((s) => [s.name, s.value]), [["memory_reclaim_container_directstall", 5]]);
  assertEquals(mem[0].labels, {
    container_host: "",
    container_hostnamespace: "",
    container_level: "burstable",
    container_name: A.id.slice(0, 12),
    container_type: "",
  });
});

Deno.test("map keys for deletion: u64 cgroup id; iolat_cg_key {u64 cgid, u32 dev, u32 kind}", () => {
  assertEquals([...u64Key(0x0102030405060708n)], [8, 7, 6, 5, 4, 3, 2, 1]);
  const key = iolatCgroupKey({ cgroup: 0x1_0000_0002n, dev: (7 << 20) | 3, kind: 1, zones: [] });
  assertEquals([...key], [2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0x70, 0, 1, 0, 0, 0]);
});
