// Time the host stalled allocating memory (BPF, bpf/memory_free.bpf.c), in
// nanoseconds: direct reclaim during allocation, and direct compaction.

import { BpfTracer } from "../../bpf/tracer.ts";
import { sumPerCpuZones } from "../../bpf/zones.ts";
import { metricsFeature } from "../feature.ts";
import { gauge } from "../../core/sample.ts";

export default metricsFeature("memory_free", ({ bpf }) => {
  const tracer = new BpfTracer({ name: "memory_free", object: "memory_free.o" }, bpf);
  return {
    tracer,
    collect() {
      const [allocNs, compactNs] = sumPerCpuZones(tracer.object.map("memory_free"), 4);
      return Promise.resolve([
        gauge("memory_free_allocpages_stall", "time stalled in alloc pages", allocNs),
        gauge("memory_free_compaction_stall", "time stalled in memory compaction", compactNs),
      ]);
    },
  };
}, { tracing: true });
