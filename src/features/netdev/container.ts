// netdev_container_<field>_total{device}: the network devices of each
// container's net namespace, from /proc/<initPid>/net/dev (that file shows the
// process's namespace, so no setns). Filtered by the host's
// MetricCollector.NetdevStats DeviceIncluded/DeviceExcluded. Always procfs:
// EnableNetlink would need a netlink socket inside each namespace.

import { parseNetDev } from "../../host/netdev.ts";
import type { ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { netdevSamples } from "./samples.ts";
import { perNetns } from "../common/netns.ts";

export function netdevContainer({ fs, config }: FeatureContext, containers: ContainerRegistry): Collector {
  const cfg = config.MetricCollector.NetdevStats;
  const filter = new NameFilter(cfg.DeviceIncluded, cfg.DeviceExcluded);
  return {
    name: "netdev",
    collect() {
      return perNetns(fs, containers.list(), (pid) => {
        const path = fs.proc(`${pid}/net/dev`);
        return netdevSamples(parseNetDev(fs.readTextSync(path), path), filter, "netdev_container");
      });
    },
  };
}
