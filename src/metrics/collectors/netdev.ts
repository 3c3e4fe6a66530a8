// Host network devices, read from the init net namespace (/proc/1/net/dev) so
// the agent sees the host even when it runs in a container; or over rtnetlink
// when MetricCollector.NetdevStats.EnableNetlink is set.

import { NETDEV_FIELDS, type NetDevCounters, parseNetDev } from "../../host/netdev.ts";
import { defineCollector } from "../collector.ts";
import { NameFilter } from "../filter.ts";
import { counter, type Sample } from "../sample.ts";
import { readLinkStats } from "./qdisc.ts";

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
      const out: Sample[] = [];
      for (const [device, counters] of await read()) {
        if (!filter.accepts(device)) continue;
        for (const f of NETDEV_FIELDS) {
          out.push(counter(`netdev_${f}_total`, `Network device statistic ${f}.`, counters[f], { device }));
        }
      }
      return out;
    },
  };
});
