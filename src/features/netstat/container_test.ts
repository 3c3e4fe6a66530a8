// netstat_container_Tcp_* / _TcpExt_*: the pod namespace's TCP counters with
// the host's names and filter; other sections (Ip, IpExt, Udp) are not series.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { defaultConfig } from "../../config/schema.ts";
import type { Container } from "../../pod/container.ts";
import { netstatContainer } from "./container.ts";
import { context, FIXTURES, staticRegistry, v1Container, valuesOf } from "../../../testing/containers.ts";

const NET = `${FIXTURES}net`;

function container(name: string, initPid: number): Container {
  const base = v1Container();
  return { ...base, id: name.padEnd(64, "0"), initPid, netnsInode: 0, pod: { ...base.pod!, name } };
}

Deno.test("netstat_container: Tcp and TcpExt of the pod namespace for each of its containers", async () => {
  const registry = staticRegistry([
    container("coredns", 1201),
    container("sidecar", 1205),
    container("host", 2201),
  ]);
  const samples = await netstatContainer(context(NET), registry).collect();
  const v = valuesOf(samples, "coredns");
  assertEquals(v.size, 15 + 10);
  assertEquals(v.get("netstat_container_Tcp_ActiveOpens"), 1520);
  assertEquals(v.get("netstat_container_Tcp_MaxConn"), -1);
  assertEquals(v.get("netstat_container_TcpExt_ListenDrops"), 6);
  assertEquals(v.get("netstat_container_TcpExt_DelayedACKs"), 4650);
  assertEquals(valuesOf(samples, "sidecar"), new Map([...v]));
  assertEquals(valuesOf(samples, "host").size, 0);
  const s = samples.find((s) => s.name === "netstat_container_TcpExt_ListenDrops")!;
  assertEquals([s.type, s.help], ["gauge", "statistic TcpExtListenDrops."]);
});

Deno.test("netstat_container follows Netstat Included/Excluded", async () => {
  const d = defaultConfig();
  const config = {
    ...d,
    MetricCollector: {
      ...d.MetricCollector,
      Netstat: { Included: "^TcpExt_", Excluded: "Syncookies" },
    },
  };
  const samples = await netstatContainer(context(NET, config), staticRegistry([container("coredns", 1201)]))
    .collect();
  assertEquals(
    samples.map((s) => s.name),
    [
      "EmbryonicRsts",
      "PruneCalled",
      "ListenOverflows",
      "ListenDrops",
      "TCPAbortOnClose",
      "TCPTimeouts",
      "DelayedACKs",
    ].map((f) => `netstat_container_TcpExt_${f}`),
  );
});

Deno.test("netstat_container: garbled files fail the collector", async () => {
  await assertRejects(
    () => netstatContainer(context(NET), staticRegistry([container("broken", 4401)])).collect(),
    /4401\/net\/snmp/,
  );
});
