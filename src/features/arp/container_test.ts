// arp_container_entries: the pod namespace's neighbour entries, per container.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import type { Container } from "../../pod/container.ts";
import { arpContainer } from "./container.ts";
import { context, FIXTURES, staticRegistry, v1Container } from "../../../testing/containers.ts";

const NET = `${FIXTURES}net`;

function container(name: string, initPid: number): Container {
  const base = v1Container();
  return { ...base, id: name.padEnd(64, "0"), initPid, netnsInode: 0, pod: { ...base.pod!, name } };
}

Deno.test("arp_container_entries for each container of the pod namespace, none for the host netns", async () => {
  const registry = staticRegistry([
    container("coredns", 1201),
    container("sidecar", 1205),
    container("host", 2201),
  ]);
  const samples = await arpContainer(context(NET), registry).collect();
  assertEquals(samples.map((s) => [s.name, s.labels?.container_name, s.value]), [
    ["arp_container_entries", "coredns", 1],
    ["arp_container_entries", "sidecar", 1],
  ]);
  assertEquals(samples[0].help, "arp entries in container netns");
  assertEquals(samples[0].labels, {
    container_host: "coredns-855c4dd65d-8v5kg",
    container_hostnamespace: "kube-system",
    container_level: "burstable",
    container_name: "coredns",
    container_type: "normal",
  });
});

Deno.test("arp_container: garbled net/arp fails the collector", async () => {
  await assertRejects(
    () => arpContainer(context(NET), staticRegistry([container("broken", 4401)])).collect(),
    /4401\/net\/arp/,
  );
});
