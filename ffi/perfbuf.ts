// PerfBufferReader: reads a BPF_MAP_TYPE_PERF_EVENT_ARRAY (the event path for
// 4.18–5.7 kernels, which have no ring buffer map) straight from the per-CPU
// perf rings on the JS thread, on a timer (see ffi/events.ts).
//
// Setup, per possible CPU: perf_event_open(PERF_TYPE_SOFTWARE,
// PERF_COUNT_SW_BPF_OUTPUT, sample_type PERF_SAMPLE_RAW, watermark with
// wakeup_watermark = the ring size), mmap of 1 + pageCount pages read-write
// (so the kernel honours our data_tail and never overwrites unread data),
// PERF_EVENT_IOC_ENABLE, and the fd stored in the map at key = cpu.
// bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, …) then writes into the
// ring of the CPU it runs on. libbpf's default (wakeup_events = 1) wakes the
// reader on every event, which capped producers at ~155 k events/s
// (docs/architecture.md, FFI facts); with the watermark the kernel raises a wakeup at most once
// per ring's worth of data, and nobody waits for it: we poll.
//
// Ring (include/uapi/linux/perf_event.h): meta page with u64 data_head at
// 1024 (kernel writes) and u64 data_tail at 1032 (we write), then 2^n data
// pages. Records: struct perf_event_header {u32 type; u16 misc; u16 size},
// 8-byte aligned, so a header never wraps but a body may.
//   PERF_RECORD_SAMPLE (9): u32 raw size, raw bytes → handler. The raw size
//     is padded by the kernel so that size + 4 is a multiple of 8: a handler
//     sees up to 7 bytes more than the program wrote (libbpf does the same).
//   PERF_RECORD_LOST (2): u64 id, u64 lost → added to `lost`. The kernel
//     writes it once space is free again, i.e. with the next event on that CPU.
// A record that wraps around the end of the ring is copied into a reused
// scratch buffer (byte by byte: no allocation) and handed over from there.
//
// CPUs that are possible but offline (perf_event_open fails with ENODEV) are
// skipped with one warning; events from such a CPU, should it come online,
// fail in bpf_perf_event_output (no fd in the map) and are the program's to count.

import type { BpfMap } from "./libbpf.ts";
import { BpfError, numPossibleCpus } from "./libbpf.ts";
import {
  close as closeFd,
  ENODEV,
  ErrnoError,
  ioctl,
  MAP_SHARED,
  mmap,
  munmap,
  pageSize,
  perfEventOpen,
  PROT_READ,
  PROT_WRITE,
} from "./libc.ts";
import { checkBudget, EventReaderBase, type EventReaderOptions, type RecordHandler } from "./events.ts";

export const BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4;

export interface PerfBufferReaderOptions extends EventReaderOptions {
  /** Data pages per CPU, a power of two (default 64: 256 KiB per CPU with 4 KiB pages). */
  pageCount?: number;
  /** Setup warnings (offline CPUs, a map smaller than the CPU count); default console.warn. */
  onWarn?: (msg: string) => void;
  /**
   * @internal Tests only: replaces perf_event_open(attr, -1, cpu, -1,
   * PERF_FLAG_FD_CLOEXEC) (e.g. to fake an offline CPU). Returns an fd or
   * throws ErrnoError.
   */
  openEvent?: (attr: Uint8Array<ArrayBuffer>, cpu: number) => number;
}

export const DEFAULT_PAGE_COUNT = 64;

// perf_event_attr (include/uapi/linux/perf_event.h); PERF_ATTR_SIZE_VER5 is
// understood by every kernel this path is for (4.18+), newer ones accept it.
const ATTR_SIZE = 112;
const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_BPF_OUTPUT = 10;
const PERF_SAMPLE_RAW = 1 << 10;
const ATTR_FLAG_DISABLED = 1 << 0;
const ATTR_FLAG_WATERMARK = 1 << 14;
const PERF_FLAG_FD_CLOEXEC = 8;
const PERF_EVENT_IOC_ENABLE = 0x2400;
const PERF_EVENT_IOC_DISABLE = 0x2401;

const PERF_RECORD_LOST = 2;
const PERF_RECORD_SAMPLE = 9;
const HEAD_INDEX = 1024 / 8; // data_head, in u64 units
const TAIL_INDEX = 1032 / 8; // data_tail
const HDR_SIZE = 8;
const TWO_32 = 4294967296;

/** One CPU's ring. */
interface CpuRing {
  readonly cpu: number;
  readonly fd: number;
  readonly ptr: Deno.PointerObject;
  readonly length: number;
  readonly buf: ArrayBuffer;
  readonly meta: BigInt64Array;
  readonly view: DataView;
  readonly bytes: Uint8Array;
  tail: number;
}

/** Reads one perf event array map; see the file comment. */
export class PerfBufferReader extends EventReaderBase {
  readonly map: BpfMap;
  readonly pageCount: number;
  /** Bytes of each CPU's data area. */
  readonly ringSize: number;
  /** CPUs skipped because they were offline (ENODEV) or beyond the map's size. */
  readonly skippedCpus: readonly number[];

  #rings: CpuRing[] = [];
  #page: number;
  #lost = 0;
  #wrapped = 0;
  #next = 0; // the CPU poll() starts with, rotated so none starves under a budget
  #scratch = new Uint8Array(65536); // a record's size is a u16
  #scratchView = new DataView(this.#scratch.buffer);
  #keyBuf = new Uint8Array(4);
  #closed = false;
  // data_tail is stored at the end of a poll, and within one whenever this
  // many bytes were consumed since the last store (a quarter ring).
  #releaseEvery: number;

  constructor(map: BpfMap, handler: RecordHandler, opts: PerfBufferReaderOptions = {}) {
    super(handler, opts);
    const fail = (detail: string, errno?: number): BpfError =>
      new BpfError({ object: map.object.name, op: "open perf buffer", map: map.name, detail, errno });
    if (map.type !== BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
      throw fail(
        `map type is ${map.type}, not BPF_MAP_TYPE_PERF_EVENT_ARRAY (${BPF_MAP_TYPE_PERF_EVENT_ARRAY})`,
      );
    }
    if (map.fd < 0) throw fail("map is not loaded");
    const pages = opts.pageCount ?? DEFAULT_PAGE_COUNT;
    if (!Number.isInteger(pages) || pages < 1 || (pages & (pages - 1)) !== 0) {
      throw fail(`pageCount must be a power of two, got ${pages}`);
    }
    this.map = map;
    this.pageCount = pages;
    this.#page = pageSize();
    this.ringSize = pages * this.#page;
    this.#releaseEvery = this.ringSize / 4;
    if (this.ringSize > 1 << 30) throw fail(`ring of ${this.ringSize} bytes is over 1 GiB`);
    const warn = opts.onWarn ?? ((msg: string) => console.warn(msg));

    const attr = perfAttr(this.ringSize);
    const open = opts.openEvent ??
      ((a: Uint8Array<ArrayBuffer>, cpu: number) => perfEventOpen(a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
    const offline: number[] = [];
    const beyond: number[] = [];
    const cpus = numPossibleCpus();
    // max_entries 0 in the ELF (the usual case) is set to the possible CPU
    // count by libbpf at load; BpfMap.maxEntries still says 0 then.
    const entries = map.maxEntries > 0 ? map.maxEntries : cpus;
    try {
      for (let cpu = 0; cpu < cpus; cpu++) {
        if (cpu >= entries) {
          beyond.push(cpu);
          continue;
        }
        let fd: number;
        try {
          fd = open(attr, cpu);
        } catch (err) {
          if (err instanceof ErrnoError && err.errno === ENODEV) {
            offline.push(cpu);
            continue;
          }
          throw err instanceof ErrnoError ? fail(`perf_event_open(cpu ${cpu})`, err.errno) : err;
        }
        try {
          this.#rings.push(this.#setupCpu(cpu, fd));
        } catch (err) {
          closeFd(fd);
          throw err instanceof ErrnoError ? fail(err.call, err.errno) : err;
        }
      }
    } catch (err) {
      this.#release();
      throw err;
    }
    if (this.#rings.length === 0) {
      this.#release();
      throw fail("no CPU could be opened");
    }
    if (offline.length > 0) {
      warn(`perf buffer ${map.name}: CPUs ${offline.join(",")} are offline (ENODEV); not reading them`);
    }
    if (beyond.length > 0) {
      warn(`perf buffer ${map.name}: map has ${entries} entries; CPUs ${beyond.join(",")} are not read`);
    }
    this.skippedCpus = [...offline, ...beyond];
  }

  /** Sum of the kernel's PERF_RECORD_LOST counts read so far. */
  get lost(): number {
    return this.#lost;
  }

  /** Records that wrapped around a ring's end and were copied to the scratch buffer. */
  get wrapped(): number {
    return this.#wrapped;
  }

  /** CPUs being read. */
  get cpus(): number[] {
    return this.#rings.map((r) => r.cpu);
  }

  poll(budget: number = Infinity): number {
    this.#check();
    checkBudget(budget);
    const rings = this.#rings;
    const count = rings.length;
    const start = this.#next;
    this.#next = start + 1 === count ? 0 : start + 1;
    let n = 0;
    for (let i = 0; i < count && n < budget && !this.#closed; i++) {
      const idx = start + i < count ? start + i : start + i - count;
      n += this.#pollRing(rings[idx], budget - n);
    }
    this.eventCount += n;
    return n;
  }

  close(): void {
    if (this.#closed) return;
    this.stop();
    this.#closed = true;
    this.#release();
  }

  // Hot loop: locals only; the handler gets numbers and one of two DataViews.
  // (The BigInt conversions happen once per ring per poll, not per record.)
  #pollRing(r: CpuRing, budget: number): number {
    const head = Number(Atomics.load(r.meta, HEAD_INDEX));
    const view = r.view;
    const size = this.ringSize;
    const mask = size - 1;
    const base = this.#page;
    const handler = this.handler;
    const release = this.#releaseEvery;
    let tail = r.tail;
    let stored = tail;
    let n = 0;
    while (tail < head && n < budget) {
      if (tail - stored >= release) {
        // A long poll gives space back to the kernel as it goes (only up to
        // the records already handled: `tail` is where the next one starts).
        Atomics.store(r.meta, TAIL_INDEX, BigInt(tail));
        stored = tail;
      }
      const off = tail & mask;
      const at = base + off;
      const type = view.getUint32(at, true);
      const recSize = view.getUint16(at + 6, true);
      if (recSize < HDR_SIZE) {
        // Cannot happen with a sane kernel; resync rather than loop forever.
        tail = head;
        break;
      }
      tail += recSize;
      if (type !== PERF_RECORD_SAMPLE && type !== PERF_RECORD_LOST) continue;
      let rv = view;
      let ro = at;
      if (off + recSize > size) {
        // Wraps: copy the two pieces into the scratch buffer.
        const bytes = r.bytes;
        const scratch = this.#scratch;
        const first = size - off;
        for (let i = 0; i < first; i++) scratch[i] = bytes[at + i];
        for (let i = first; i < recSize; i++) scratch[i] = bytes[base + i - first];
        rv = this.#scratchView;
        ro = 0;
        this.#wrapped++;
      }
      if (type === PERF_RECORD_LOST) {
        this.#lost += rv.getUint32(ro + 16, true) + rv.getUint32(ro + 20, true) * TWO_32;
        continue;
      }
      n++;
      try {
        handler(rv, ro + HDR_SIZE + 4, rv.getUint32(ro + HDR_SIZE, true));
      } catch (err) {
        this.handlerFailed(err);
      }
      if (this.#closed) return n; // the handler closed us: the mapping is gone
    }
    r.tail = tail;
    if (tail !== stored) Atomics.store(r.meta, TAIL_INDEX, BigInt(tail));
    return n;
  }

  #setupCpu(cpu: number, fd: number): CpuRing {
    const length = this.#page + this.ringSize;
    const ptr = mmap(length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    try {
      ioctl(fd, PERF_EVENT_IOC_ENABLE);
      new DataView(this.#keyBuf.buffer).setUint32(0, cpu, true);
      this.map.update(this.#keyBuf, new Uint8Array(new Uint32Array([fd]).buffer));
    } catch (err) {
      munmap(ptr, length);
      throw err;
    }
    const buf = Deno.UnsafePointerView.getArrayBuffer(ptr, length);
    const meta = new BigInt64Array(buf, 0, this.#page / 8);
    return {
      cpu,
      fd,
      ptr,
      length,
      buf,
      meta,
      view: new DataView(buf),
      bytes: new Uint8Array(buf),
      tail: Number(Atomics.load(meta, TAIL_INDEX)),
    };
  }

  // Unhooks every CPU from the map (so the program stops writing), then
  // disables, unmaps and closes its event. Best effort: never throws.
  #release(): void {
    const dv = new DataView(this.#keyBuf.buffer);
    for (const r of this.#rings) {
      try {
        if (this.map.fd >= 0) {
          dv.setUint32(0, r.cpu, true);
          this.map.delete(this.#keyBuf);
        }
      } catch {
        // the object may be closed already: its map went with it
      }
      try {
        ioctl(r.fd, PERF_EVENT_IOC_DISABLE);
      } catch {
        // closing below releases it anyway
      }
      r.buf.transfer(0); // a kept view now throws instead of reading unmapped memory
      try {
        munmap(r.ptr, r.length);
      } catch {
        // nothing more to do
      }
      try {
        closeFd(r.fd);
      } catch {
        // nothing more to do
      }
    }
    this.#rings = [];
  }

  #check(): void {
    if (this.#closed) {
      throw new BpfError({ object: this.map.object.name, op: "poll closed perf buffer", map: this.map.name });
    }
  }
}

function perfAttr(ringSize: number): Uint8Array<ArrayBuffer> {
  const attr = new Uint8Array(ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(0, PERF_TYPE_SOFTWARE, true); // type
  dv.setUint32(4, ATTR_SIZE, true); // size
  dv.setBigUint64(8, BigInt(PERF_COUNT_SW_BPF_OUTPUT), true); // config
  dv.setBigUint64(16, 1n, true); // sample_period
  dv.setBigUint64(24, BigInt(PERF_SAMPLE_RAW), true); // sample_type
  dv.setBigUint64(40, BigInt(ATTR_FLAG_DISABLED | ATTR_FLAG_WATERMARK), true); // flag bits
  // wakeup_watermark: the kernel clamps it to the ring size, so at most one
  // wakeup per ring's worth of data (and nobody sleeps on it).
  dv.setUint32(48, ringSize, true);
  return attr;
}
