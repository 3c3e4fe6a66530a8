// Queueing discipline statistics per (device, kind), read over rtnetlink
// (RTM_GETLINK for ifindex → name, RTM_GETQDISC for the counters) in the
// agent's net namespace. Qdiscs of the same kind on one device (e.g. the
// per-queue children of mq) are summed so no series is ever duplicated.

import { RtNetlink } from "../../../ffi/netlink.ts";
import { readLinks, readQdiscs } from "../../host/rtnetlink_read.ts";
import type { QdiscStats } from "../../host/rtnetlink.ts";
import { metricsFeature } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { counter, gauge, type Sample } from "../../core/sample.ts";

// readLinkStats lives beside the other netlink readers; the netdev collector
// imports it from here.

type QdiscCounterField = "backlog" | "bytes" | "qlen" | "drops" | "overlimits" | "packets" | "requeues";

const METRICS: readonly {
  field: QdiscCounterField;
  name: string;
  help: string;
  make: typeof gauge;
}[] = [
  {
    field: "backlog",
    name: "netdev_qdisc_backlog",
    help: "Number of bytes currently in queue to be sent.",
    make: gauge,
  },
  { field: "bytes", name: "netdev_qdisc_bytes_total", help: "Number of bytes sent.", make: counter },
  {
    field: "qlen",
    name: "netdev_qdisc_current_queue_length",
    help: "Number of packets currently in queue to be sent.",
    make: gauge,
  },
  { field: "drops", name: "netdev_qdisc_drops_total", help: "Number of packet drops.", make: counter },
  {
    field: "overlimits",
    name: "netdev_qdisc_overlimits_total",
    help: "Number of packet overlimits.",
    make: counter,
  },
  { field: "packets", name: "netdev_qdisc_packets_total", help: "Number of packets sent.", make: counter },
  {
    field: "requeues",
    name: "netdev_qdisc_requeues_total",
    help: "Number of packets dequeued, not transmitted, and requeued.",
    make: counter,
  },
];

export interface QdiscTotals extends Record<QdiscCounterField, number> {
  device: string;
  kind: string;
}

/**
 * Sums qdiscs per (device name, kind), keeping devices the filter accepts.
 * Qdiscs whose ifindex has no link (device removed between the two dumps)
 * are dropped.
 */
export function sumByDeviceKind(
  qdiscs: readonly QdiscStats[],
  names: ReadonlyMap<number, string>,
  filter: NameFilter,
): QdiscTotals[] {
  const out = new Map<string, QdiscTotals>();
  for (const q of qdiscs) {
    const device = names.get(q.ifindex);
    if (device === undefined || !filter.accepts(device)) continue;
    const key = `${device}\0${q.kind}`;
    let t = out.get(key);
    if (!t) {
      t = {
        device,
        kind: q.kind,
        backlog: 0,
        bytes: 0,
        qlen: 0,
        drops: 0,
        overlimits: 0,
        packets: 0,
        requeues: 0,
      };
      out.set(key, t);
    }
    for (const m of METRICS) t[m.field] += q[m.field];
  }
  return [...out.values()];
}

/** One sample per metric per (device, kind), grouped by metric. */
export function qdiscSamples(totals: readonly QdiscTotals[]): Sample[] {
  const out: Sample[] = [];
  for (const m of METRICS) {
    for (const t of totals) out.push(m.make(m.name, m.help, t[m.field], { device: t.device, kind: t.kind }));
  }
  return out;
}

export default metricsFeature("qdisc", ({ config }) => {
  const cfg = config.MetricCollector.Qdisc;
  const filter = new NameFilter(cfg.DeviceIncluded, cfg.DeviceExcluded);
  const scrape = (): Sample[] => {
    // A socket per scrape: cheap, and nothing stale survives a failed dump.
    const nl = new RtNetlink();
    try {
      const names = new Map(readLinks(nl).map((l) => [l.index, l.name]));
      return qdiscSamples(sumByDeviceKind(readQdiscs(nl), names, filter));
    } finally {
      nl.close();
    }
  };
  return {
    // The executor turns a synchronous throw into a rejection.
    collect: () => new Promise<Sample[]>((resolve) => resolve(scrape())),
  };
});
