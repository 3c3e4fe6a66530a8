// Block IO latency (BPF, bpf/iolatency.bpf.c): q2c (queued → completed) and
// d2c (issued to the driver → completed), zones 0: 20-30ms, 1: 30-50ms,
// 2: 50-100ms, 3: 100-200ms, 4: 200-400ms, 5: 400ms+ (faster IO is not
// counted), per disk (iolatency_blkdisk_*) and, with a container registry,
// per container and disk from the per-cgroup map
// (iolatency_container_blkdisk_*; keys of the blkio/io controller's cgroup).
// iolatency_blkdisk_freeze needs a kprobe on blk_mq_freeze_queue (no
// tracepoint exists), so it is not reported where kprobes are unavailable.

import type { BpfMap } from "../../../ffi/libbpf.ts";
import { BpfTracer } from "../../bpf/tracer.ts";
import { devName, hashZones } from "../../bpf/zones.ts";
import { containerLabels, controllerLookup } from "../../pod/container.ts";
import { metricsFeature } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import { CgroupKeyJoin, type Matched } from "../shared/bpf_join.ts";

export const IOLAT_ZONES = 6;
const KINDS = ["q2c", "d2c"] as const;

export interface IoLatCgroupEntry {
  /** Cgroup id (blkio v1 / io v2 controller). */
  cgroup: bigint;
  /** Kernel dev_t (MKDEV) of the whole disk. */
  dev: number;
  /** 0 = q2c, 1 = d2c (the map's kind). */
  kind: number;
  zones: number[];
}

/** Every entry of iolat_cgroup, with one batch lookup. */
export function iolatencyByCgroup(map: BpfMap): IoLatCgroupEntry[] {
  const byKey = hashZones(map, IOLAT_ZONES, (dv, off) => ({
    cgroup: dv.getBigUint64(off, true),
    dev: dv.getUint32(off + 8, true),
    kind: dv.getUint32(off + 12, true),
  }));
  return [...byKey].map(([k, zones]) => ({ ...k, zones }));
}

/** The iolat_cgroup key of an entry: struct iolat_cg_key { __u64 cgid; __u32 dev; __u32 kind; }. */
export function iolatCgroupKey(e: IoLatCgroupEntry): Uint8Array<ArrayBuffer> {
  const key = new Uint8Array(16);
  const dv = new DataView(key.buffer);
  dv.setBigUint64(0, e.cgroup, true);
  dv.setUint32(8, e.dev, true);
  dv.setUint32(12, e.kind, true);
  return key;
}

/** iolatency_container_blkdisk_{q2c,d2c} samples of the joined entries (unknown kinds skipped). */
export function iolatencyContainerSamples(matched: readonly Matched<IoLatCgroupEntry>[]): Sample[] {
  const out: Sample[] = [];
  for (const { entry, container } of matched) {
    const kind = KINDS[entry.kind];
    if (!kind) continue;
    const labels = { ...containerLabels(container), disk: devName(entry.dev) };
    entry.zones.forEach((v, zone) => {
      out.push(
        gauge(`iolatency_container_blkdisk_${kind}`, `container blkio ${kind} latency`, v, {
          ...labels,
          zone: String(zone),
        }),
      );
    });
  }
  return out;
}

export default metricsFeature("iolatency", ({ bpf, containers }) => {
  const tracer = new BpfTracer({
    name: "iolatency",
    object: "iolatency.o",
    optionalPrograms: ["iolat_io_start"],
  }, bpf);
  const lookup = containers && controllerLookup(containers, "blkio");
  const join = new CgroupKeyJoin();
  return {
    tracer,
    collect() {
      const out: Sample[] = [];
      const byDisk = hashZones(tracer.object.map("iolat_disk"), IOLAT_ZONES, (dv, off) => ({
        disk: devName(dv.getUint32(off, true)),
        kind: KINDS[dv.getUint32(off + 4, true)],
      }));
      for (const [{ disk, kind }, zones] of byDisk) {
        if (!kind) continue;
        zones.forEach((v, zone) => {
          out.push(
            gauge(`iolatency_blkdisk_${kind}`, `the disk ${kind} latency`, v, { disk, zone: String(zone) }),
          );
        });
      }
      if (lookup) {
        const map = tracer.object.map("iolat_cgroup");
        const { matched, stale } = join.join(iolatencyByCgroup(map), lookup, Date.now());
        for (const e of stale) map.delete(iolatCgroupKey(e));
        out.push(...iolatencyContainerSamples(matched));
      }
      return Promise.resolve(out);
    },
  };
}, { tracing: true });
