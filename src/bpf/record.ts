// The records BPF programs emit, read from the TypeScript side.
//
// Each record is declared once, as a C struct in bpf/<feature>.bpf.c (with
// HUATUO_RECORD(struct ..., size) from bpf/huatuo.h). Its decoder declares the
// offsets it reads as a RecordLayout, and src/bpf/record_layout_test.ts checks
// every layout against the struct in the compiled object's BTF, so a field
// moved in C fails a plain unit test instead of decoding garbage.
//
// A RecordReader reads one record with bounds: the length is the one the ring
// reported, and a record shorter than its layout is rejected (the reader
// counts it as a handler error: huatuo_bamai_bpf_buffer_errors_total).

import { cString } from "../../ffi/cstring.ts";

// Char arrays and per-CPU values are read in ffi/ too (netlink, the ring readers' lost counts).
export { cString };
export { perCpuStride, sumPerCpu } from "../../ffi/percpu.ts";

/** Where a record's fields sit: C member path ("mce.cpuid") → byte offset. */
export interface RecordLayout<F extends string = string> {
  /** The compiled objects that emit it, e.g. ["oom.o"] (under _output/bpf). */
  readonly objects: readonly string[];
  /** The C struct, e.g. "oom_event". */
  readonly struct: string;
  /** sizeof the struct. */
  readonly size: number;
  readonly fields: Readonly<Record<F, number>>;
}

/** `object`: the compiled object emitting the record, or every one that does (a shared header's struct). */
export function recordLayout<const F extends string>(
  object: string | readonly string[],
  struct: string,
  size: number,
  fields: Record<F, number>,
): RecordLayout<F> {
  const objects = Object.freeze(typeof object === "string" ? [object] : [...object]);
  return Object.freeze({ objects, struct, size, fields: Object.freeze(fields) });
}

/** char comm[TASK_COMM_LEN] of the records that carry a task name. */
export const TASK_COMM_LEN = 16;
/** char name[IFNAMSIZ] of the records that carry a network device name. */
export const IFNAMSIZ = 16;

/** A record shorter than its struct: from a ring this means a producer/decoder mismatch. */
export class ShortRecordError extends RangeError {
  constructor(readonly struct: string, readonly length: number, readonly size: number) {
    super(`${struct} record too short: ${length} < ${size} bytes`);
    this.name = "ShortRecordError";
  }
}

/** Little-endian, bounds-checked reads of one record inside a ring's mapping. */
export class RecordReader {
  readonly #view: DataView;
  readonly #base: number;
  readonly #end: number;

  /** `length` is the record's length as the ring reported it. */
  constructor(view: DataView, offset: number, length: number) {
    if (offset < 0 || length < 0 || offset + length > view.byteLength) {
      throw new RangeError(`record [${offset}, +${length}) outside its buffer of ${view.byteLength} bytes`);
    }
    this.#view = view;
    this.#base = offset;
    this.#end = offset + length;
  }

  /** A reader for a record of `layout`; throws ShortRecordError when `length` is below its size. */
  static of(layout: RecordLayout, view: DataView, offset: number, length: number): RecordReader {
    if (length < layout.size) throw new ShortRecordError(layout.struct, length, layout.size);
    return new RecordReader(view, offset, length);
  }

  get length(): number {
    return this.#end - this.#base;
  }

  #at(off: number, size: number): number {
    const at = this.#base + off;
    if (off < 0 || at + size > this.#end) {
      throw new RangeError(`read of ${size} bytes at ${off} past the record's ${this.length} bytes`);
    }
    return at;
  }

  u8(off: number): number {
    return this.#view.getUint8(this.#at(off, 1));
  }
  i8(off: number): number {
    return this.#view.getInt8(this.#at(off, 1));
  }
  u16(off: number): number {
    return this.#view.getUint16(this.#at(off, 2), true);
  }
  i16(off: number): number {
    return this.#view.getInt16(this.#at(off, 2), true);
  }
  u32(off: number): number {
    return this.#view.getUint32(this.#at(off, 4), true);
  }
  i32(off: number): number {
    return this.#view.getInt32(this.#at(off, 4), true);
  }
  u64(off: number): bigint {
    return this.#view.getBigUint64(this.#at(off, 8), true);
  }
  i64(off: number): bigint {
    return this.#view.getBigInt64(this.#at(off, 8), true);
  }
  /** A u64 as a number: exact below 2^53 (counters, pids, nanoseconds within 104 days). */
  u64n(off: number): number {
    return Number(this.u64(off));
  }

  /** `n` bytes at `off`, a view into the ring (copy it to keep it). */
  bytes(off: number, n: number): Uint8Array {
    const at = this.#at(off, n);
    return new Uint8Array(this.#view.buffer, this.#view.byteOffset + at, n);
  }

  /** A NUL-terminated string in a `max`-byte char array (the whole array when it has no NUL). */
  cString(off: number, max: number): string {
    return cString(this.bytes(off, max));
  }

  /**
   * A kernel stack in a `depth`-slot u64 array at `off`: the addresses up to the
   * first zero, within the `bytes` bpf_get_stack() returned (negative: an error, none).
   */
  stack(off: number, depth: number, bytes = depth * 8): bigint[] {
    const n = Math.min(depth, Math.max(0, Math.floor(bytes / 8)));
    const out: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const a = this.u64(off + i * 8);
      if (a === 0n) break;
      out.push(a);
    }
    return out;
  }
}
