// NET_RX / NET_TX softirq raise→run latency per CPU (BPF, bpf/softirq.bpf.c):
// zones 0: <10us, 1: 10-100us, 2: 100us-1ms, 3: 1ms+.

import { BpfTracer } from "../../bpf/tracer.ts";
import { perCpuZones } from "../../bpf/zones.ts";
import { metricsFeature } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";

const TYPES = ["NET_RX", "NET_TX"] as const; // map keys 0 and 1

export default metricsFeature("softirq", ({ bpf }) => {
  const tracer = new BpfTracer({ name: "softirq", object: "softirq.o" }, bpf);
  return {
    tracer,
    collect() {
      const map = tracer.object.map("softirq_lat");
      const out: Sample[] = [];
      TYPES.forEach((type, key) => {
        perCpuZones(map, 4, new Uint8Array(new Uint32Array([key]).buffer)).forEach((zones, cpu) => {
          zones.forEach((v, zone) => {
            out.push(
              gauge("softirq_latency", "softirq latency", v, {
                cpuid: String(cpu),
                type,
                zone: String(zone),
              }),
            );
          });
        });
      });
      return Promise.resolve(out);
    },
  };
}, { tracing: true });
