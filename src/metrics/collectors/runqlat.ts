// Run-queue latency of the host (BPF, bpf/runqlat.bpf.c): counts per zone
// 0: <10ms, 1: 10-20ms, 2: 20-50ms, 3: 50ms+. The per-cgroup map feeds
// runqlat_container_latency.

import { BpfTracer } from "../../bpf/tracer.ts";
import { hashZones, sumPerCpu } from "../../bpf/zones.ts";
import { defineCollector } from "../collector.ts";
import { gauge } from "../sample.ts";

export const RUNQLAT_ZONES = 4;

/** Cgroup id (cpu controller) → zone counts. */
export function runqlatByCgroup(tracer: BpfTracer): Map<bigint, number[]> {
  return hashZones(
    tracer.object.map("runqlat_cgroup"),
    RUNQLAT_ZONES,
    (dv, off) => dv.getBigUint64(off, true),
  );
}

export default defineCollector("runqlat", ({ bpf }) => {
  const tracer = new BpfTracer({ name: "runqlat", object: "runqlat.o" }, bpf);
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
