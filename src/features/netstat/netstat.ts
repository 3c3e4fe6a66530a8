// Tcp_* (from net/snmp) and TcpExt_* (from net/netstat) of the host net
// namespace; filtered on "Tcp_ActiveOpens"-style names by MetricCollector.Netstat.

import { parseProtoStats } from "../../host/netstat.ts";
import { defineCollector } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { gauge, type Labels, type Sample } from "../../core/sample.ts";

/** Files under /proc/<pid>/ and the section each contributes. */
export const NETSTAT_SOURCES = [["net/snmp", "Tcp"], ["net/netstat", "TcpExt"]] as const;

export default defineCollector("netstat", ({ fs, config }) => {
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
});

/**
 * `<prefix>_Tcp_*` / `<prefix>_TcpExt_*` the filter accepts, from the texts of
 * NETSTAT_SOURCES (in that order) read at `paths`; shared with netstat_container_*.
 */
export function netstatSamples(
  texts: readonly string[],
  paths: readonly string[],
  filter: NameFilter,
  prefix = "netstat",
  labels?: Labels,
): Sample[] {
  const out: Sample[] = [];
  NETSTAT_SOURCES.forEach(([, proto], i) => {
    const fields = parseProtoStats(texts[i], paths[i]).get(proto);
    if (!fields) throw new Error(`${paths[i]}: no ${proto} section`);
    for (const [field, value] of fields) {
      const key = `${proto}_${field}`;
      if (filter.accepts(key)) {
        out.push(gauge(`${prefix}_${key}`, `statistic ${proto}${field}.`, value, labels));
      }
    }
  });
  return out;
}
