// netdev_hw: the per-driver rules on counters captured from this VM's
// virtio_net and veth devices (drop counters raised where the capture had 0),
// the sysfs fixture devices with a fake ethtool, a missing device logged once,
// the ethtool reply decoders, and a real veth pair (root).
import { assert, assertEquals, assertThrows } from "../../../testing/assert.ts";
import { HostFs } from "../../host/fs.ts";
import { hwRxDropped, perQueueSum } from "../../host/netdev_hw.ts";
import { parseEthtoolStatValues, parseEthtoolStrings } from "../../../ffi/netlink.ts";
import type { Logger } from "../../log/logger.ts";
import { silentLogger } from "../../log/logger.ts";
import { OnceLog } from "../common/once_log.ts";
import { type EthtoolSource, netdevHwSamples, SIOCETHTOOL_SOURCE } from "./netdev_hw.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;

function captured(name: string, overrides: Record<string, number> = {}): Map<string, bigint> {
  const j = JSON.parse(Deno.readTextFileSync(`${ROOT}fixtures/ethtool/${name}.json`));
  const m = new Map<string, bigint>(
    Object.entries(j.stats as Record<string, number>).map(([k, v]) => [k, BigInt(v)]),
  );
  for (const [k, v] of Object.entries(overrides)) m.set(k, BigInt(v));
  return m;
}

const NO_ERRORS = { rxMissedErrors: 0, rxFifoErrors: 0 };

Deno.test("virtio_net: per-queue drops minus XDP drops plus device hw_drops, plus sysfs; aggregates not added twice", () => {
  assertEquals(
    hwRxDropped("virtio_net", NO_ERRORS, captured("virtio_net")),
    0,
    "the capture: nothing dropped",
  );
  const stats = captured("virtio_net", {
    rx_drops: 12, // the newer kernels' aggregate of rx0_drops + rx1_drops
    rx_xdp_drops: 3,
    rx0_drops: 9,
    rx0_xdp_drops: 3,
    rx1_drops: 3,
    rx1_xdp_drops: 0,
    rx0_hw_drops: 40,
    rx0_hw_drop_overruns: 25, // part of hw_drops
  });
  assertEquals(perQueueSum(stats, "drops"), 12n);
  assertEquals(
    hwRxDropped("virtio_net", { rxMissedErrors: 5, rxFifoErrors: 1 }, stats),
    5 + 1 + 40 + (12 - 3),
  );
  const old = new Map([["rx_queue_0_drops", 4n], ["rx_queue_0_xdp_drops", 1n], ["rx_queue_1_drops", 2n]]);
  assertEquals(hwRxDropped("virtio_net", NO_ERRORS, old), 5, "rx_queue_N_ names of older kernels");
  assertEquals(
    hwRxDropped("virtio_net", { rxMissedErrors: 2, rxFifoErrors: 0 }, undefined),
    2,
    "no ethtool: sysfs",
  );
});

Deno.test("veth and other drivers: the sysfs hardware counters only", () => {
  const veth = captured("veth", { rx_queue_0_drops: 50, rx_queue_0_xdp_drops: 7 });
  assertEquals(hwRxDropped("veth", NO_ERRORS, veth), 0, "veth's drops are software");
  assertEquals(hwRxDropped("veth", { rxMissedErrors: 3, rxFifoErrors: 0 }, veth), 3);
  assertEquals(
    hwRxDropped("ixgbe", { rxMissedErrors: 17, rxFifoErrors: 3 }, new Map([["rx_no_dma_resources", 9n]])),
    20,
  );
});

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = {
    ...silentLogger,
    warn: (msg: string, f?: Record<string, unknown>) => lines.push(`${msg} ${JSON.stringify(f)}`),
  };
  return { log, lines };
}

Deno.test("netdevHwSamples: fixture sysfs counters, driver from the sysfs link; a missing device is logged once", () => {
  const fake: EthtoolSource = { driver: () => undefined, stats: () => undefined };
  const { log, lines } = recordingLog();
  const once = new OnceLog(log, "netdev_hw: device not reported");
  const fs = new HostFs(`${ROOT}fixtures`);
  const devices = ["ens1f0", "ens1f1", "huatuo-fx-gone"];
  for (let i = 0; i < 3; i++) {
    const samples = netdevHwSamples(fs, devices, fake, once);
    assertEquals(samples.map((s) => [s.name, s.type, s.labels, s.value]), [
      ["netdev_hw_rx_dropped", "gauge", { device: "ens1f0", driver: "ixgbe" }, 20],
      ["netdev_hw_rx_dropped", "gauge", { device: "ens1f1", driver: "" }, 0],
    ]);
  }
  assertEquals(lines.length, 1, lines.join("\n"));
  assert(lines[0].includes('"device":"huatuo-fx-gone"') && lines[0].includes("no such device"), lines[0]);
  const withDriver: EthtoolSource = {
    driver: (d) => (d === "ens1f1" ? "virtio_net" : undefined),
    stats: () => new Map([["rx0_drops", 4n]]),
  };
  assertEquals(netdevHwSamples(fs, ["ens1f1"], withDriver, once)[0].labels, {
    device: "ens1f1",
    driver: "virtio_net",
  });
  assertEquals(netdevHwSamples(fs, ["ens1f1"], withDriver, once)[0].value, 4);
});

Deno.test("ethtool replies: strings and values by their own counts; an overflowing count is refused", () => {
  const s = new Uint8Array(12 + 2 * 32);
  const sdv = new DataView(s.buffer);
  sdv.setUint32(8, 2, true);
  s.set(new TextEncoder().encode("rx_drops"), 12);
  s.set(new TextEncoder().encode("rx0_drops"), 44);
  assertEquals(parseEthtoolStrings(s), ["rx_drops", "rx0_drops"]);
  sdv.setUint32(8, 3, true);
  assertThrows(() => parseEthtoolStrings(s), RangeError);
  const v = new Uint8Array(8 + 2 * 8);
  const vdv = new DataView(v.buffer);
  vdv.setUint32(4, 2, true);
  vdv.setBigUint64(8, 7n, true);
  vdv.setBigUint64(16, 1n << 40n, true);
  assertEquals(parseEthtoolStatValues(v), [7n, 1n << 40n]);
  vdv.setUint32(4, 9, true);
  assertThrows(() => parseEthtoolStatValues(v), RangeError);
});

const NOT_ROOT = Deno.uid() !== 0;

Deno.test({
  name: "netdev_hw on a real veth pair: driver veth, 0, ethtool counters read",
  ignore: NOT_ROOT,
  async fn() {
    const run = (...args: string[]) => new Deno.Command("ip", { args, stderr: "null" }).output();
    await run("link", "del", "huatuo-ut-hw0");
    assert(
      (await run("link", "add", "huatuo-ut-hw0", "type", "veth", "peer", "name", "huatuo-ut-hw1")).success,
    );
    try {
      const stats = SIOCETHTOOL_SOURCE.stats("huatuo-ut-hw0");
      assert(stats?.has("rx_queue_0_drops"), `veth ethtool names: ${[...stats?.keys() ?? []]}`);
      const once = new OnceLog(silentLogger, "x");
      const samples = netdevHwSamples(new HostFs(), ["huatuo-ut-hw0"], SIOCETHTOOL_SOURCE, once);
      assertEquals(samples.map((s) => [s.labels, s.value]), [[
        { device: "huatuo-ut-hw0", driver: "veth" },
        0,
      ]]);
    } finally {
      await run("link", "del", "huatuo-ut-hw0");
    }
  },
});
