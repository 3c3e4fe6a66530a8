// Host network devices, read from the init net namespace (/proc/1/net/dev) so
// the agent sees the host even when it runs in a container; or over rtnetlink
// when MetricCollector.NetdevStats.EnableNetlink is set.

import { type NetDevCounters, parseNetDev } from "../../host/netdev.ts";
import { metricsFeature } from "../feature.ts";
import { netdevContainer } from "./container.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { readLinkStats } from "../../host/rtnetlink_read.ts";
import { netdevSamples } from "./samples.ts";

export default metricsFeature("netdev", ({ fs, config }) => {
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
}, { container: netdevContainer });
