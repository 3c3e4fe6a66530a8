// Tcp_* (from net/snmp) and TcpExt_* (from net/netstat) of the host net
// namespace; filtered on "Tcp_ActiveOpens"-style names by MetricCollector.Netstat.

import { metricsFeature } from "../feature.ts";
import { netstatContainer } from "./container.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { NETSTAT_SOURCES, netstatSamples } from "./samples.ts";

export default metricsFeature("netstat", ({ fs, config }) => {
  const filter = new NameFilter(
    config.MetricCollector.Netstat.Included,
    config.MetricCollector.Netstat.Excluded,
  );
  return {
    async collect() {
      const paths = NETSTAT_SOURCES.map(([rel]) => fs.proc(`1/${rel}`));
      return netstatSamples(await Promise.all(paths.map((p) => fs.readText(p))), paths, filter);
    },
  };
}, { container: netstatContainer });
