// Soft lockups (BPF). No tracepoint marks a soft lockup and kprobes may be
// unavailable, so the program watches printk:console for the watchdog's
// "BUG: soft lockup" report line.

import { BpfTracer } from "../../bpf/tracer.ts";
import { readCounter } from "../../bpf/zones.ts";
import { defineCollector } from "../collector.ts";
import { counter } from "../sample.ts";

export default defineCollector("softlockup", ({ bpf }) => {
  const tracer = new BpfTracer({ name: "softlockup", object: "softlockup.o" }, bpf);
  return {
    tracer,
    collect() {
      const n = readCounter(tracer.object.map("softlockup_count"));
      return Promise.resolve([counter("softlockup_total", "softlockup counter", n)]);
    },
  };
}, { tracing: true });
