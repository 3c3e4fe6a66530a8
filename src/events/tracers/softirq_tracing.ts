// softirq_tracing: softirqs stayed disabled on a CPU longer than
// EventTracing.Softirq.DisabledThreshold. A perf_event BPF program samples
// every CPU's preempt_count on a software cpu-clock (no kprobes needed); see
// bpf/softirq_tracing.bpf.c for how a section is tracked. This file finds the
// per-CPU variables in the kernel BTF, opens and attaches one sampling event
// per online CPU, and turns each record into a "softirq_tracing" event.

import type { RecordHandler } from "../../../ffi/events.ts";
import { close, ENODEV, ErrnoError, perfEventOpen } from "../../../ffi/libc.ts";
import { BpfPermissionError, type BpfRuntime, BpfTracer, requireLibbpf } from "../../bpf/tracer.ts";
import { kernelSymbols, stackAddrs } from "../../bpf/ksyms.ts";
import type { Logger } from "../../log/logger.ts";
import { type Tracer, type TracerContext, UnsupportedError } from "../../tracing/manager.ts";
import type { EventSink } from "../sink.ts";
import { taskCgroupId } from "./task_cgroup.ts";
import { parseCpuList } from "../../host/cpulist.ts";

export const TRACER_NAME = "softirq_tracing";

// ---------------------------------------------------------------------------
// Kernel BTF: where the per-CPU variables the program reads live.

const BTF_MAGIC = 0xeb9f;
const KIND_INT = 1;
const KIND_ARRAY = 3;
const KIND_STRUCT = 4;
const KIND_UNION = 5;
const KIND_ENUM = 6;
const KIND_TYPEDEF = 8;
const KIND_VOLATILE = 9;
const KIND_CONST = 10;
const KIND_RESTRICT = 11;
const KIND_FUNC_PROTO = 13;
const KIND_VAR = 14;
const KIND_DATASEC = 15;
const KIND_DECL_TAG = 17;
const KIND_TYPE_TAG = 18;
const KIND_ENUM64 = 19;
const KIND_MAX = 19;

/** Offsets (bytes) inside the kernel's .data..percpu section. */
export interface PercpuLayout {
  /** The x86 preempt count: __preempt_count, or pcpu_hot.preempt_count (6.2..6.14). */
  preemptCount: number;
  /** The CPU number: cpu_number, or pcpu_hot.cpu_number. */
  cpuNumber: number;
  /** struct rq runqueues: the anchor the BPF program finds through current->se.cfs_rq->rq. */
  runqueues: number;
  /** kstat.softirqs[]: softirq handlers run per vector. */
  softirqs: number;
}

interface BtfType {
  name: number;
  kind: number;
  kindFlag: boolean;
  vlen: number;
  sizeOrType: number;
  /** Byte offset of the type's trailing data (members, secinfos...). */
  extra: number;
}

/**
 * Finds the per-CPU offsets of the preempt count, the CPU number and the
 * runqueues in raw BTF (/sys/kernel/btf/vmlinux). Throws UnsupportedError
 * naming what this kernel's BTF lacks.
 */
export function percpuLayout(btf: Uint8Array): PercpuLayout {
  const v = new DataView(btf.buffer, btf.byteOffset, btf.byteLength);
  if (btf.byteLength < 24 || v.getUint16(0, true) !== BTF_MAGIC) {
    throw new UnsupportedError("kernel BTF is not little-endian raw BTF");
  }
  const hdrLen = v.getUint32(4, true);
  const typeOff = hdrLen + v.getUint32(8, true);
  const typeEnd = typeOff + v.getUint32(12, true);
  const strOff = hdrLen + v.getUint32(16, true);
  const strEnd = strOff + v.getUint32(20, true);
  if (typeEnd > btf.byteLength || strEnd > btf.byteLength) throw new RangeError("BTF sections past the end");
  const dec = new TextDecoder();
  const name = (off: number): string => {
    const s = strOff + off;
    const e = btf.indexOf(0, s);
    return dec.decode(btf.subarray(s, e < 0 || e > strEnd ? strEnd : e));
  };

  const types: BtfType[] = [{ name: 0, kind: 0, kindFlag: false, vlen: 0, sizeOrType: 0, extra: 0 }];
  const vars = new Map<string, number>(); // var name -> type id of the VAR
  let percpuSec: BtfType | undefined;
  for (let p = typeOff; p < typeEnd;) {
    const info = v.getUint32(p + 4, true);
    const t: BtfType = {
      name: v.getUint32(p, true),
      kind: (info >>> 24) & 0x1f,
      kindFlag: (info >>> 31) === 1,
      vlen: info & 0xffff,
      sizeOrType: v.getUint32(p + 8, true),
      extra: p + 12,
    };
    if (t.kind === 0 || t.kind > KIND_MAX) {
      throw new RangeError(`BTF type ${types.length}: unknown kind ${t.kind}`);
    }
    types.push(t);
    p = t.extra + extraSize(t);
    if (t.kind === KIND_VAR) vars.set(name(t.name), types.length - 1);
    else if (t.kind === KIND_DATASEC && name(t.name) === ".data..percpu") percpuSec = t;
  }
  if (!percpuSec) throw new UnsupportedError("kernel BTF has no .data..percpu section (per-CPU variables)");

  const secOffset = new Map<number, number>(); // VAR type id -> offset in the section
  for (let i = 0; i < percpuSec.vlen; i++) {
    const o = percpuSec.extra + i * 12;
    secOffset.set(v.getUint32(o, true), v.getUint32(o + 4, true));
  }
  const varOffset = (n: string): number | undefined => {
    const id = vars.get(n);
    return id === undefined ? undefined : secOffset.get(id);
  };
  // Byte offset of member `member` in the struct a VAR has, looking into anonymous members.
  const memberOffset = (typeId: number, member: string, depth = 0): number | undefined => {
    let t = types[typeId];
    while (t && [KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG].includes(t.kind)) {
      t = types[t.sizeOrType];
    }
    if (!t || (t.kind !== KIND_STRUCT && t.kind !== KIND_UNION) || depth > 4) return undefined;
    for (let i = 0; i < t.vlen; i++) {
      const m = t.extra + i * 12;
      const bits = v.getUint32(m + 8, true);
      const off = (t.kindFlag ? bits & 0xffffff : bits) / 8;
      const mName = v.getUint32(m, true);
      const mType = v.getUint32(m + 4, true);
      if (mName !== 0 && name(mName) === member) return off;
      if (mName === 0) {
        const inner = memberOffset(mType, member, depth + 1);
        if (inner !== undefined) return off + inner;
      }
    }
    return undefined;
  };
  const hot = (member: string): number | undefined => {
    const id = vars.get("pcpu_hot");
    const base = varOffset("pcpu_hot");
    if (id === undefined || base === undefined) return undefined;
    const m = memberOffset(types[id].sizeOrType, member);
    return m === undefined ? undefined : base + m;
  };

  const preemptCount = varOffset("__preempt_count") ?? hot("preempt_count");
  const cpuNumber = varOffset("cpu_number") ?? hot("cpu_number");
  const runqueues = varOffset("runqueues");
  const kstatId = vars.get("kstat");
  const kstat = varOffset("kstat");
  const kstatSoftirqs = kstatId === undefined
    ? undefined
    : memberOffset(types[kstatId].sizeOrType, "softirqs");
  const softirqs = kstat === undefined || kstatSoftirqs === undefined ? undefined : kstat + kstatSoftirqs;
  const missing = [
    preemptCount === undefined ? "__preempt_count (or pcpu_hot.preempt_count)" : "",
    cpuNumber === undefined ? "cpu_number (or pcpu_hot.cpu_number)" : "",
    runqueues === undefined ? "runqueues" : "",
    softirqs === undefined ? "kstat.softirqs" : "",
  ].filter((s) => s !== "");
  if (missing.length > 0) {
    throw new UnsupportedError(`kernel BTF lacks the per-CPU variable(s) ${missing.join(", ")}`);
  }
  return { preemptCount: preemptCount!, cpuNumber: cpuNumber!, runqueues: runqueues!, softirqs: softirqs! };
}

function extraSize(t: BtfType): number {
  switch (t.kind) {
    case KIND_INT:
    case KIND_VAR:
    case KIND_DECL_TAG:
      return 4;
    case KIND_ARRAY:
      return 12;
    case KIND_STRUCT:
    case KIND_UNION:
    case KIND_DATASEC:
    case KIND_ENUM64:
      return t.vlen * 12;
    case KIND_ENUM:
    case KIND_FUNC_PROTO:
      return t.vlen * 8;
    default: // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
      return 0;
  }
}

// ---------------------------------------------------------------------------
// Sampling.

/**
 * Sampling period (ns) for a threshold: a tenth of it, so a section is seen
 * by ~10 samples before it is reported and offtime is short by at most 10 %,
 * kept within [100 µs, 10 ms] (1 kHz per CPU at the default 10 ms).
 */
export function samplePeriodNs(thresholdNs: number): number {
  return Math.min(10_000_000, Math.max(100_000, Math.round(thresholdNs / 10)));
}

// struct perf_event_attr (include/uapi/linux/perf_event.h), PERF_ATTR_SIZE_VER5.
const ATTR_SIZE = 112;
const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_CPU_CLOCK = 0;
const ATTR_FLAG_DISABLED = 1n << 0n;
const PERF_FLAG_FD_CLOEXEC = 8;
// perf_event_open errors that mean "not here": no such event (ENOENT, EOPNOTSUPP). Not allowed (EPERM,
// EACCES: no CAP_PERFMON, perf_event_paranoid) is a failure naming the privileges.
const UNSUPPORTED_ERRNOS = new Set([2, 95]);
const DENIED_ERRNOS = new Set([1, 13]);

/** perf_event_attr of a disabled software cpu-clock event sampling every `periodNs` (libbpf enables it on attach). */
export function cpuClockAttr(periodNs: number): Uint8Array<ArrayBuffer> {
  const attr = new Uint8Array(ATTR_SIZE);
  const v = new DataView(attr.buffer);
  v.setUint32(0, PERF_TYPE_SOFTWARE, true);
  v.setUint32(4, ATTR_SIZE, true);
  v.setBigUint64(8, BigInt(PERF_COUNT_SW_CPU_CLOCK), true);
  v.setBigUint64(16, BigInt(periodNs), true); // sample_period
  v.setBigUint64(40, ATTR_FLAG_DISABLED, true);
  return attr;
}

// ---------------------------------------------------------------------------
// Records.

/** Size of struct softirq_tracing_event in bpf/softirq_tracing.bpf.c. */
export const SOFTIRQ_RECORD_SIZE = 560;
const STACK_OFFSET = 64;
const STACK_DEPTH = 62;

export interface SoftirqRecord {
  offtime: bigint;
  threshold: bigint;
  now: bigint;
  pid: number;
  tid: number;
  cpu: number;
  comm: string;
  /** True when a softirq handler ran (rather than softirqs being disabled in task context). */
  serving: boolean;
  stack: bigint[];
}

const decoder = new TextDecoder();

/** Decodes one struct softirq_tracing_event at @offset of @view. */
export function softirqRecord(view: DataView, offset: number): SoftirqRecord {
  if (view.byteLength - offset < SOFTIRQ_RECORD_SIZE) {
    throw new RangeError(
      `softirq_tracing record too short: ${view.byteLength - offset} < ${SOFTIRQ_RECORD_SIZE}`,
    );
  }
  const comm = new Uint8Array(view.buffer, view.byteOffset + offset + 40, 16);
  const nul = comm.indexOf(0);
  const stackBytes = view.getUint32(offset + 36, true);
  const depth = Math.min(STACK_DEPTH, Math.floor(stackBytes / 8));
  return {
    offtime: view.getBigUint64(offset, true),
    threshold: view.getBigUint64(offset + 8, true),
    now: view.getBigUint64(offset + 16, true),
    pid: view.getUint32(offset + 24, true),
    tid: view.getUint32(offset + 28, true),
    cpu: view.getUint32(offset + 32, true),
    comm: decoder.decode(nul < 0 ? comm : comm.subarray(0, nul)),
    serving: view.getUint32(offset + 56, true) !== 0,
    stack: stackAddrs(view, offset + STACK_OFFSET, depth),
  };
}

/** tracer_data with the seed's field names; `stack` is newline-joined "symbol+0xoff/0xsize" frames. */
export function softirqTracerData(
  r: SoftirqRecord,
  formatStack: (addrs: bigint[]) => string,
): Record<string, unknown> {
  return {
    offtime: Number(r.offtime),
    threshold: Number(r.threshold),
    comm: r.comm,
    pid: r.pid,
    cpu: r.cpu,
    now: Number(r.now),
    stack: formatStack(r.stack),
  };
}

function onRecord(log: Logger, events?: EventSink): RecordHandler {
  const syms = kernelSymbols();
  return (view, offset) => {
    const r = softirqRecord(view, offset);
    log.warn("softirqs disabled too long", {
      cpu: r.cpu,
      pid: r.pid,
      comm: r.comm,
      offtime_ns: Number(r.offtime),
      in_softirq: r.serving,
    });
    events?.({
      tracerName: TRACER_NAME,
      data: softirqTracerData(r, (a) => syms.formatStack(a)),
      // The task that was on the CPU: its container, when it still runs.
      cgroupId: taskCgroupId(r.pid),
      cgroupKind: "memory",
    });
  };
}

// ---------------------------------------------------------------------------
// The tracer.

const STAT_SAMPLES = 0;
const STAT_BAD_PERCPU = 1;

export interface SoftirqTracingContext {
  bpf: BpfRuntime;
  log: Logger;
  config: { readonly EventTracing: { readonly Softirq: { readonly DisabledThreshold: number } } };
  events?: EventSink;
  /** Root of /sys for the online CPU list (tests); default "/sys". */
  sysRoot?: string;
}

/** The "softirq_tracing" event tracer. */
export class SoftirqTracing implements Tracer {
  readonly name = TRACER_NAME;
  /** The loaded object, while running (tests and self-observability read it). */
  bpf?: BpfTracer;
  /** CPUs sampled while running. */
  cpus: number[] = [];
  /** The sampling period in use (ns). */
  periodNs = 0;
  #check?: ReturnType<typeof setTimeout>;

  constructor(readonly ctx: SoftirqTracingContext) {}

  async start(tctx: TracerContext): Promise<void> {
    requireLibbpf(); // before the BTF: a host without libbpf is told so, not that it lacks BTF
    const threshold = this.ctx.config.EventTracing.Softirq.DisabledThreshold;
    const layout = percpuLayout(this.#readBtf());
    const tracer = new BpfTracer({
      name: TRACER_NAME,
      object: "softirq_tracing.o",
      rodata: {
        disabled_threshold: BigInt(threshold),
        preempt_count_delta: BigInt(layout.preemptCount - layout.runqueues),
        cpu_number_delta: BigInt(layout.cpuNumber - layout.runqueues),
        softirq_count_delta: BigInt(layout.softirqs - layout.runqueues),
      },
      buffers: [{ map: "softirq_tracing_events", onRecord: onRecord(this.ctx.log, this.ctx.events) }],
    }, this.ctx.bpf);
    await tracer.start(tctx);
    try {
      this.periodNs = samplePeriodNs(threshold);
      this.cpus = this.#attach(tracer, this.periodNs);
    } catch (err) {
      tracer.stop();
      throw err;
    }
    this.bpf = tracer;
    // The per-CPU address derivation is checked by every sample; if it never holds, say so.
    this.#check = setTimeout(() => this.#verify(tctx), Math.max(1000, (this.periodNs / 1e6) * 50));
  }

  stop(): void {
    if (this.#check !== undefined) clearTimeout(this.#check);
    this.#check = undefined;
    this.bpf?.stop();
    this.bpf = undefined;
    this.cpus = [];
  }

  /** Per-CPU counters summed: [samples, bad per-CPU address, samples with softirqs off, sections reported]. */
  stats(): bigint[] {
    const map = this.bpf!.object.map("softirq_tracing_stats");
    const out: bigint[] = [];
    const key = new Uint8Array(4);
    const value = new Uint8Array(map.valueStride);
    const dv = new DataView(value.buffer);
    for (let i = 0; i < 4; i++) {
      new DataView(key.buffer).setUint32(0, i, true);
      map.lookup(key, value);
      let sum = 0n;
      for (let o = 0; o + 8 <= value.byteLength; o += 8) sum += dv.getBigUint64(o, true);
      out.push(sum);
    }
    return out;
  }

  #verify(tctx: TracerContext): void {
    this.#check = undefined;
    if (!this.bpf) return;
    const s = this.stats();
    if (s[STAT_SAMPLES] > 0n && s[STAT_BAD_PERCPU] === s[STAT_SAMPLES]) {
      tctx.fail(
        new UnsupportedError(
          "softirq_tracing cannot locate the per-CPU preempt count on this kernel " +
            `(${s[STAT_BAD_PERCPU]} of ${s[STAT_SAMPLES]} samples failed the cpu_number check)`,
        ),
      );
    } else if (s[STAT_SAMPLES] === 0n) {
      tctx.log.warn("softirq_tracing: no cpu-clock samples yet", { cpus: this.cpus.join(",") });
    }
  }

  #readBtf(): Uint8Array {
    const path = this.ctx.bpf.kernelBtf;
    try {
      return Deno.readFileSync(path);
    } catch {
      const custom = `${this.ctx.bpf.dir}/btf/${Deno.osRelease()}.btf`;
      try {
        return Deno.readFileSync(custom);
      } catch {
        throw new UnsupportedError(`kernel has no BTF (${path}) and no ${custom}`);
      }
    }
  }

  /** One cpu-clock sampling event per online CPU, each running the perf_event program. */
  #attach(tracer: BpfTracer, periodNs: number): number[] {
    const sys = this.ctx.sysRoot ?? "/sys";
    const online = parseCpuList(Deno.readTextFileSync(`${sys}/devices/system/cpu/online`));
    const prog = tracer.object.program("softirq_tracing_sample");
    const attr = cpuClockAttr(periodNs);
    const cpus: number[] = [];
    for (const cpu of online) {
      let fd: number;
      try {
        fd = perfEventOpen(attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
      } catch (err) {
        if (err instanceof ErrnoError && err.errno === ENODEV) continue; // went offline meanwhile
        if (err instanceof ErrnoError && UNSUPPORTED_ERRNOS.has(err.errno)) {
          throw new UnsupportedError(`software cpu-clock perf event on CPU ${cpu}: ${err.message}`);
        }
        if (err instanceof ErrnoError && DENIED_ERRNOS.has(err.errno)) {
          throw new BpfPermissionError(`software cpu-clock perf event on CPU ${cpu}: ${err.message}`, {
            cause: err,
          });
        }
        throw err;
      }
      try {
        prog.attachPerfEvent(fd); // the link owns fd from here; closing the object closes it
      } catch (err) {
        close(fd);
        throw err;
      }
      cpus.push(cpu);
    }
    if (cpus.length === 0) throw new Error(`no online CPU to sample (${sys}/devices/system/cpu/online)`);
    return cpus;
  }
}

export function softirqTracingTracer(ctx: SoftirqTracingContext): SoftirqTracing {
  return new SoftirqTracing(ctx);
}
