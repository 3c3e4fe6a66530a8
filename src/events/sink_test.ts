import { assertEquals } from "../../testing/assert.ts";
import type { Container, ContainerRegistry } from "../pod/container.ts";
import { eventContainer } from "./sink.ts";

const c: Container = {
  id: "a".repeat(64),
  podUid: "uid-1",
  qosFromPath: "burstable",
  runtime: "containerd",
  cgroupPaths: {},
  cgroupId: 101,
  memcgId: 202,
  cpuCgroupId: 303,
  blkioCgroupId: 0,
  initPid: 42,
  netnsInode: 4026532000,
  pod: { name: "app", pod: "app-7d9", namespace: "prod", qos: "burstable", type: "normal" },
};

const registry: ContainerRegistry = {
  list: () => [c],
  byId: (id) => (id === c.id ? c : undefined),
  byCgroupId: (id) => ([101, 202, 303].includes(Number(id)) ? c : undefined),
  byNetns: (ino) => (ino === c.netnsInode ? c : undefined),
};

const fields = {
  container_id: c.id,
  container_hostname: "app-7d9",
  container_host_namespace: "prod",
  container_type: "normal",
  container_qos: "burstable",
};

Deno.test("eventContainer: by cgroup id (any of the container's ids) or netns inode; host events get none", () => {
  const base = { tracerName: "oom", data: {} };
  assertEquals(eventContainer({ ...base, cgroupId: 202n }, registry), fields);
  assertEquals(eventContainer({ ...base, cgroupId: 101 }, registry), fields);
  assertEquals(eventContainer({ ...base, netnsInode: 4026532000 }, registry), fields);
  assertEquals(eventContainer({ ...base, cgroupId: 1 }, registry), undefined);
  assertEquals(eventContainer({ ...base, cgroupId: 202 }, undefined), undefined);
  // Fields the tracer set itself win.
  assertEquals(eventContainer({ ...base, cgroupId: 202, container: { container_id: "x" } }, registry), {
    container_id: "x",
  });
});

Deno.test("eventContainer: a typed cgroup id is looked up in its own hierarchy only", () => {
  const base = { tracerName: "dropwatch", data: {} };
  // 202 is c's memcg inode; as a cgroup2 id it names nothing (inode numbers of hierarchies coincide).
  const exact: ContainerRegistry = {
    ...registry,
    byControllerCgroupId: (kind, id) =>
      (kind === "cgroup2" ? c.cgroupId : kind === "memory" ? c.memcgId : c.cpuCgroupId) === Number(id)
        ? c
        : undefined,
  };
  assertEquals(eventContainer({ ...base, cgroupId: 202, cgroupKind: "cgroup2" }, exact), undefined);
  assertEquals(eventContainer({ ...base, cgroupId: 101, cgroupKind: "cgroup2" }, exact), fields);
  assertEquals(eventContainer({ ...base, cgroupId: 202n, cgroupKind: "memory" }, exact), fields);
  // Without the exact lookup the id is taken as any kind.
  assertEquals(eventContainer({ ...base, cgroupId: 202, cgroupKind: "cgroup2" }, registry), fields);
});
