// netdev_hw_rx_dropped{device,driver}: packets each listed NIC
// ([MetricCollector.NetdevHW] DeviceList; empty = none) dropped itself on
// receive, by the per-driver rule of src/host/netdev_hw.ts: sysfs hardware
// counters, plus the driver's own ethtool drop counters where it has them,
// never the stack's software drops. driver is what ETHTOOL_GDRVINFO says
// (else the sysfs device/driver link). A listed device that does not exist
// reports nothing and is logged once, again only after it came back.

import { ethtoolDriverInfo, ethtoolStats } from "../../../ffi/netlink.ts";
import { exists, type HostFs, readProcTextSync } from "../../host/fs.ts";
import { hwRxDropped } from "../../host/netdev_hw.ts";
import { parseSingleInt } from "../common/cgroup.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import { OnceLog } from "../common/once_log.ts";
import { metricsFeature } from "../feature.ts";

/** How the agent asks a device for its driver and ethtool counters (a fake in tests). */
export interface EthtoolSource {
  driver(device: string): string | undefined;
  stats(device: string): ReadonlyMap<string, bigint> | undefined;
}

export const SIOCETHTOOL_SOURCE: EthtoolSource = {
  driver: (d) => ethtoolDriverInfo(d)?.driver,
  stats: (d) => ethtoolStats(d),
};

function statistic(fs: HostFs, device: string, name: string): number {
  const path = fs.sys(`class/net/${device}/statistics/${name}`);
  return parseSingleInt(readProcTextSync(path), path);
}

/** The basename of sysfs class/net/<dev>/device/driver (physical devices only). */
function sysfsDriver(fs: HostFs, device: string): string | undefined {
  try {
    return Deno.readLinkSync(fs.sys(`class/net/${device}/device/driver`)).split("/").pop() || undefined;
  } catch {
    return undefined;
  }
}

export function netdevHwSamples(
  fs: HostFs,
  devices: readonly string[],
  source: EthtoolSource,
  once: OnceLog,
): Sample[] {
  const out: Sample[] = [];
  for (const device of devices) {
    if (!exists(fs.sys(`class/net/${device}`))) {
      once.trouble(device, `no such device (${fs.sys(`class/net/${device}`)})`);
      continue;
    }
    once.well(device);
    const sysfs = {
      rxMissedErrors: statistic(fs, device, "rx_missed_errors"),
      rxFifoErrors: statistic(fs, device, "rx_fifo_errors"),
    };
    const driver = source.driver(device) ?? sysfsDriver(fs, device) ?? "";
    const value = hwRxDropped(driver, sysfs, source.stats(device));
    out.push(
      gauge("netdev_hw_rx_dropped", "Packets the NIC itself dropped on receive (cumulative).", value, {
        device,
        driver,
      }),
    );
  }
  return out;
}

export default metricsFeature("netdev_hw", ({ fs, config, log }) => {
  const devices = config.MetricCollector.NetdevHW.DeviceList;
  const once = new OnceLog(log, "netdev_hw: device not reported");
  return {
    collect() {
      // A rejection, not a throw: merged collectors run their parts as promises.
      try {
        return Promise.resolve(netdevHwSamples(fs, devices, SIOCETHTOOL_SOURCE, once));
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
});
