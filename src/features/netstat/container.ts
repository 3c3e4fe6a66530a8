// netstat_container_Tcp_* / netstat_container_TcpExt_*: the TCP counters of
// each container's net namespace from /proc/<initPid>/net/{snmp,netstat}
// (the files show the process's namespace, so no setns), with the host's
// names, help and MetricCollector.Netstat Included/Excluded filter.

import type { ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { NETSTAT_SOURCES, netstatSamples } from "./samples.ts";
import { perNetns } from "../common/netns.ts";

export function netstatContainer({ fs, config }: FeatureContext, containers: ContainerRegistry): Collector {
  const filter = new NameFilter(
    config.MetricCollector.Netstat.Included,
    config.MetricCollector.Netstat.Excluded,
  );
  return {
    name: "netstat",
    collect() {
      return perNetns(fs, containers.list(), (pid) => {
        const paths = NETSTAT_SOURCES.map(([rel]) => fs.proc(`${pid}/${rel}`));
        const texts = paths.map((p) => fs.readTextSync(p));
        return netstatSamples(texts, paths, filter, "netstat_container");
      });
    },
  };
}
