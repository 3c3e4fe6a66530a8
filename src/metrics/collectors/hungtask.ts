// Hung tasks reported by the kernel's detector (BPF on sched:sched_process_hang).

import { BpfTracer } from "../../bpf/tracer.ts";
import { readCounter } from "../../bpf/zones.ts";
import { defineCollector } from "../collector.ts";
import { counter } from "../sample.ts";

export default defineCollector("hungtask", ({ bpf }) => {
  const tracer = new BpfTracer({ name: "hungtask", object: "hungtask.o" }, bpf);
  return {
    tracer,
    collect() {
      const n = readCounter(tracer.object.map("hungtask_count"));
      return Promise.resolve([counter("hungtask_total", "hungtask counter", n)]);
    },
  };
}, { tracing: true });
