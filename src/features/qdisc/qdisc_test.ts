// qdisc collector: the per-(device, kind) summing on captured dumps, and the
// whole collector against a real kernel inside a throwaway net namespace, with
// `tc -s -j qdisc show` as the oracle.

import { defaultConfig } from "../../config/schema.ts";
import { HostFs } from "../../host/fs.ts";
import { parseLinkDump, parseQdiscDump } from "../../host/rtnetlink.ts";
import { silentLogger } from "../../log/logger.ts";
import { assert, assertEquals } from "../../../testing/assert.ts";
import { NameFilter } from "../../metrics/filter.ts";
import type { Sample } from "../../core/sample.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import qdisc, { qdiscSamples, sumByDeviceKind } from "./qdisc.ts";

interface TcQdisc {
  kind: string;
  dev: string;
  bytes: number;
  packets: number;
  drops: number;
  overlimits: number;
  requeues: number;
  backlog: number;
  qlen: number;
}

// Metric name → tc JSON field, with the seed's HELP text and type.
const EXPECTED: readonly [string, keyof TcQdisc, string, string][] = [
  ["netdev_qdisc_backlog", "backlog", "gauge", "Number of bytes currently in queue to be sent."],
  ["netdev_qdisc_bytes_total", "bytes", "counter", "Number of bytes sent."],
  ["netdev_qdisc_current_queue_length", "qlen", "gauge", "Number of packets currently in queue to be sent."],
  ["netdev_qdisc_drops_total", "drops", "counter", "Number of packet drops."],
  ["netdev_qdisc_overlimits_total", "overlimits", "counter", "Number of packet overlimits."],
  ["netdev_qdisc_packets_total", "packets", "counter", "Number of packets sent."],
  [
    "netdev_qdisc_requeues_total",
    "requeues",
    "counter",
    "Number of packets dequeued, not transmitted, and requeued.",
  ],
];

/** "metric{device,kind}" → value, from tc's JSON summed per (device, kind). */
function oracle(tc: readonly TcQdisc[], keep: (dev: string) => boolean = () => true): Map<string, number> {
  const out = new Map<string, number>();
  for (const q of tc) {
    if (!keep(q.dev)) continue;
    for (const [name, field] of EXPECTED) {
      const key = `${name}{${q.dev},${q.kind}}`;
      out.set(key, (out.get(key) ?? 0) + Number(q[field]));
    }
  }
  return out;
}

/** Same keying for collector output; fails on a duplicate series or a wrong HELP/type. */
function keyed(samples: readonly Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    const meta = EXPECTED.find(([name]) => name === s.name);
    assert(meta, `unexpected metric ${s.name}`);
    assertEquals([s.type, s.help], [meta[2], meta[3]], s.name);
    assertEquals(Object.keys(s.labels ?? {}).sort(), ["device", "kind"]);
    const key = `${s.name}{${s.labels!.device},${s.labels!.kind}}`;
    assert(!out.has(key), `duplicate series ${key}`);
    out.set(key, s.value);
  }
  return out;
}

// ---------------------------------------------------------------- captured dumps

const FIX = new URL("../../../fixtures/netlink/", import.meta.url);

Deno.test("captured dump: sums per (device, kind) equal tc's numbers", () => {
  const names = new Map(
    parseLinkDump([Deno.readFileSync(new URL("link_dump.bin", FIX))]).map((l) => [l.index, l.name]),
  );
  const qdiscs = parseQdiscDump([Deno.readFileSync(new URL("qdisc_dump.bin", FIX))]);
  const tc: TcQdisc[] = JSON.parse(Deno.readTextFileSync(new URL("tc_qdisc.json", FIX)));

  const all = keyed(qdiscSamples(sumByDeviceKind(qdiscs, names, new NameFilter())));
  assertEquals(all, oracle(tc));
  // nc0 carries two pfifo and two pfifo_fast children under mq: one series each, summed.
  assertEquals(all.get("netdev_qdisc_packets_total{nc0,pfifo}"), 10 + 5);
  assertEquals(all.get("netdev_qdisc_bytes_total{nc0,pfifo_fast}"), 752 + 465);
  assertEquals(all.get("netdev_qdisc_packets_total{nc0,mq}"), 41);
  assertEquals(all.get("netdev_qdisc_drops_total{nc2,tbf}"), 33);

  const filtered = keyed(qdiscSamples(sumByDeviceKind(qdiscs, names, new NameFilter("^nc", "^nc2$"))));
  assertEquals(filtered, oracle(tc, (dev) => dev === "nc0"));
});

// ---------------------------------------------------------------- real kernel

const NS = "huatuo-qdisc-test";
const isRoot = Deno.uid() === 0;
if (!isRoot) console.warn(`qdisc_test: skipping the real-kernel test: it needs root (uid ${Deno.uid()})`);

// The repo root, so the child resolves deno.json's import map.
const ROOT = new URL("../../../", import.meta.url).pathname;

async function sh(args: string[], allowFail = false): Promise<string> {
  const cmd = new Deno.Command(args[0], { args: args.slice(1), cwd: ROOT, stdout: "piped", stderr: "piped" });
  const out = await cmd.output();
  if (!out.success && !allowFail) {
    throw new Error(`${args.join(" ")}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Runs a space-separated command line inside the test namespace. */
const inNs = (line: string) => sh(["ip", "netns", "exec", NS, ...line.split(" ")]);

const tcNow = async (): Promise<TcQdisc[]> => JSON.parse(await inNs("tc -s -j qdisc show"));

// Runs the collector inside the namespace (a netlink socket belongs to the
// namespace it is created in) and prints both scrapes as JSON.
const CHILD = `
import qdisc from ${JSON.stringify(new URL("./qdisc.ts", import.meta.url).href)};
import { defaultConfig } from ${JSON.stringify(new URL("../../config/schema.ts", import.meta.url).href)};
import { HostFs } from ${JSON.stringify(new URL("../../host/fs.ts", import.meta.url).href)};
import { silentLogger } from ${JSON.stringify(new URL("../../log/logger.ts", import.meta.url).href)};
import { BpfRuntime } from ${JSON.stringify(new URL("../../bpf/tracer.ts", import.meta.url).href)};
const scrape = async (excluded) => {
  const config = defaultConfig();
  config.MetricCollector.Qdisc.DeviceExcluded = excluded;
  const c = qdisc.create({ fs: new HostFs(), config, log: silentLogger, bpf: new BpfRuntime("") }).collector;
  try { return await c.collect(); } finally { c.close?.(); }
};
console.log(JSON.stringify({ all: await scrape(""), excluded: await scrape("^vq1$") }));
`;

Deno.test({
  name: "real kernel: collector values equal `tc -s -j qdisc show` in a test netns",
  ignore: !isRoot,
  async fn() {
    await sh(["ip", "netns", "del", NS], true); // leftover of an interrupted run
    await sh(["ip", "netns", "add", NS]);
    try {
      // No IPv6, so nothing but our datagrams crosses the devices.
      await inNs("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
      await inNs("ip link add vq0 numtxqueues 2 numrxqueues 2 type veth peer name vq1");
      await inNs("tc qdisc add dev vq0 root handle 1: mq");
      await inNs("tc qdisc replace dev vq0 parent 1:1 handle 11: pfifo limit 100");
      await inNs("tc qdisc replace dev vq0 parent 1:2 handle 12: pfifo limit 100");
      // A token bucket small enough for a burst to overflow it: drops and overlimits.
      await inNs("tc qdisc add dev vq1 root handle 2: tbf rate 64kbit burst 1600 limit 3000");
      await inNs("ip link set lo up");
      await inNs("ip link set vq0 up");
      await inNs("ip link set vq1 up");
      // Each side sends to a made-up neighbour whose MAC is the peer's, so
      // frames cross the veth (and are dropped by the peer's IP layer).
      const mac = async (dev: string) =>
        JSON.parse(await inNs(`ip -j link show ${dev}`))[0].address as string;
      await inNs("ip addr add 10.88.0.1/24 dev vq0");
      await inNs("ip addr add 10.89.0.1/24 dev vq1");
      await inNs(`ip neigh add 10.88.0.2 lladdr ${await mac("vq1")} nud permanent dev vq0`);
      await inNs(`ip neigh add 10.89.0.2 lladdr ${await mac("vq0")} nud permanent dev vq1`);
      const send = (to: string, count: number, size: number) =>
        sh([
          "ip",
          "netns",
          "exec",
          NS,
          "bash",
          "-c",
          `
          p=$(head -c ${size} /dev/zero | tr '\\0' x)
          for i in $(seq ${count}); do echo -n "$p" > /dev/udp/${to}/$((7000 + i)); done`,
        ]);
      await send("10.88.0.2", 30, 100);
      await send("10.89.0.2", 60, 50);

      // Let the token bucket drain so nothing moves between the two reads.
      for (let i = 0; (await tcNow()).some((q) => q.backlog !== 0); i++) {
        assert(i < 100, "tbf backlog did not drain within 10 s");
        await new Promise((r) => setTimeout(r, 100));
      }

      const out = await sh(["ip", "netns", "exec", NS, Deno.execPath(), "eval", "--ext=js", CHILD]);
      const tc = await tcNow();
      const { all, excluded } = JSON.parse(out) as { all: Sample[]; excluded: Sample[] };

      const got = keyed(all);
      assertEquals(got, oracle(tc));
      // The datagrams themselves: 30 UDP frames of 14+20+8+100 bytes out of vq0,
      // spread over both pfifo children and counted once more by mq.
      assertEquals(got.get("netdev_qdisc_packets_total{vq0,pfifo}"), 30);
      assertEquals(got.get("netdev_qdisc_bytes_total{vq0,pfifo}"), 30 * 142);
      assertEquals(got.get("netdev_qdisc_packets_total{vq0,mq}"), 30);
      // vq1 got 60 frames of 92 bytes: each one either sent or dropped.
      const sent = got.get("netdev_qdisc_packets_total{vq1,tbf}")!;
      const dropped = got.get("netdev_qdisc_drops_total{vq1,tbf}")!;
      assertEquals(sent + dropped, 60);
      assertEquals(got.get("netdev_qdisc_bytes_total{vq1,tbf}"), sent * 92);
      assert(dropped > 0 && got.get("netdev_qdisc_overlimits_total{vq1,tbf}")! > 0, "tbf never overflowed");
      assert(got.has("netdev_qdisc_packets_total{lo,noqueue}"));

      // DeviceExcluded drops vq1 and nothing else.
      assertEquals(keyed(excluded), oracle(tc, (dev) => dev !== "vq1"));
    } finally {
      await sh(["ip", "netns", "del", NS], true);
    }
  },
});

Deno.test("collector with config: builds from defaultConfig and names itself qdisc", () => {
  const c = qdisc.create({
    fs: new HostFs(),
    config: defaultConfig(),
    log: silentLogger,
    bpf: new BpfRuntime(""),
  }).collector!;
  assertEquals(c.name, "qdisc");
});
