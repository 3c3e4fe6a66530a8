// The netstat series, built from what was read: shared by the host and the container part.

import { parseProtoStats } from "../../host/netstat.ts";
import type { NameFilter } from "../../metrics/filter.ts";
import { gauge, type Labels, type Sample } from "../../core/sample.ts";

/** Files under /proc/<pid>/ and the section each contributes. */
export const NETSTAT_SOURCES = [["net/snmp", "Tcp"], ["net/netstat", "TcpExt"]] as const;

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
