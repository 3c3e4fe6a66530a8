// The scene of a hungtask / softlockup report: a backtrace of every CPU
// (cpus_stack) and the kernel stacks of all D-state tasks
// (blocked_processes_stack).
//
// cpus_stack: the seed's agent triggers sysrq 'l' (NMI backtraces into the
// kernel log). That needs CONFIG_MAGIC_SYSRQ (absent on some kernels, e.g.
// the CI's), dumps every CPU's stack to the console (slow serial consoles
// stall on it) and must be scraped back out of /dev/kmsg among other
// messages. Instead, the tracer's BPF object carries a perf_event program that
// records the interrupted kernel stack, pid and comm once per CPU: the agent
// opens one software cpu-clock event per CPU with a 1 ms period for the moment
// it needs it, so each CPU is sampled from its timer interrupt within a few
// milliseconds. A soft-locked CPU still takes timer interrupts (that is how
// the watchdog sees it), so its stuck stack is captured; only a CPU with
// interrupts disabled throughout (a hard lockup, the NMI watchdog's business)
// gives no sample, which the text says.
//
// blocked_processes_stack: /proc/<pid>/task/<tid>/stat for state D, then
// /proc/<pid>/task/<tid>/stack (root only), read asynchronously with bounded
// concurrency and capped in tasks and bytes.

import type { RecordHandler } from "../../ffi/events.ts";
import { close, ENODEV, ErrnoError, perfEventOpen } from "../../ffi/libc.ts";
import { type BpfLink, type BpfMap, type BpfProgram, numPossibleCpus } from "../../ffi/libbpf.ts";
import { kernelSymbols } from "../bpf/ksyms.ts";
import { recordLayout, RecordReader, TASK_COMM_LEN } from "../bpf/record.ts";
import { type HostFs, MAX_PROC_FILE_BYTES } from "../host/fs.ts";
import { readTextFileBounded } from "../io/read.ts";
import { formatTracerTime, localOffsetMinutes } from "../core/document.ts";
import { fieldsAfterComm } from "../host/pid_stat.ts";

// ---------------------------------------------------------------------------
// cpus_stack

/** Frames in struct cpu_stack_event. */
export const CPU_STACK_DEPTH = 48;

/** struct cpu_stack_event in bpf/cpu_stack.h, emitted by the sampler of both objects. */
export const CPU_STACK_RECORD = recordLayout(["hungtask.o", "softlockup.o"], "cpu_stack_event", 424, {
  req: 0,
  cpu: 8,
  pid: 12,
  tgid: 16,
  len: 20,
  comm: 24,
  stack: 40,
});

export interface CpuStackRecord {
  /** The request this sample answers. */
  req: bigint;
  cpu: number;
  /** Thread running on the CPU (0: the idle task). */
  pid: number;
  tgid: number;
  comm: string;
  /** Kernel return addresses, innermost first; empty when the CPU was in user mode. */
  stack: bigint[];
  /** bpf_get_stack's error (negative errno), else 0. */
  error: number;
}

/** Decodes one struct cpu_stack_event of `length` bytes at `offset` of `view`. */
export function cpuStackRecord(view: DataView, offset: number, length: number): CpuStackRecord {
  const r = RecordReader.of(CPU_STACK_RECORD, view, offset, length);
  const f = CPU_STACK_RECORD.fields;
  const len = r.i32(f.len);
  return {
    req: r.u64(f.req),
    cpu: r.u32(f.cpu),
    pid: r.u32(f.pid),
    tgid: r.u32(f.tgid),
    comm: r.cString(f.comm, TASK_COMM_LEN),
    stack: r.stack(f.stack, CPU_STACK_DEPTH, len),
    error: len < 0 ? len : 0,
  };
}

/** "YYYY-MM-DD HH:MM:SS" in the agent's local time, the seed's cpus_stack header. */
export function localSeconds(at: Date): string {
  return formatTracerTime(at, localOffsetMinutes(at)).slice(0, 19);
}

export interface FormatCpuStacksOptions {
  at: Date;
  /** CPUs sampled (online), in order. */
  cpus: readonly number[];
  /** Turns return addresses into kernel-style frame lines. */
  formatStack: (addrs: bigint[]) => string;
  /** Why some CPUs could not be sampled at all (e.g. perf_event_open failed). */
  notes?: readonly string[];
}

/**
 * The seed's cpus_stack text: a timestamped header, then per CPU a block in
 * the kernel's backtrace style ("CPU: N PID: p Comm: c", "Call Trace:", one
 * frame per line).
 */
export function formatCpuStacks(samples: readonly CpuStackRecord[], opts: FormatCpuStacksOptions): string {
  const byCpu = new Map(samples.map((s) => [s.cpu, s]));
  const lines = [`${localSeconds(opts.at)} Backtrace of all active CPUs (cpu-clock sample)`];
  for (const cpu of opts.cpus) {
    lines.push(`Backtrace for cpu ${cpu}`);
    const s = byCpu.get(cpu);
    if (!s) {
      lines.push(" no sample: the CPU took no timer interrupt (interrupts disabled?)");
      continue;
    }
    lines.push(`CPU: ${cpu} PID: ${s.pid} Comm: ${s.comm}`);
    if (s.error < 0) lines.push(` kernel stack unavailable (bpf_get_stack error ${s.error})`);
    else if (s.stack.length === 0) lines.push(" in user mode");
    else {
      lines.push("Call Trace:");
      for (const f of opts.formatStack(s.stack).split("\n")) lines.push(` ${f}`);
    }
  }
  for (const n of opts.notes ?? []) lines.push(n);
  return lines.join("\n");
}

// struct perf_event_attr: type@0 size@4 config@8 sample_period@16 (linux/perf_event.h).
const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_CPU_CLOCK = 0n;
const PERF_ATTR_SIZE = 128;
const PERF_FLAG_FD_CLOEXEC = 8;
/** cpu-clock period: the first sample of each CPU comes 1 ms after its event is enabled. */
const SAMPLE_PERIOD_NS = 1_000_000n;
const ENXIO = 6;

function cpuClockAttr(): Uint8Array<ArrayBuffer> {
  const attr = new Uint8Array(PERF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(0, PERF_TYPE_SOFTWARE, true);
  dv.setUint32(4, PERF_ATTR_SIZE, true);
  dv.setBigUint64(8, PERF_COUNT_SW_CPU_CLOCK, true);
  dv.setBigUint64(16, SAMPLE_PERIOD_NS, true);
  return attr;
}

/** Where a tracer's sampler lives in its BPF object. */
export interface CpuStackBpf {
  /** The perf_event program (e.g. hungtask_cpu_stack). */
  program(): BpfProgram;
  /** ARRAY[1] __u64 holding the current request number (e.g. hungtask_cpustack_req). */
  requestMap(): BpfMap;
}

export interface CpuStackSamplerOptions {
  /**
   * How long to wait for every CPU's sample. Default 1000 ms: samples come within a few ms, but through the
   * ring buffer the JS thread polls, so a busy event loop delays them; only a CPU that never takes an
   * interrupt waits out the whole timeout.
   */
  timeoutMs?: number;
  formatStack?: (addrs: bigint[]) => string;
}

/**
 * One backtrace per CPU on demand, through a tracer's perf_event program.
 * Wire `onRecord` to the object's cpu stack ring buffer; sample() requests,
 * waits and formats. Requests are serialized.
 */
export class CpuStackSampler {
  #req = 0n;
  #pending: CpuStackRecord[] = [];
  #waiting: { req: bigint; want: number; resolve: () => void } | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #timeoutMs: number;
  readonly #formatStack: (addrs: bigint[]) => string;

  constructor(readonly bpf: CpuStackBpf, opts: CpuStackSamplerOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 1000;
    this.#formatStack = opts.formatStack ?? ((a) => kernelSymbols().formatStack(a));
  }

  readonly onRecord: RecordHandler = (view, offset, length) => {
    const r = cpuStackRecord(view, offset, length);
    const w = this.#waiting;
    if (!w || r.req !== w.req) return; // a late answer to a request already given up on
    this.#pending.push(r);
    if (this.#pending.length >= w.want) w.resolve();
  };

  /** The cpus_stack text now; never throws (failures are described in the text). */
  sample(): Promise<string> {
    const run = this.#chain.then(() => this.#sampleOnce());
    this.#chain = run.catch(() => {});
    return run.catch((err) => `${localSeconds(new Date())} all-CPU backtrace unavailable: ${errText(err)}`);
  }

  async #sampleOnce(): Promise<string> {
    const at = new Date();
    const req = ++this.#req;
    const key = new Uint8Array(4);
    const val = new Uint8Array(8);
    new DataView(val.buffer).setBigUint64(0, req, true);
    this.bpf.requestMap().update(key, val);
    const prog = this.bpf.program();
    const links: BpfLink[] = [];
    const cpus: number[] = [];
    const notes: string[] = [];
    this.#pending = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const attr = cpuClockAttr();
      for (let cpu = 0; cpu < numPossibleCpus(); cpu++) {
        let fd: number;
        try {
          fd = perfEventOpen(attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
        } catch (err) {
          // Offline or absent CPUs: nothing to sample.
          if (err instanceof ErrnoError && (err.errno === ENODEV || err.errno === ENXIO)) continue;
          notes.push(`cpu ${cpu}: perf_event_open failed: ${errText(err)}`);
          continue;
        }
        try {
          links.push(prog.attachPerfEvent(fd));
        } catch (err) {
          close(fd);
          notes.push(`cpu ${cpu}: attaching the sampler failed: ${errText(err)}`);
          continue;
        }
        cpus.push(cpu);
      }
      if (cpus.length > 0) {
        await new Promise<void>((resolve) => {
          this.#waiting = { req, want: cpus.length, resolve };
          if (this.#pending.length >= cpus.length) resolve();
          timer = setTimeout(resolve, this.#timeoutMs);
        });
      }
    } finally {
      clearTimeout(timer);
      this.#waiting = undefined;
      for (const l of links) l.destroy();
      new DataView(val.buffer).setBigUint64(0, 0n, true);
      try {
        this.bpf.requestMap().update(key, val);
      } catch { /* the object went away with its tracer */ }
    }
    const samples = this.#pending;
    this.#pending = [];
    return formatCpuStacks(samples, { at, cpus, formatStack: this.#formatStack, notes });
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------
// blocked_processes_stack

export interface TaskStat {
  tid: number;
  comm: string;
  /** One letter: R, S, D, T, t, X, Z, P, I. */
  state: string;
}

/** Parses /proc/<pid>/task/<tid>/stat: "tid (comm) S ...", where comm may hold spaces and parentheses. */
export function parseTaskStat(text: string): TaskStat | undefined {
  const open = text.indexOf(" (");
  const close = text.lastIndexOf(") ");
  if (open <= 0 || close < open) return undefined;
  const tid = Number(text.slice(0, open));
  const state = fieldsAfterComm(text)?.[0]?.charAt(0) ?? "";
  if (!Number.isInteger(tid) || tid <= 0 || !/[A-Za-z]/.test(state)) return undefined;
  return { tid, comm: text.slice(open + 2, close), state };
}

/**
 * /proc/<pid>/task/<tid>/stack lines are "[<0>] func+0x1c/0x90" (the address
 * hidden); keep the frames, indented like a kernel backtrace.
 */
export function formatProcStack(text: string): string {
  return text.split("\n").map((l) => l.replace(/^\[<[0-9a-fx]*>\]\s*/, "").trim()).filter((l) => l !== "")
    .map((l) => ` ${l}`).join("\n");
}

/** One task's block of blocked_processes_stack. */
export function formatBlockedTask(t: { comm: string; tid: number; tgid: number }, stack: string): string {
  return `task:${t.comm} state:D pid:${t.tid} tgid:${t.tgid}\n${stack}`;
}

export interface BlockedTasksOptions {
  /** D-state tasks whose stacks are included at most. Default 200. */
  maxTasks?: number;
  /** Size of the text at most (the last task may be cut). Default 256 KiB. */
  maxBytes?: number;
  /** Threads examined at most (bounds the walk on huge hosts). Default 200000. */
  maxScan?: number;
  /** Files read concurrently. Default 32. */
  concurrency?: number;
  /** Tasks listed (and kept within the caps) before all others, e.g. one container's (dload). */
  first?: (tgid: number, tid: number) => boolean;
}

export interface BlockedTasks {
  text: string;
  /** D-state tasks found (including those left out of the text). */
  found: number;
  /** Threads examined. */
  scanned: number;
  truncated: boolean;
}

async function numericEntries(dir: string): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const n = Number(e.name);
      if (Number.isInteger(n) && n > 0) out.push(n);
    }
  } catch {
    // The process exited under us, or the directory is unreadable.
  }
  return out.sort((a, b) => a - b);
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readTextFileBounded(path, MAX_PROC_FILE_BYTES);
  } catch {
    return undefined;
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; stops early when `fn` returns false. */
async function pool<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<boolean>): Promise<void> {
  const it = items[Symbol.iterator]();
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const n = it.next();
      if (n.done) return;
      if (!(await fn(n.value))) stop = true;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
}

/**
 * The kernel stacks of all tasks in D state, each as
 * "task:<comm> state:D pid:<tid> tgid:<tgid>" followed by its frames, blank
 * line separated, bounded by the options. Reading a stack needs root; a task
 * that left D state between the two reads is skipped.
 */
export async function blockedTasksStacks(fs: HostFs, opts: BlockedTasksOptions = {}): Promise<BlockedTasks> {
  const maxTasks = opts.maxTasks ?? 200;
  const maxBytes = opts.maxBytes ?? 256 * 1024;
  const maxScan = opts.maxScan ?? 200_000;
  const concurrency = opts.concurrency ?? 32;

  // Pass 1: every thread's state.
  const blocked: { tgid: number; tid: number; comm: string }[] = [];
  let scanned = 0;
  const pids = await numericEntries(fs.proc(""));
  await pool(pids, concurrency, async (tgid) => {
    const tids = await numericEntries(fs.proc(`${tgid}/task`));
    for (const tid of tids) {
      if (scanned >= maxScan) return false;
      scanned++;
      const stat = await readOrUndefined(fs.proc(`${tgid}/task/${tid}/stat`));
      const t = stat === undefined ? undefined : parseTaskStat(stat);
      if (t?.state === "D") blocked.push({ tgid, tid, comm: t.comm });
    }
    return true;
  });
  const first = opts.first ?? (() => false);
  const rank = (t: { tgid: number; tid: number }) => (first(t.tgid, t.tid) ? 0 : 1);
  blocked.sort((a, b) => rank(a) - rank(b) || a.tgid - b.tgid || a.tid - b.tid);

  // Pass 2: their stacks, in pid order, within the caps.
  const chosen = blocked.slice(0, maxTasks);
  const blocks: (string | undefined)[] = new Array(chosen.length);
  await pool(chosen.keys(), concurrency, async (i) => {
    const t = chosen[i];
    const raw = await readOrUndefined(fs.proc(`${t.tgid}/task/${t.tid}/stack`));
    // Still in D? A task that woke up meanwhile is no longer part of the scene.
    const now = await readOrUndefined(fs.proc(`${t.tgid}/task/${t.tid}/stat`));
    if (now !== undefined && parseTaskStat(now)?.state !== "D") return true;
    const frames = raw === undefined ? " (stack unavailable)" : formatProcStack(raw) || " (empty stack)";
    blocks[i] = formatBlockedTask(t, frames);
    return true;
  });

  const enc = new TextEncoder();
  const kept: string[] = [];
  let bytes = 0;
  let truncated = blocked.length > chosen.length || scanned >= maxScan;
  for (const b of blocks) {
    if (b === undefined) continue;
    const size = enc.encode(b).length + (kept.length > 0 ? 2 : 0);
    if (bytes + size > maxBytes) {
      truncated = true;
      break;
    }
    kept.push(b);
    bytes += size;
  }
  let text = kept.join("\n\n");
  if (truncated) {
    text += `${
      text === "" ? "" : "\n\n"
    }(truncated: ${blocked.length} D-state tasks found, ${scanned} threads examined)`;
  }
  return { text, found: blocked.length, scanned, truncated };
}
