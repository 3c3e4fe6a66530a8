// The netdev series, built from what was read: shared by the host and the container part.

import { NETDEV_FIELDS, type NetDevCounters } from "../../host/netdev.ts";
import type { NameFilter } from "../../metrics/filter.ts";
import { counter, type Labels, type Sample } from "../../core/sample.ts";

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
