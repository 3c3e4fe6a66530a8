// netdev_container_*: each device of the pod's namespace, once per container
// of the pod, with the host's device filter; garbled net/dev fails.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { defaultConfig } from "../../config/schema.ts";
import type { Container } from "../../pod/container.ts";
import { netdevContainer } from "./container.ts";
import { context, FIXTURES, staticRegistry, v1Container } from "../../../testing/containers.ts";

const NET = `${FIXTURES}net`;

function container(name: string, initPid: number): Container {
  const base = v1Container();
  return { ...base, id: name.padEnd(64, "0"), initPid, netnsInode: 0, pod: { ...base.pod!, name } };
}

Deno.test("netdev_container: every device of the pod namespace for each container, host netns left out", async () => {
  const registry = staticRegistry([
    container("coredns", 1201),
    container("sidecar", 1205),
    container("host", 2201),
  ]);
  const samples = await netdevContainer(context(NET), registry).collect();
  assertEquals(samples.length, 2 * 2 * 16);
  const eth0 = samples.filter((s) => s.labels?.device === "eth0" && s.labels?.container_name === "coredns");
  assertEquals(
    new Map(eth0.map((s) => [s.name, s.value])),
    new Map([
      ["netdev_container_receive_bytes_total", 64400018],
      ["netdev_container_receive_packets_total", 693155],
      ["netdev_container_receive_errors_total", 1],
      ["netdev_container_receive_dropped_total", 2],
      ["netdev_container_receive_fifo_total", 3],
      ["netdev_container_receive_frame_total", 4],
      ["netdev_container_receive_compressed_total", 5],
      ["netdev_container_receive_multicast_total", 6],
      ["netdev_container_transmit_bytes_total", 62347911],
      ["netdev_container_transmit_packets_total", 660218],
      ["netdev_container_transmit_errors_total", 7],
      ["netdev_container_transmit_dropped_total", 8],
      ["netdev_container_transmit_fifo_total", 9],
      ["netdev_container_transmit_colls_total", 10],
      ["netdev_container_transmit_carrier_total", 11],
      ["netdev_container_transmit_compressed_total", 12],
    ]),
  );
  assertEquals(eth0.length, 16);
  assertEquals(eth0[0].type, "counter");
  assertEquals(eth0[0].help, "Network device statistic receive_bytes.");
  assertEquals(eth0[0].labels, {
    container_host: "coredns-855c4dd65d-8v5kg",
    container_hostnamespace: "kube-system",
    container_level: "burstable",
    container_name: "coredns",
    container_type: "normal",
    device: "eth0",
  });
  assertEquals(samples.some((s) => s.labels?.container_name === "host"), false);
});

Deno.test("netdev_container follows NetdevStats DeviceIncluded/DeviceExcluded", async () => {
  const d = defaultConfig();
  const config = {
    ...d,
    MetricCollector: {
      ...d.MetricCollector,
      NetdevStats: { ...d.MetricCollector.NetdevStats, DeviceExcluded: "^lo$" },
    },
  };
  const samples = await netdevContainer(context(NET, config), staticRegistry([container("coredns", 1201)]))
    .collect();
  assertEquals([...new Set(samples.map((s) => s.labels?.device))], ["eth0"]);
});

Deno.test("netdev_container: garbled net/dev fails; an exited container is skipped", async () => {
  await assertRejects(
    () => netdevContainer(context(NET), staticRegistry([container("broken", 4401)])).collect(),
    /4401\/net\/dev/,
  );
  assertEquals(await netdevContainer(context(NET), staticRegistry([container("gone", 9999)])).collect(), []);
});
