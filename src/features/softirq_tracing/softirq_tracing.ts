// softirq_tracing: softirqs stayed disabled on a CPU longer than
// EventTracing.Softirq.DisabledThreshold. A perf_event BPF program samples
// every CPU's preempt_count on a software cpu-clock (no kprobes needed); see
// bpf/softirq_tracing.bpf.c for how a section is tracked. This file finds the
// per-CPU variables in the kernel BTF, opens and attaches one sampling event
// per online CPU, and turns each record into a "softirq_tracing" event.

import { Btf, BTF_KIND } from "../../../ffi/btf.ts";
import type { RecordHandler } from "../../../ffi/events.ts";
import { close, ENODEV, ErrnoError, perfEventOpen } from "../../../ffi/libc.ts";
import { BpfPermissionError, type BpfRuntime, BpfTracer, requireLibbpf } from "../../bpf/tracer.ts";
import { kernelSymbols } from "../../bpf/ksyms.ts";
import { recordLayout, RecordReader, sumPerCpu, TASK_COMM_LEN } from "../../bpf/record.ts";
import type { Logger } from "../../log/logger.ts";
import { type Tracer, type TracerContext, UnsupportedError } from "../../tracing/manager.ts";
import type { EventSink } from "../../events/sink.ts";
import { taskCgroupId } from "../../events/task_cgroup.ts";
import { parseCpuList } from "../../host/cpulist.ts";
import { eventsFeature } from "../feature.ts";

export const TRACER_NAME = "softirq_tracing";

// ---------------------------------------------------------------------------
// Kernel BTF: where the per-CPU variables the program reads live.

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

/**
 * Finds the per-CPU offsets of the preempt count, the CPU number, the
 * runqueues and kstat.softirqs in the kernel's BTF. Throws UnsupportedError
 * naming what this kernel's BTF lacks.
 */
export function percpuLayout(btf: Btf): PercpuLayout {
  const sec = btf.find(".data..percpu", BTF_KIND.DATASEC);
  if (sec === undefined) {
    throw new UnsupportedError("kernel BTF has no .data..percpu section (per-CPU variables)");
  }
  // The section's variables by name: offset in the section and type.
  const vars = new Map<string, { offset: number; type: number }>();
  for (const v of btf.datasec(sec)) {
    const t = btf.type(v.type);
    vars.set(t.name, { offset: v.offset, type: t.sizeOrType });
  }
  const at = (name: string, member?: string): number | undefined => {
    const v = vars.get(name);
    if (v === undefined || member === undefined) return v?.offset;
    const m = btf.memberOffset(v.type, member);
    return m === undefined ? undefined : v.offset + m.offset;
  };

  const preemptCount = at("__preempt_count") ?? at("pcpu_hot", "preempt_count");
  const cpuNumber = at("cpu_number") ?? at("pcpu_hot", "cpu_number");
  const runqueues = at("runqueues");
  const softirqs = at("kstat", "softirqs");
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

const STACK_DEPTH = 62;

/** struct softirq_tracing_event in bpf/softirq_tracing.bpf.c. */
export const SOFTIRQ_RECORD = recordLayout("softirq_tracing.o", "softirq_tracing_event", 560, {
  offtime: 0,
  threshold: 8,
  now: 16,
  pid: 24,
  tid: 28,
  cpu: 32,
  stack_bytes: 36,
  comm: 40,
  serving: 56,
  stack: 64,
});

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

/** Decodes one struct softirq_tracing_event of `length` bytes at `offset` of `view`. */
export function softirqRecord(view: DataView, offset: number, length: number): SoftirqRecord {
  const r = RecordReader.of(SOFTIRQ_RECORD, view, offset, length);
  const f = SOFTIRQ_RECORD.fields;
  return {
    offtime: r.u64(f.offtime),
    threshold: r.u64(f.threshold),
    now: r.u64(f.now),
    pid: r.u32(f.pid),
    tid: r.u32(f.tid),
    cpu: r.u32(f.cpu),
    comm: r.cString(f.comm, TASK_COMM_LEN),
    serving: r.u32(f.serving) !== 0,
    stack: r.stack(f.stack, STACK_DEPTH, r.u32(f.stack_bytes)),
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
  return (view, offset, length) => {
    const r = softirqRecord(view, offset, length);
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
    const btf = this.#openBtf();
    let layout: PercpuLayout;
    try {
      layout = percpuLayout(btf);
    } finally {
      btf.close();
    }
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
    for (let i = 0; i < 4; i++) {
      new DataView(key.buffer).setUint32(0, i, true);
      out.push(map.lookup(key, value) ? sumPerCpu(value) : 0n);
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

  // The kernel's BTF, else the one shipped for this kernel release.
  #openBtf(): Btf {
    const path = this.ctx.bpf.kernelBtf;
    const custom = `${this.ctx.bpf.dir}/btf/${Deno.osRelease()}.btf`;
    const errors: string[] = [];
    for (const p of [path, custom]) {
      try {
        return Btf.parse(p);
      } catch (err) {
        errors.push(err instanceof Error ? err.message : String(err));
      }
    }
    throw new UnsupportedError(`kernel has no readable BTF (${errors.join("; ")})`);
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

export default eventsFeature("softirq_tracing", (ctx) => softirqTracingTracer(ctx));
