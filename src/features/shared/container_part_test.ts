// Merging container collectors into host collectors of the same BlackList name.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import type { CollectorDefinition } from "../feature.ts";
import { gauge } from "../../core/sample.ts";
import { CONTAINER_COLLECTORS, mergeCollectors, withContainerCollectors } from "./container_part.ts";
import { context, FIXTURES, staticRegistry, v1Container } from "../../../testing/containers.ts";

const host = (name: string, fail = false): CollectorDefinition => ({
  name,
  create: () => ({
    name,
    collect: () => fail ? Promise.reject(new Error("boom")) : Promise.resolve([gauge(`${name}_x`, "h", 1)]),
  }),
});

Deno.test("names: one BlackList name per seed family", () => {
  assertEquals(CONTAINER_COLLECTORS.map((d) => d.name), [
    "cpu_util",
    "cpu_stat",
    "loadavg",
    "memory_vmstat",
    "memory_events",
    "netdev",
    "netstat",
    "sockstat",
    "arp",
  ]);
});

Deno.test("withContainerCollectors: same name merged, container-only appended, no registry → unchanged", async () => {
  const defs = [host("cpu_util"), host("netdev")];
  assertEquals(withContainerCollectors(defs, undefined).map((d) => d.name), ["cpu_util", "netdev"]);
  const merged = withContainerCollectors(defs, staticRegistry([v1Container()]));
  assertEquals(merged.map((d) => d.name), [
    "cpu_util",
    "netdev",
    "cpu_stat",
    "loadavg",
    "memory_vmstat",
    "memory_events",
    "netstat",
    "sockstat",
    "arp",
  ]);
  const ctx = context(`${FIXTURES}v1`);
  const names = (await merged[0].create(ctx).collect()).map((s) => s.name);
  assertEquals(names.slice(0, 2), ["cpu_util_x", "cpu_util_container_cores"]);
  assertEquals(merged[0].create(ctx).name, "cpu_util");
});

Deno.test("mergeCollectors: a failing part fails the collector and is named", async () => {
  const ctx = context(`${FIXTURES}v1`);
  const bad = { name: "c", collect: () => Promise.reject(new Error("cgroup garbled")) };
  await assertRejects(
    () => mergeCollectors(host("a").create(ctx), bad).collect(),
    /^Error: containers: cgroup garbled$|containers: cgroup garbled/,
  );
  await assertRejects(
    () => mergeCollectors(host("a", true).create(ctx), bad).collect(),
    /boom; containers: cgroup garbled/,
  );
});
