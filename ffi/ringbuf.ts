// RingBufferReader: reads a BPF_MAP_TYPE_RINGBUF map (kernel 5.8+) straight
// from its mmap'ed pages on the JS thread, on a timer (see ffi/events.ts for
// why, and for the shared EventReader API).
//
// Layout (kernel/bpf/ringbuf.c, include/uapi/linux/bpf.h):
//   offset 0, 1 page, read-write:  u64 consumer_pos (we store it)
//   offset 1 page, read-only:      u64 producer_pos (page), then the data
//                                  area mapped twice back to back, so a
//                                  record never wraps in our mapping.
//   record at data + (pos & mask): u32 len (bit 31 BUSY: not yet committed,
//                                  bit 30 DISCARD), u32 page offset, then
//                                  len bytes, padded to 8.
// Records are consumed in order; a BUSY record stops the walk until a later
// poll. The new consumer_pos is stored at the end of each poll and every
// quarter ring within one (libbpf stores it per record; each store costs a
// BigInt here, so not per record).
//
// Drops: the ring buffer has no kernel-side lost count — a full ring just
// makes bpf_ringbuf_reserve() return NULL. Programs count that themselves,
// by convention in a per-CPU array named `<ring map>_lost` (u32 key 0, u64
// value), which the reader finds in the same object and sums on `lost`
// (bpf/huatuo.h's HUATUO_EVENT_RING and huatuo_reserve write it so):
//
//   struct {
//     __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
//     __uint(max_entries, 1);
//     __type(key, __u32);
//     __type(value, __u64);
//   } events_lost SEC(".maps");
//
//   e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
//   if (!e) { __u32 k = 0; __u64 *n = bpf_map_lookup_elem(&events_lost, &k); if (n) *n += 1; return 0; }
//   ...
//   bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP); // we poll on a timer: wake nobody
//
// Any other map (per-CPU or plain array, u64 at key 0) can be passed as
// `lostMap`. Limits: rings up to 1 GiB; positions are kept as JS numbers,
// exact up to 2^53 bytes (decades at 1 GB/s).

import { BPF_MAP_TYPE_RINGBUF, BpfError, type BpfMap } from "./libbpf.ts";
import { MAP_SHARED, mmap, munmap, pageSize, PROT_READ, PROT_WRITE } from "./libc.ts";
import { perCpuStride, sumPerCpu } from "./percpu.ts";
import { checkBudget, EventReaderBase, type EventReaderOptions, type RecordHandler } from "./events.ts";

export interface RingBufferReaderOptions extends EventReaderOptions {
  /**
   * The map the BPF program counts failed reservations in (u64 at key 0,
   * summed over CPUs for per-CPU maps). Default: `<map name>_lost` of the
   * same object when it exists; `null`: none (lost stays 0).
   */
  lostMap?: BpfMap | null;
}

const BUSY_BIT = 0x80000000;
const DISCARD_BIT = 0x40000000;
const LEN_MASK = 0x3fffffff;
const HDR_SIZE = 8;
const MAX_RING = 1 << 30;

/** Reads one BPF ring buffer map; see the file comment. */
export class RingBufferReader extends EventReaderBase {
  readonly map: BpfMap;
  /** Bytes of the data area (the map's max_entries). */
  readonly size: number;
  readonly lostMap: BpfMap | null;

  #page: number;
  #consPtr: Deno.PointerObject | null;
  #prodPtr: Deno.PointerObject | null;
  #consLen: number;
  #prodLen: number;
  #consBuf: ArrayBuffer;
  #prodBuf: ArrayBuffer;
  // consumer_pos (RW page) and producer_pos (RO page), 64-bit, via Atomics.
  #consPos: BigInt64Array;
  #prodPos: BigInt64Array;
  // Record headers, read with Atomics.load (acquire) as the kernel commits
  // them with a release store; index = byte offset / 4.
  #hdr: Int32Array;
  // Handed to the handler: the whole producer mapping.
  #view: DataView;
  #mask: number;
  // Our consumer position (== consumer_pos after every poll).
  #cons: number;
  // consumer_pos is stored at the end of a poll, and within one whenever
  // this many bytes were consumed since the last store (a quarter ring).
  #releaseEvery: number;
  #lostBuf: Uint8Array<ArrayBuffer> | null;
  #lostKey = new Uint8Array(4);
  #closed = false;

  constructor(map: BpfMap, handler: RecordHandler, opts: RingBufferReaderOptions = {}) {
    super(handler, opts);
    if (map.type !== BPF_MAP_TYPE_RINGBUF) {
      throw new BpfError({
        object: map.object.name,
        op: "read ring buffer",
        map: map.name,
        detail: `map type is ${map.type}, not BPF_MAP_TYPE_RINGBUF (${BPF_MAP_TYPE_RINGBUF})`,
      });
    }
    if (map.fd < 0) {
      throw new BpfError({
        object: map.object.name,
        op: "read ring buffer",
        map: map.name,
        detail: "map is not loaded",
      });
    }
    const size = map.maxEntries;
    if (size > MAX_RING || (size & (size - 1)) !== 0) {
      throw new BpfError({
        object: map.object.name,
        op: "read ring buffer",
        map: map.name,
        detail: `size ${size} is not a power of two up to ${MAX_RING}`,
      });
    }
    this.map = map;
    this.size = size;
    this.#mask = size - 1;
    this.#releaseEvery = Math.max(size / 4, 8);
    this.#page = pageSize();
    this.lostMap = opts.lostMap !== undefined ? opts.lostMap : findLostMap(map);

    this.#consLen = this.#page;
    this.#prodLen = this.#page + 2 * size;
    this.#consPtr = mmap(this.#consLen, PROT_READ | PROT_WRITE, MAP_SHARED, map.fd, 0);
    try {
      this.#prodPtr = mmap(this.#prodLen, PROT_READ, MAP_SHARED, map.fd, this.#page);
    } catch (err) {
      munmap(this.#consPtr, this.#consLen);
      throw err;
    }
    this.#consBuf = Deno.UnsafePointerView.getArrayBuffer(this.#consPtr, this.#consLen);
    this.#prodBuf = Deno.UnsafePointerView.getArrayBuffer(this.#prodPtr, this.#prodLen);
    this.#consPos = new BigInt64Array(this.#consBuf, 0, 1);
    this.#prodPos = new BigInt64Array(this.#prodBuf, 0, 1);
    this.#hdr = new Int32Array(this.#prodBuf);
    this.#view = new DataView(this.#prodBuf);
    this.#cons = Number(Atomics.load(this.#consPos, 0));

    this.#lostBuf = this.lostMap === null ? null : new Uint8Array(this.lostMap.valueStride);
  }

  /** Failed reservations counted by the BPF program (0 without a lost map); one map lookup per read. */
  get lost(): number {
    const m = this.lostMap;
    if (m === null || this.#lostBuf === null || m.fd < 0) return 0;
    if (!m.lookup(this.#lostKey, this.#lostBuf)) return 0;
    // A plain map's one value is a single slot.
    return Number(
      sumPerCpu(this.#lostBuf, m.isPerCpu ? perCpuStride(m.valueSize) : this.#lostBuf.byteLength),
    );
  }

  /** Bytes committed but not yet consumed. */
  get pending(): number {
    this.#check();
    return Number(Atomics.load(this.#prodPos, 0)) - this.#cons;
  }

  poll(budget: number = Infinity): number {
    this.#check();
    checkBudget(budget);
    // Hot loop: locals only; the handler gets numbers and the one DataView.
    // (BigInt conversions happen once per poll and once per quarter ring, not per record.)
    const prod = Number(Atomics.load(this.#prodPos, 0));
    const hdr = this.#hdr;
    const view = this.#view;
    const handler = this.handler;
    const mask = this.#mask;
    const base = this.#page;
    const release = this.#releaseEvery;
    let cons = this.#cons;
    let stored = cons;
    let n = 0;
    while (cons < prod && n < budget) {
      if (cons - stored >= release) {
        // A long poll gives space back to the producers as it goes (only up
        // to the records already handled: `cons` is where the next one starts).
        Atomics.store(this.#consPos, 0, BigInt(cons));
        stored = cons;
      }
      const at = base + (cons & mask);
      const len = Atomics.load(hdr, at >>> 2);
      if ((len & BUSY_BIT) !== 0) break; // reserved, not committed yet
      const dataLen = len & LEN_MASK;
      cons += (dataLen + HDR_SIZE + 7) & ~7;
      if ((len & DISCARD_BIT) !== 0) continue;
      n++;
      try {
        handler(view, at + HDR_SIZE, dataLen);
      } catch (err) {
        this.handlerFailed(err);
      }
      if (this.#closed) break; // the handler closed us: the mapping is gone
    }
    this.eventCount += n;
    if (this.#closed) return n;
    this.#cons = cons;
    if (cons !== stored) Atomics.store(this.#consPos, 0, BigInt(cons));
    return n;
  }

  close(): void {
    if (this.#closed) return;
    this.stop();
    this.#closed = true;
    // Detach the buffers first: a handler that kept a view now gets a
    // TypeError instead of reading unmapped memory.
    this.#consBuf.transfer(0);
    this.#prodBuf.transfer(0);
    if (this.#prodPtr !== null) munmap(this.#prodPtr, this.#prodLen);
    if (this.#consPtr !== null) munmap(this.#consPtr, this.#consLen);
    this.#prodPtr = null;
    this.#consPtr = null;
  }

  #check(): void {
    if (this.#closed) {
      throw new BpfError({ object: this.map.object.name, op: "poll closed ring buffer", map: this.map.name });
    }
  }
}

function findLostMap(map: BpfMap): BpfMap | null {
  const want = `${map.name}_lost`;
  return map.object.maps.find((m) => m.name === want) ?? null;
}
