// sockstat_container_*: v4 and v6 socket counts of the pod namespace, without
// the host-wide "mem" pools.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import type { Container } from "../../pod/container.ts";
import { sockstatContainer } from "./container.ts";
import { context, FIXTURES, staticRegistry, v1Container, valuesOf } from "../../../testing/containers.ts";

const NET = `${FIXTURES}net`;

function container(name: string, initPid: number): Container {
  const base = v1Container();
  return { ...base, id: name.padEnd(64, "0"), initPid, netnsInode: 0, pod: { ...base.pod!, name } };
}

Deno.test("sockstat_container: socket counts of the pod namespace, no mem fields", async () => {
  const registry = staticRegistry([
    container("coredns", 1201),
    container("sidecar", 1205),
    container("host", 2201),
  ]);
  const samples = await sockstatContainer(context(NET), registry).collect();
  const expected = new Map([
    ["sockstat_container_sockets_used", 7],
    ["sockstat_container_TCP_inuse", 1],
    ["sockstat_container_TCP_orphan", 0],
    ["sockstat_container_TCP_tw", 75],
    ["sockstat_container_TCP_alloc", 171],
    ["sockstat_container_UDP_inuse", 2],
    ["sockstat_container_UDPLITE_inuse", 0],
    ["sockstat_container_RAW_inuse", 0],
    ["sockstat_container_FRAG_inuse", 0],
    ["sockstat_container_FRAG_memory", 0],
    ["sockstat_container_TCP6_inuse", 4],
    ["sockstat_container_UDP6_inuse", 1],
    ["sockstat_container_UDPLITE6_inuse", 0],
    ["sockstat_container_RAW6_inuse", 0],
    ["sockstat_container_FRAG6_inuse", 0],
    ["sockstat_container_FRAG6_memory", 0],
  ]);
  assertEquals(valuesOf(samples, "coredns"), expected);
  assertEquals(valuesOf(samples, "sidecar"), expected);
  assertEquals(valuesOf(samples, "host").size, 0);
  const s = samples.find((s) => s.name === "sockstat_container_TCP_tw")!;
  assertEquals([s.type, s.help], ["gauge", "Number of TCP sockets in state tw."]);
  assertEquals(
    samples.find((s) => s.name === "sockstat_container_sockets_used")!.help,
    "Number of IPv4 sockets in use.",
  );
});

Deno.test("sockstat_container: garbled sockstat fails the collector", async () => {
  await assertRejects(
    () => sockstatContainer(context(NET), staticRegistry([container("broken", 4401)])).collect(),
    /4401\/net\/sockstat: line 1/,
  );
});
