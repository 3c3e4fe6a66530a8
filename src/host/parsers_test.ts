// Small parsers over text copied from a live /proc, plus garbled and truncated input.
import { assertEquals, assertThrows } from "../../testing/assert.ts";
import { countArpEntries, netnsInode } from "./arp.ts";
import { parseBuddyInfo } from "./buddyinfo.ts";
import { parseKeyValue } from "./keyvalue.ts";
import { parseLoadAvg } from "./loadavg.ts";
import { parseMountInfo } from "./mountinfo.ts";
import { parseNetDev } from "./netdev.ts";
import { parseProtoStats } from "./netstat.ts";
import { parseSockStat } from "./sockstat.ts";

Deno.test("loadavg", () => {
  assertEquals(parseLoadAvg("0.00 0.05 0.04 1/79 5009\n"), { load1: 0, load5: 0.05, load15: 0.04 });
  assertThrows(() => parseLoadAvg("0.00 0.0"), /three load averages/);
  assertThrows(() => parseLoadAvg("a b c d e"), /three load averages/);
});

Deno.test("key value (vmstat)", () => {
  const m = parseKeyValue("nr_free_pages 3205350\nnr_zone_inactive_anon 0\nallocstall_dma 0\n");
  assertEquals([...m], [["nr_free_pages", 3205350], ["nr_zone_inactive_anon", 0], ["allocstall_dma", 0]]);
  assertThrows(() => parseKeyValue("nr_free_pages 3205350\nnr_zone_in"), /line 2/);
  assertThrows(() => parseKeyValue(""), /empty/);
});

Deno.test("buddyinfo", () => {
  const zones = parseBuddyInfo(
    "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 \n" +
      "Node 0, zone   Normal   2332   1370   1178    856    608    283    120     34     15     73    268 \n",
  );
  assertEquals(zones.length, 2);
  assertEquals(zones[1], {
    node: "0",
    zone: "Normal",
    blocks: [2332, 1370, 1178, 856, 608, 283, 120, 34, 15, 73, 268],
  });
  assertThrows(() => parseBuddyInfo("Node 0, zone   Normal\n"), /line 1/);
  assertThrows(() => parseBuddyInfo("Node 0, zone DMA 1 x 3\n"), /line 1/);
});

Deno.test("net/dev: counters per device, truncated line rejected", () => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 147536086    4372    0    1    0     0          0         7   197194    2397    0    2    0     0       0          0
`;
  const m = parseNetDev(text);
  assertEquals([...m.keys()], ["lo", "eth0"]);
  assertEquals(m.get("eth0")!.receive_bytes, 147536086);
  assertEquals(m.get("eth0")!.receive_dropped, 1);
  assertEquals(m.get("eth0")!.receive_multicast, 7);
  assertEquals(m.get("eth0")!.transmit_dropped, 2);
  assertThrows(() => parseNetDev(text.slice(0, text.length - 40)), /expected 16 counters for eth0/);
  assertThrows(() => parseNetDev("garbage"), /header/);
});

Deno.test("netstat/snmp pairs", () => {
  const t = parseProtoStats(
    "TcpExt: SyncookiesSent ListenDrops\nTcpExt: 0 12\nIpExt: InNoRoutes\nIpExt: 3\n",
  );
  assertEquals(t.get("TcpExt")!.get("ListenDrops"), 12);
  assertEquals(t.get("IpExt")!.get("InNoRoutes"), 3);
  const snmp = parseProtoStats("Tcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n");
  assertEquals(snmp.get("Tcp")!.get("MaxConn"), -1);
  assertThrows(() => parseProtoStats("TcpExt: A B\nTcpExt: 1\n"), /2 names but 1 values/);
  assertThrows(() => parseProtoStats("TcpExt: A B\n"), /odd number of lines/);
});

Deno.test("sockstat and sockstat6", () => {
  const s = parseSockStat(
    "sockets: used 10\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 271\nFRAG: inuse 0 memory 0\n",
  );
  assertEquals(s.get("sockets")!.get("used"), 10);
  assertEquals(s.get("TCP")!.get("mem"), 271);
  assertEquals(parseSockStat("TCP6: inuse 3\n").get("TCP6")!.get("inuse"), 3);
  assertThrows(() => parseSockStat("TCP: inuse 1 orphan\n"), /line 1/);
});

Deno.test("arp entries and netns links", () => {
  const header = "IP address       HW type     Flags       HW address            Mask     Device\n";
  assertEquals(countArpEntries(header), 0);
  assertEquals(
    countArpEntries(
      header + "192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n",
    ),
    1,
  );
  assertThrows(() => countArpEntries(header + "192.0.2.1   0x1\n"), /6 columns/);
  assertThrows(() => countArpEntries(""), /header/);
  assertEquals(netnsInode("net:[4026531840]"), "4026531840");
  assertEquals(netnsInode("mnt:[4026531840]"), undefined);
});

Deno.test("mountinfo: options, escaped paths, malformed lines", () => {
  const m = parseMountInfo(
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n" +
      "36 35 98:0 /mnt1 /mnt\\040dir ro,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
  );
  assertEquals(m[0].mountPoint, "/proc");
  assertEquals(m[1].mountPoint, "/mnt dir");
  assertEquals(m[1].options, ["ro", "noatime"]);
  assertEquals(m[1].fsType, "ext3");
  assertThrows(() => parseMountInfo("22 27 0:21 / /proc rw\n"), /malformed/);
});
