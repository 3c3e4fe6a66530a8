// Run-queue latency of the host (BPF, bpf/runqlat.bpf.c): counts per zone
// 0: <10ms, 1: 10-20ms, 2: 20-50ms, 3: 50ms+. The per-cgroup map feeds
// runqlat_container_latency.

import { BpfTracer } from "../../bpf/tracer.ts";
import { hashZones, sumPerCpu } from "../../bpf/zones.ts";
import { defineCollector } from "../collector.ts";
import { gauge } from "../sample.ts";

export const RUNQLAT_ZONES = 4;

/** tp_btf programs (kernel BTF, 5.18+ sched_switch), else the raw_tp ones. */
export const RUNQLAT_IMPLEMENTATIONS = [
  ["runqlat_btf_wakeup", "runqlat_btf_wakeup_new", "runqlat_btf_switch"],
  ["runqlat_wakeup", "runqlat_wakeup_new", "runqlat_switch"],
] as const;

/** Cgroup id (cpu controller) → zone counts. */
export function runqlatByCgroup(tracer: BpfTracer): Map<bigint, number[]> {
  return hashZones(
    tracer.object.map("runqlat_cgroup"),
    RUNQLAT_ZONES,
    (dv, off) => dv.getBigUint64(off, true),
  );
}

export default defineCollector("runqlat", ({ bpf }) => {
  const tracer = new BpfTracer({
    name: "runqlat",
    object: "runqlat.o",
    alternatives: RUNQLAT_IMPLEMENTATIONS,
  }, bpf);
  return {
    tracer,
    collect() {
      const zones = sumPerCpu(tracer.object.map("runqlat_host"), RUNQLAT_ZONES);
      return Promise.resolve(
        zones.map((v, i) =>
          gauge("runqlat_latency", "cpu run queue latency for the host", v, { zone: String(i) })
        ),
      );
    },
  };
}, { tracing: true });
