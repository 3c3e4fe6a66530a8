// dropwatch: packets the kernel dropped (BPF on skb:kfree_skb). A tracer that
// emits one "dropwatch" event per reported drop (src/features/dropwatch/tracer.ts), and a collector of the BPF program's counters:
//   dropwatch_drops_total{reason}   every drop the kernel freed with kfree_skb,
//                                   reported or not, by drop reason
//   dropwatch_suppressed_total      drops over the per-CPU event rate limit
//                                   (counted, not reported as events)

import type { BpfMap } from "../../../ffi/libbpf.ts";
import { dropwatchTracer } from "./tracer.ts";
import type { DropNames } from "./tracer.ts";
import { sumPerCpu } from "../../bpf/record.ts";
import { sumPerCpuZones } from "../../bpf/zones.ts";
import { metricsFeature } from "../feature.ts";
import { counter, type Sample } from "../../core/sample.ts";

/** Sums of a per-CPU u64 map by u32 key (PERCPU_ARRAY or PERCPU_HASH), zero sums left out. */
export function perCpuCounts(map: BpfMap): Map<number, number> {
  const { keys, values, count } = map.lookupBatch();
  const kdv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  const out = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const sum = Number(sumPerCpu(values.subarray(i * map.valueStride, (i + 1) * map.valueStride)));
    if (sum > 0) out.set(kdv.getUint32(i * map.keySize, true), sum);
  }
  return out;
}

/** drops_total samples by reason name (two values may share a name only if the kernel's enum does). */
export function dropSamples(byReason: Map<number, number>, names: DropNames, suppressed: number): Sample[] {
  const byName = new Map<string, number>();
  for (const [r, n] of byReason) {
    const name = names.reason(r);
    byName.set(name, (byName.get(name) ?? 0) + n);
  }
  const out: Sample[] = [];
  for (const [reason, n] of [...byName].sort((a, b) => a[0] < b[0] ? -1 : 1)) {
    out.push(
      counter("dropwatch_drops_total", "Packets the kernel dropped (kfree_skb), by drop reason.", n, {
        reason,
      }),
    );
  }
  out.push(counter(
    "dropwatch_suppressed_total",
    "Dropped packets not reported as dropwatch events: over the per-CPU event rate limit.",
    suppressed,
  ));
  return out;
}

export default metricsFeature("dropwatch", ({ bpf, log, events, config }) => {
  const tracer = dropwatchTracer({
    bpf,
    log,
    events,
    excludeNeighInvalidate: config.EventTracing.Dropwatch.ExcludedNeighInvalidate,
  }, { eventsPerSec: config.EventTracing.Dropwatch.EventsPerSecond });
  return {
    tracer,
    collect() {
      const obj = tracer.object;
      const counts = perCpuCounts(obj.map("dropwatch_drops"));
      for (const [r, n] of perCpuCounts(obj.map("dropwatch_drops_subsys"))) {
        counts.set(r, (counts.get(r) ?? 0) + n);
      }
      const [suppressed] = sumPerCpuZones(obj.map("dropwatch_suppressed"), 1);
      return Promise.resolve(dropSamples(counts, tracer.names, suppressed ?? 0));
    },
  };
}, { tracing: true, events: true });
