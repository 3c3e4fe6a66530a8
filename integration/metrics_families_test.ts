// The metric families HUATUO's dashboards chart, on the live host through the
// real agent (root): diskio counters follow a direct-I/O dd to a loop device
// (within one request), and a fresh loop disk has every iolatency zone at 0;
// diskio_disk_iowait_percent is the same for two scrapes 20 ms apart;
// sockstat_TCP_mem_bytes is /proc/net/sockstat's mem pages x the page size;
// netdev_hw on a veth pair whose peer sits in a test netns reports driver veth
// and the sysfs hardware counters (0), not the software drops the peer's
// unknown-ethertype frames cause; netdev_dcb on that veth reports nothing and
// says why once in the log.

import { assert, assertEquals } from "../testing/assert.ts";
import { pageSize } from "../ffi/libc.ts";
import { confWithPort, isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { type ParsedSeries, parseExposition } from "./prom.ts";
import { type Cleanup, loopDevice, PYTHON, run, sleep, withCleanup } from "./load.ts";

const NS = "huatuo-it-mfns";
const VETH = "huatuo-it-mf0"; // host side, listed in NetdevHW and NetdevDCB
const PEER = "huatuo-it-mf1"; // in NS
const MiB = 1024 * 1024;

const skip = isRoot() ? undefined : "needs root (loop devices, veth, netns, BPF)";
if (skip) console.warn(`integration/metrics_families_test.ts skipped: ${skip}`);

function series(text: string, name: string, labels: Record<string, string> = {}): ParsedSeries[] {
  return [...parseExposition(text).values()].filter((s) =>
    s.name === `huatuo_bamai_${name}` && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
}

function one(text: string, name: string, labels: Record<string, string> = {}): number {
  const found = series(text, name, labels);
  assertEquals(found.length, 1, `${name} ${JSON.stringify(labels)}: ${found.length} series`);
  return found[0].value;
}

async function vethPair(c: Cleanup): Promise<void> {
  await run("ip", ["link", "del", VETH], { check: false });
  await run("ip", ["netns", "del", NS], { check: false });
  await run("ip", ["netns", "add", NS]);
  c.defer(`ip netns del ${NS}`, () => run("ip", ["netns", "del", NS]));
  await run("ip", ["link", "add", VETH, "type", "veth", "peer", "name", PEER, "netns", NS]);
  c.defer(`ip link del ${VETH}`, () => run("ip", ["link", "del", VETH], { check: false }));
  await run("ip", ["link", "set", VETH, "up"]);
  await run("ip", ["netns", "exec", NS, "ip", "link", "set", PEER, "up"]);
}

/** `count` Ethernet frames of an ethertype no protocol handles (0x88b5, local experimental) from the peer. */
async function unknownEthertypeFrames(count: number): Promise<void> {
  const py = `import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((${JSON.stringify(PEER)}, 0))
for _ in range(${count}):
    s.send(b"\\xff" * 6 + b"\\x02" * 6 + b"\\x88\\xb5" + b"huatuo" * 10)
`;
  await run("ip", ["netns", "exec", NS, PYTHON, "-c", py]);
}

const sysfsCounter = (dev: string, name: string) =>
  Number(Deno.readTextFileSync(`/sys/class/net/${dev}/statistics/${name}`).trim());

function conf(port: number): string {
  return confWithPort(port, (t) => {
    const out = t.replace(/^BlackList = .*$/m, 'BlackList = ["metax_gpu"]')
      .replace(
        /(\[MetricCollector\.NetdevDCB\][^[]*?)DeviceList = \[[^\]]*\]/,
        `$1DeviceList = ["${VETH}"]`,
      )
      .replace(/(\[MetricCollector\.NetdevHW\][^[]*?)DeviceList = \[[^\]]*\]/, `$1DeviceList = ["${VETH}"]`);
    if ((out.match(new RegExp(VETH, "g")) ?? []).length !== 2) throw new Error("config edit failed");
    return out;
  });
}

Deno.test({
  name:
    "metric families on the live host: diskio, iowait, sockstat mem bytes, netdev_hw, netdev_dcb, iolatency zeros",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withCleanup(async (c) => {
      await vethPair(c);
      const loop = await loopDevice(c, 64 * MiB);
      const agent: RunningAgent = await startAgent({
        conf,
        args: ["--region", "it", "--disable-storage", "--disable-kubelet"],
      });
      c.defer("stop the agent", () => agent.stop());

      await t.step("iolatency: a fresh loop disk has all six zones of both kinds at 0", async () => {
        const text = await scrape(agent);
        for (const kind of ["q2c", "d2c"]) {
          const zones = series(text, `iolatency_blkdisk_${kind}`, { disk: loop.majMin });
          assertEquals(
            zones.map((s) => [s.labels.zone, s.value]).sort(),
            [0, 1, 2, 3, 4, 5].map((z) => [`${z}`, 0]),
          );
        }
      });

      await t.step(
        "diskio: a direct-I/O dd of 16 MiB shows in written bytes and write requests",
        async () => {
          const labels = { device: loop.name };
          const before = await scrape(agent);
          await run("dd", [
            "if=/dev/zero",
            `of=${loop.dev}`,
            "bs=1M",
            "count=16",
            "oflag=direct",
            "status=none",
          ]);
          await run("dd", [
            `if=${loop.dev}`,
            "of=/dev/null",
            "bs=1M",
            "count=8",
            "iflag=direct",
            "status=none",
          ]);
          const after = await scrape(agent);
          const d = (n: string) => one(after, n, labels) - one(before, n, labels);
          const written = d("diskio_written_bytes_total");
          const read = d("diskio_read_bytes_total");
          console.log(
            `  ${loop.name}: written ${written} B in ${d("diskio_write_requests_total")} writes, ` +
              `read ${read} B in ${d("diskio_read_requests_total")} reads`,
          );
          assert(written >= 16 * MiB && written <= 17 * MiB, `written ${written}, dd wrote ${16 * MiB}`);
          assert(read >= 8 * MiB && read <= 9 * MiB, `read ${read}, dd read ${8 * MiB}`);
          assert(d("diskio_write_requests_total") >= 16, "at least one request per 1 MiB write");
          assert(d("diskio_read_requests_total") >= 8);
          assert(d("diskio_write_time_seconds_total") >= 0);
          assertEquals(one(after, "diskio_io_in_progress", labels), 0);
          // Every /proc/diskstats line is a device.
          const names = Deno.readTextFileSync("/proc/diskstats").trim().split("\n").map((l) =>
            l.trim().split(/\s+/)[2]
          );
          const got = new Set(series(after, "diskio_read_requests_total").map((s) => s.labels.device));
          assertEquals(names.filter((n) => !got.has(n)), []);
        },
      );

      await t.step("diskio_disk_iowait_percent: two scrapers 20 ms apart read the same value", async () => {
        let same = 0;
        for (let i = 0; i < 4 && same < 3; i++) {
          const a = await scrape(agent);
          await sleep(20);
          const b = await scrape(agent);
          const [ia, ib] = [one(a, "diskio_disk_iowait_percent"), one(b, "diskio_disk_iowait_percent")];
          assert(ia >= 0 && ia <= 100, `iowait ${ia}`);
          if (ia === ib) same++;
          // A 5 s window boundary can fall between the two (then cpu_util changed too).
          else {assert(
              one(a, "cpu_util_total") !== one(b, "cpu_util_total"),
              `iowait ${ia} vs ${ib} in one window`,
            );}
          await sleep(1000);
        }
        assert(same >= 3, `${same} of the pairs agreed`);
      });

      await t.step("sockstat_TCP_mem_bytes = /proc/net/sockstat TCP mem pages x page size", async () => {
        const memPages = () => {
          const line = Deno.readTextFileSync("/proc/net/sockstat").split("\n").find((l) =>
            l.startsWith("TCP:")
          )!;
          return Number(/ mem (\d+)/.exec(line)![1]);
        };
        for (let attempt = 0;; attempt++) {
          const p0 = memPages();
          const text = await scrape(agent);
          const p1 = memPages();
          const bytes = one(text, "sockstat_TCP_mem_bytes");
          const lo = Math.min(p0, p1) * pageSize(), hi = Math.max(p0, p1) * pageSize();
          if (p0 !== p1 && attempt < 5) continue; // changed while scraping: read again
          assert(
            bytes >= lo && bytes <= hi,
            `agent ${bytes}, /proc/net/sockstat ${p0}..${p1} pages x ${pageSize()}`,
          );
          assertEquals(bytes % pageSize(), 0);
          assertEquals(one(text, "sockstat_TCP_mem_bytes") / pageSize(), one(text, "sockstat_TCP_mem"));
          break;
        }
      });

      await t.step(
        "netdev_hw: driver veth, the sysfs hardware counters, not the peer's software drops",
        async () => {
          const dropped0 = sysfsCounter(VETH, "rx_dropped");
          await unknownEthertypeFrames(200);
          const text = await scrape(agent);
          const dropped = sysfsCounter(VETH, "rx_dropped") - dropped0;
          assert(dropped >= 200, `unknown-ethertype frames dropped in software: ${dropped}`);
          const hw = series(text, "netdev_hw_rx_dropped");
          assertEquals(hw.map((s) => [s.labels.device, s.labels.driver]), [[VETH, "veth"]]);
          const expected = sysfsCounter(VETH, "rx_missed_errors") + sysfsCounter(VETH, "rx_fifo_errors");
          assertEquals(hw[0].value, expected);
          assertEquals(hw[0].value, 0, "veth has no hardware to drop in");
        },
      );

      await t.step("netdev_dcb: the veth has no DCB: no series, one log line saying why", async () => {
        for (let i = 0; i < 3; i++) await scrape(agent);
        const text = await scrape(agent);
        assertEquals(series(text, "netdev_dcb_pfc_received_total").length, 0);
        assertEquals(series(text, "netdev_dcb_pfc_send_total").length, 0);
        assertEquals(one(text, "scrape_collector_success", { collector: "netdev_dcb" }), 1);
        const lines = agent.output().split("\n").filter((l) => l.includes("netdev_dcb") && l.includes(VETH));
        assertEquals(lines.length, 1, agent.output());
        assert(lines[0].includes("EOPNOTSUPP"), lines[0]);
      });
    });
  },
});
