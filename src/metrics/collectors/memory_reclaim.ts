// Memory cgroup direct reclaim on charge (BPF, bpf/memory_reclaim.bpf.c). The
// host has no series of its own: the per-cgroup map feeds
// memory_reclaim_container_directstall once containers are known.

import { BpfTracer } from "../../bpf/tracer.ts";
import { defineCollector } from "../collector.ts";

export interface MemcgReclaim {
  count: number;
  stallNs: number;
}

/** Cgroup id (memory controller) → direct reclaim count and stall time. */
export function memcgReclaimByCgroup(tracer: BpfTracer): Map<bigint, MemcgReclaim> {
  const map = tracer.object.map("memcg_reclaim");
  const { keys, values, count } = map.lookupBatch();
  const kdv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  const vdv = new DataView(values.buffer, values.byteOffset, values.byteLength);
  const out = new Map<bigint, MemcgReclaim>();
  for (let i = 0; i < count; i++) {
    const v = i * map.valueStride;
    out.set(kdv.getBigUint64(i * map.keySize, true), {
      count: Number(vdv.getBigUint64(v, true)),
      stallNs: Number(vdv.getBigUint64(v + 8, true)),
    });
  }
  return out;
}

export default defineCollector("memory_reclaim", ({ bpf }) => {
  const tracer = new BpfTracer({ name: "memory_reclaim", object: "memory_reclaim.o" }, bpf);
  return {
    tracer,
    collect() {
      tracer.object.map("memcg_reclaim"); // fails the scrape when the programs are not running
      return Promise.resolve([]);
    },
  };
}, { tracing: true });
