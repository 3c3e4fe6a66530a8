// Per-CPU map values: a lookup of a BPF_MAP_TYPE_PERCPU_* map returns one
// value per possible CPU, each round_up(value size, 8) bytes apart. The one
// place the agent adds such slots up (src/bpf/record.ts re-exports it).

/** Bytes between two CPUs' values of a per-CPU map whose value is `valueSize` bytes. */
export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

/**
 * Sums a per-CPU map value: `bytes` holds one `stride`-byte slot per CPU,
 * each with a u64 at `field`.
 */
export function sumPerCpu(bytes: Uint8Array, stride = 8, field = 0): bigint {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let sum = 0n;
  for (let o = 0; o + field + 8 <= bytes.byteLength; o += stride) sum += v.getBigUint64(o + field, true);
  return sum;
}
