// Reading histogram maps whose values are `struct { __u64 zone[N]; }`.

import type { BpfMap } from "../../ffi/libbpf.ts";
import { perCpuStride, sumPerCpu } from "./record.ts";

const KEY0 = new Uint8Array(4);

/** Per-CPU values of one key of a PERCPU_ARRAY: zones[cpu][zone]. */
export function perCpuZones(map: BpfMap, zones: number, key: Uint8Array = KEY0): number[][] {
  const buf = new Uint8Array(map.perCpuValueSize);
  if (!map.lookup(key as Uint8Array<ArrayBuffer>, buf)) return [];
  const dv = new DataView(buf.buffer);
  const stride = perCpuStride(map.valueSize);
  const out: number[][] = [];
  for (let off = 0; off + stride <= buf.byteLength; off += stride) {
    const z: number[] = [];
    for (let i = 0; i < zones; i++) z.push(Number(dv.getBigUint64(off + i * 8, true)));
    out.push(z);
  }
  return out;
}

/** One key of a PERCPU_ARRAY, each zone summed over CPUs. */
export function sumPerCpuZones(map: BpfMap, zones: number, key: Uint8Array = KEY0): number[] {
  const buf = new Uint8Array(map.perCpuValueSize);
  const found = map.lookup(key as Uint8Array<ArrayBuffer>, buf);
  const stride = perCpuStride(map.valueSize);
  return Array.from({ length: zones }, (_, i) => found ? Number(sumPerCpu(buf, stride, i * 8)) : 0);
}

/** Every entry of a HASH/ARRAY map of u64 zones, keyed by `decodeKey`. */
export function hashZones<K>(
  map: BpfMap,
  zones: number,
  decodeKey: (dv: DataView, off: number) => K,
): Map<K, number[]> {
  const { keys, values, count } = map.lookupBatch();
  const kdv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  const vdv = new DataView(values.buffer, values.byteOffset, values.byteLength);
  const out = new Map<K, number[]>();
  for (let i = 0; i < count; i++) {
    const z: number[] = [];
    for (let j = 0; j < zones; j++) z.push(Number(vdv.getBigUint64(i * map.valueStride + j * 8, true)));
    out.set(decodeKey(kdv, i * map.keySize), z);
  }
  return out;
}

/** A single u64 counter in an ARRAY map at key 0. */
export function readCounter(map: BpfMap): number {
  const buf = new Uint8Array(8);
  return map.lookup(KEY0 as Uint8Array<ArrayBuffer>, buf)
    ? Number(new DataView(buf.buffer).getBigUint64(0, true))
    : 0;
}

/** "major:minor" of a kernel dev_t (MKDEV: major << 20 | minor). */
export function devName(dev: number): string {
  return `${dev >>> 20}:${dev & 0xfffff}`;
}
