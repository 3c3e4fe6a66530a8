// Run-queue latency (BPF, bpf/runqlat.bpf.c): counts per zone 0: <10ms,
// 1: 10-20ms, 2: 20-50ms, 3: 50ms+, for the host (runqlat_latency) and, with
// a container registry, per container from the per-cgroup map
// (runqlat_container_latency; keys of the cpu controller's cgroup).

import type { BpfMap } from "../../../ffi/libbpf.ts";
import { BpfTracer } from "../../bpf/tracer.ts";
import { hashZones, sumPerCpuZones } from "../../bpf/zones.ts";
import { containerLabels, controllerLookup } from "../../pod/container.ts";
import { metricsFeature } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import { CgroupKeyJoin, type Matched, u64Key } from "../common/bpf_join.ts";

export const RUNQLAT_ZONES = 4;

/** tp_btf programs (kernel BTF, 5.18+ sched_switch), else the raw_tp ones. */
export const RUNQLAT_IMPLEMENTATIONS = [
  ["runqlat_btf_wakeup", "runqlat_btf_wakeup_new", "runqlat_btf_switch"],
  ["runqlat_wakeup", "runqlat_wakeup_new", "runqlat_switch"],
] as const;

export interface CgroupZones {
  /** Cgroup id (cpu controller). */
  cgroup: bigint;
  zones: number[];
}

/** Every entry of runqlat_cgroup, with one batch lookup. */
export function runqlatByCgroup(map: BpfMap): CgroupZones[] {
  const byKey = hashZones(map, RUNQLAT_ZONES, (dv, off) => dv.getBigUint64(off, true));
  return [...byKey].map(([cgroup, zones]) => ({ cgroup, zones }));
}

/** runqlat_container_latency samples of the joined entries. */
export function runqlatContainerSamples(matched: readonly Matched<CgroupZones>[]): Sample[] {
  const out: Sample[] = [];
  for (const { entry, container } of matched) {
    const labels = containerLabels(container);
    entry.zones.forEach((v, zone) => {
      out.push(
        gauge("runqlat_container_latency", "cpu run queue latency for the containers", v, {
          ...labels,
          zone: String(zone),
        }),
      );
    });
  }
  return out;
}

export default metricsFeature("runqlat", ({ bpf, containers }) => {
  const tracer = new BpfTracer({
    name: "runqlat",
    object: "runqlat.o",
    alternatives: RUNQLAT_IMPLEMENTATIONS,
  }, bpf);
  const lookup = containers && controllerLookup(containers, "cpu");
  const join = new CgroupKeyJoin();
  return {
    tracer,
    collect() {
      const zones = sumPerCpuZones(tracer.object.map("runqlat_host"), RUNQLAT_ZONES);
      const out = zones.map((v, i) =>
        gauge("runqlat_latency", "cpu run queue latency for the host", v, { zone: String(i) })
      );
      if (lookup) {
        const map = tracer.object.map("runqlat_cgroup");
        const { matched, stale } = join.join(runqlatByCgroup(map), lookup, Date.now());
        for (const e of stale) map.delete(u64Key(e.cgroup));
        out.push(...runqlatContainerSamples(matched));
      }
      return Promise.resolve(out);
    },
  };
}, { tracing: true });
