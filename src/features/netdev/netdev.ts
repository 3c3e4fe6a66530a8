// Host network devices, read from the init net namespace (/proc/1/net/dev) so
// the agent sees the host even when it runs in a container; or over rtnetlink
// when MetricCollector.NetdevStats.EnableNetlink is set.

import { NETDEV_FIELDS, type NetDevCounters, parseNetDev } from "../../host/netdev.ts";
import { defineCollector } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { counter, type Labels, type Sample } from "../../core/sample.ts";
import { readLinkStats } from "../qdisc/qdisc.ts";

export default defineCollector("netdev", ({ fs, config }) => {
  const cfg = config.MetricCollector.NetdevStats;
  const filter = new NameFilter(cfg.DeviceIncluded, cfg.DeviceExcluded);
  const read = async (): Promise<Map<string, NetDevCounters>> => {
    if (cfg.EnableNetlink) return readLinkStats();
    const path = fs.proc("1/net/dev");
    return parseNetDev(await fs.readText(path), path);
  };
  return {
    async collect() {
      return netdevSamples(await read(), filter);
    },
  };
});

/** `<prefix>_<field>_total{device}` of each device the filter accepts; shared with netdev_container_*. */
export function netdevSamples(
  devices: Map<string, NetDevCounters>,
  filter: NameFilter,
  prefix = "netdev",
  labels: Labels = {},
): Sample[] {
  const out: Sample[] = [];
  for (const [device, counters] of devices) {
    if (!filter.accepts(device)) continue;
    for (const f of NETDEV_FIELDS) {
      out.push(
        counter(`${prefix}_${f}_total`, `Network device statistic ${f}.`, counters[f], { ...labels, device }),
      );
    }
  }
  return out;
}
