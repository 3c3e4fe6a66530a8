// Block IO latency per disk (BPF, bpf/iolatency.bpf.c): q2c (queued →
// completed) and d2c (issued to the driver → completed), zones 0: 20-30ms,
// 1: 30-50ms, 2: 50-100ms, 3: 100-200ms, 4: 200-400ms, 5: 400ms+ (faster IO is
// not counted). The per-cgroup map feeds iolatency_container_blkdisk_*.
// iolatency_blkdisk_freeze needs a kprobe on blk_mq_freeze_queue (no
// tracepoint exists), so it is not reported where kprobes are unavailable.

import { BpfTracer } from "../../bpf/tracer.ts";
import { devName, hashZones } from "../../bpf/zones.ts";
import { defineCollector } from "../collector.ts";
import { gauge, type Sample } from "../sample.ts";

export const IOLAT_ZONES = 6;
const KINDS = ["q2c", "d2c"] as const;

export interface IoLatKey {
  cgroup?: bigint;
  disk: string;
  kind: typeof KINDS[number];
}

/** (cgroup id of the io/blkio controller, disk, kind) → zone counts. */
export function iolatencyByCgroup(tracer: BpfTracer): Map<IoLatKey, number[]> {
  return hashZones(tracer.object.map("iolat_cgroup"), IOLAT_ZONES, (dv, off) => ({
    cgroup: dv.getBigUint64(off, true),
    disk: devName(dv.getUint32(off + 8, true)),
    kind: KINDS[dv.getUint32(off + 12, true)] ?? "q2c",
  }));
}

export default defineCollector("iolatency", ({ bpf }) => {
  const tracer = new BpfTracer({
    name: "iolatency",
    object: "iolatency.o",
    optionalPrograms: ["iolat_io_start"],
  }, bpf);
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
      return Promise.resolve(out);
    },
  };
}, { tracing: true });
