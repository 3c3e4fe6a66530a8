// Block IO latency (BPF, bpf/iolatency.bpf.c): q2c (queued → completed) and
// d2c (issued to the driver → completed), zones 0: 20-30ms, 1: 30-50ms,
// 2: 50-100ms, 3: 100-200ms, 4: 200-400ms, 5: 400ms+ (faster IO is not
// counted), per disk (iolatency_blkdisk_*) and, with a container registry,
// per container and disk from the per-cgroup map
// (iolatency_container_blkdisk_*; keys of the blkio/io controller's cgroup).
// The maps only hold disks that had an I/O of 20 ms or more, so every disk of
// /sys/block gets all six zones of both kinds at 0 until then, and so does
// each container for every disk its io.stat (v2) / blkio.throttle.io_serviced
// (v1) shows it did I/O on: a quiet disk has series, not gaps.
// iolatency_blkdisk_freeze is not reported: no kernel has a tracepoint for
// request-queue freezing (6.18's events/block/ has bio, rq, io_start/done,
// plug, split and zoned-write events only; cgroup:cgroup_freeze is the cgroup
// freezer), and counting blk_freeze_queue_start calls needs a kprobe or fentry.

import type { BpfMap } from "../../../ffi/libbpf.ts";
import { BpfTracer } from "../../bpf/tracer.ts";
import { devName, hashZones } from "../../bpf/zones.ts";
import { type Container, containerLabels, controllerLookup } from "../../pod/container.ts";
import { listBlockDisks, parseIoServicedDevices, parseIoStatDevices } from "../../host/blkio.ts";
import { metricsFeature } from "../feature.ts";
import { gauge, type Labels, type Sample } from "../../core/sample.ts";
import { CgroupKeyJoin, type Matched } from "../common/bpf_join.ts";
import { controllerDir, perContainer, readCgroupFile } from "../common/cgroup.ts";

export const IOLAT_ZONES = 6;
const KINDS = ["q2c", "d2c"] as const;
const ZERO_ZONES: readonly number[] = Object.freeze(new Array(IOLAT_ZONES).fill(0));

/** One histogram of a map: a disk's (and, per container, a cgroup's) zones of one kind. */
export interface DiskZones {
  disk: string;
  /** 0 = q2c, 1 = d2c (the map's kind). */
  kind: number;
  zones: readonly number[];
}

function pushZones(
  out: Sample[],
  name: string,
  help: string,
  zones: readonly number[],
  labels: Labels,
): void {
  zones.forEach((v, zone) => out.push(gauge(name, help, v, { ...labels, zone: String(zone) })));
}

/**
 * iolatency_blkdisk_{q2c,d2c}: the measured zones, then every zone at 0 for
 * each kind of each disk in `disks` that has none yet (unknown kinds skipped).
 */
export function blkdiskSamples(measured: readonly DiskZones[], disks: readonly string[]): Sample[] {
  const out: Sample[] = [];
  const seen = new Set<string>();
  const emit = (kind: string, disk: string, zones: readonly number[]) => {
    seen.add(`${kind} ${disk}`);
    pushZones(out, `iolatency_blkdisk_${kind}`, `the disk ${kind} latency`, zones, { disk });
  };
  for (const m of measured) {
    const kind = KINDS[m.kind];
    if (kind) emit(kind, m.disk, m.zones);
  }
  for (const disk of disks) {
    for (const kind of KINDS) if (!seen.has(`${kind} ${disk}`)) emit(kind, disk, ZERO_ZONES);
  }
  return out;
}

/** Disks a container's blkio (v1) or io (v2) controller shows I/O on; none when it has no such file. */
export function containerIoDisks(c: Container): string[] {
  const d = controllerDir(c, "blkio");
  if (!d) return [];
  if (d.v2) {
    const text = readCgroupFile(d.dir, "io.stat");
    return text === undefined ? [] : parseIoStatDevices(text, `${d.dir}/io.stat`);
  }
  // blk-throttle's counters exist whenever blkio is mounted; io_serviced only with CFQ (old kernels).
  for (const name of ["blkio.throttle.io_serviced", "blkio.io_serviced"]) {
    const text = readCgroupFile(d.dir, name);
    if (text !== undefined) return parseIoServicedDevices(text, `${d.dir}/${name}`);
  }
  return [];
}

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

/**
 * iolatency_container_blkdisk_{q2c,d2c} samples of the joined entries (unknown
 * kinds skipped), then every zone at 0 for each kind of each disk a container
 * has an entry of, or did I/O on (`ioDisks`), without one of that kind.
 */
export function iolatencyContainerSamples(
  matched: readonly Matched<IoLatCgroupEntry>[],
  ioDisks: readonly { container: Container; disks: readonly string[] }[] = [],
): Sample[] {
  const out: Sample[] = [];
  const seen = new Map<Container, Set<string>>();
  const disksOf = new Map<Container, Set<string>>();
  const emit = (c: Container, kind: string, disk: string, zones: readonly number[]) => {
    const name = `iolatency_container_blkdisk_${kind}`;
    pushZones(out, name, `container blkio ${kind} latency`, zones, { ...containerLabels(c), disk });
  };
  for (const { entry, container } of matched) {
    const kind = KINDS[entry.kind];
    if (!kind) continue;
    const disk = devName(entry.dev);
    emit(container, kind, disk, entry.zones);
    if (!seen.has(container)) seen.set(container, new Set());
    seen.get(container)!.add(`${kind} ${disk}`);
    if (!disksOf.has(container)) disksOf.set(container, new Set());
    disksOf.get(container)!.add(disk);
  }
  for (const { container, disks } of ioDisks) {
    if (!disksOf.has(container)) disksOf.set(container, new Set());
    for (const d of disks) disksOf.get(container)!.add(d);
  }
  for (const [container, disks] of disksOf) {
    const done = seen.get(container);
    for (const disk of disks) {
      for (const kind of KINDS) if (!done?.has(`${kind} ${disk}`)) emit(container, kind, disk, ZERO_ZONES);
    }
  }
  return out;
}

export default metricsFeature("iolatency", ({ fs, bpf, containers }) => {
  const tracer = new BpfTracer({
    name: "iolatency",
    object: "iolatency.o",
    optionalPrograms: ["iolat_io_start"],
  }, bpf);
  const lookup = containers && controllerLookup(containers, "blkio");
  const join = new CgroupKeyJoin();
  return {
    tracer,
    async collect() {
      // Read the map first: a tracer that is not running fails the scrape rather than reporting zeros.
      const byDisk = hashZones(tracer.object.map("iolat_disk"), IOLAT_ZONES, (dv, off) => ({
        disk: devName(dv.getUint32(off, true)),
        kind: dv.getUint32(off + 4, true),
      }));
      const measured = [...byDisk].map(([k, zones]) => ({ ...k, zones }));
      const out = blkdiskSamples(measured, listBlockDisks(fs));
      if (lookup && containers) {
        const map = tracer.object.map("iolat_cgroup");
        const { matched, stale } = join.join(iolatencyByCgroup(map), lookup, Date.now());
        for (const e of stale) map.delete(iolatCgroupKey(e));
        const ioDisks = await perContainer(
          containers.list(),
          (c) => [{ container: c, disks: containerIoDisks(c) }],
        );
        out.push(...iolatencyContainerSamples(matched, ioDisks));
      }
      return out;
    },
  };
}, { tracing: true });
