// Memory cgroup direct reclaim on charge (BPF, bpf/memory_reclaim.bpf.c). The
// host has no series of its own: with a container registry, the per-cgroup
// map (keys of the memory controller's cgroup) feeds
// memory_reclaim_container_directstall, the number of direct reclaims.

import type { BpfMap } from "../../../ffi/libbpf.ts";
import { BpfTracer } from "../../bpf/tracer.ts";
import { containerLabels, controllerLookup } from "../../pod/container.ts";
import { metricsFeature } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import { CgroupKeyJoin, type Matched, u64Key } from "../common/bpf_join.ts";

export interface MemcgReclaim {
  count: number;
  stallNs: number;
}

export interface MemcgReclaimEntry extends MemcgReclaim {
  /** Cgroup id (memory controller). */
  cgroup: bigint;
}

/** Every entry of memcg_reclaim, with one batch lookup. */
export function memcgReclaimEntries(map: BpfMap): MemcgReclaimEntry[] {
  const { keys, values, count } = map.lookupBatch();
  const kdv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  const vdv = new DataView(values.buffer, values.byteOffset, values.byteLength);
  const out: MemcgReclaimEntry[] = [];
  for (let i = 0; i < count; i++) {
    const v = i * map.valueStride;
    out.push({
      cgroup: kdv.getBigUint64(i * map.keySize, true),
      count: Number(vdv.getBigUint64(v, true)),
      stallNs: Number(vdv.getBigUint64(v + 8, true)),
    });
  }
  return out;
}

/** Cgroup id (memory controller) → direct reclaim count and stall time. */
export function memcgReclaimByCgroup(tracer: BpfTracer): Map<bigint, MemcgReclaim> {
  const out = new Map<bigint, MemcgReclaim>();
  for (const { cgroup, count, stallNs } of memcgReclaimEntries(tracer.object.map("memcg_reclaim"))) {
    out.set(cgroup, { count, stallNs });
  }
  return out;
}

/** memory_reclaim_container_directstall samples of the joined entries. */
export function memcgReclaimContainerSamples(matched: readonly Matched<MemcgReclaimEntry>[]): Sample[] {
  return matched.map(({ entry, container }) =>
    gauge(
      "memory_reclaim_container_directstall",
      "counter of cgroup reclaim when try_charge",
      entry.count,
      containerLabels(container),
    )
  );
}

export default metricsFeature("memory_reclaim", ({ bpf, containers }) => {
  const tracer = new BpfTracer({ name: "memory_reclaim", object: "memory_reclaim.o" }, bpf);
  const lookup = containers && controllerLookup(containers, "memory");
  const join = new CgroupKeyJoin();
  return {
    tracer,
    collect() {
      // Fails the scrape when the programs are not running, registry or not.
      const map = tracer.object.map("memcg_reclaim");
      if (!lookup) return Promise.resolve([]);
      const { matched, stale } = join.join(memcgReclaimEntries(map), lookup, Date.now());
      for (const e of stale) map.delete(u64Key(e.cgroup));
      return Promise.resolve(memcgReclaimContainerSamples(matched));
    },
  };
}, { tracing: true });
