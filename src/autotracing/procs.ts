// Walks over the host's processes and threads for captures (memburst's
// largest processes, iotracing's I/O per process, D-state tasks): synchronous
// procfs reads (never waiting on a disk) with the event loop handed back every
// few ms, each walk bounded in what it examines. A process that exits during
// a walk is skipped.

import { type HostFs, MAX_PROC_FILE_BYTES } from "../host/fs.ts";
import {
  parseExecStartMs,
  parsePidIo,
  parsePidStatus,
  type PidIo,
  type PidStatus,
  procStackFrames,
} from "../host/proc_pid.ts";
import { Slicer } from "../host/slicer.ts";
import { readTextFileBoundedSync } from "../io/read.ts";
import { parseTaskStat } from "../events/kernel_stacks.ts";

/** Processes examined at most by one walk. */
export const MAX_PROCS = 100_000;
/** Threads examined at most by one walk over tasks. */
export const MAX_THREADS = 200_000;
/** Descriptors of one process examined at most for its open files. */
export const MAX_FDS = 4096;
/** A kernel stack (/proc/<pid>/stack) holds at most 64 frames of ~80 bytes. */
const STACK_BYTES = 64 * 1024;

function read(path: string, max = MAX_PROC_FILE_BYTES): string | undefined {
  try {
    return readTextFileBoundedSync(path, max);
  } catch {
    return undefined; // exited, or not ours to read
  }
}

function numeric(dir: string, max: number): number[] {
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      const n = Number(e.name);
      if (Number.isInteger(n) && n > 0) out.push(n);
      if (out.length >= max) break;
    }
  } catch {
    // gone
  }
  return out.sort((a, b) => a - b);
}

export function listPids(fs: HostFs): number[] {
  return numeric(fs.proc(""), MAX_PROCS);
}

export function readPidStatus(fs: HostFs, pid: number): PidStatus | undefined {
  const text = read(fs.proc(`${pid}/status`));
  if (text === undefined) return undefined;
  try {
    return parsePidStatus(text);
  } catch {
    return undefined;
  }
}

export function readPidIo(fs: HostFs, pid: number): PidIo | undefined {
  const text = read(fs.proc(`${pid}/io`));
  if (text === undefined) return undefined;
  try {
    return parsePidIo(text);
  } catch {
    return undefined;
  }
}

/** A kernel stack, innermost frame first; undefined when unreadable (needs root). */
export function readStack(fs: HostFs, pid: number, tid = pid): string[] | undefined {
  const text = read(fs.proc(`${pid}/task/${tid}/stack`), STACK_BYTES);
  return text === undefined ? undefined : procStackFrames(text);
}

export interface ProcessMemory {
  pid: number;
  process_name: string;
  /** VmRSS, bytes. */
  memory_size: number;
}

/** The `n` processes with the largest resident set, largest first (memburst's top_memory_usage). */
export async function topByRss(fs: HostFs, n: number): Promise<ProcessMemory[]> {
  const all: ProcessMemory[] = [];
  const slicer = new Slicer();
  for (const pid of listPids(fs)) {
    await slicer.tick();
    const s = readPidStatus(fs, pid);
    // Kernel threads have no mm (no VmRSS).
    if (s?.rssBytes !== undefined && s.rssBytes > 0) {
      all.push({ pid, process_name: s.name, memory_size: s.rssBytes });
    }
  }
  return all.sort((a, b) => b.memory_size - a.memory_size || a.pid - b.pid).slice(0, n);
}

/** /proc/<pid>/io of every process now. */
export async function ioSnapshot(fs: HostFs): Promise<Map<number, PidIo>> {
  const out = new Map<number, PidIo>();
  const slicer = new Slicer();
  for (const pid of listPids(fs)) {
    await slicer.tick();
    const io = readPidIo(fs, pid);
    if (io) out.set(pid, io);
  }
  return out;
}

export interface OpenFile {
  path: string;
  /** st_dev of the file (Deno's FileInfo.dev). */
  dev: number;
}

/** The distinct regular files a process has open (at most MAX_FDS descriptors examined). */
export function openRegularFiles(fs: HostFs, pid: number): OpenFile[] {
  const dir = fs.proc(`${pid}/fd`);
  const seen = new Map<string, OpenFile>();
  for (const fd of numericFds(dir)) {
    try {
      const info = Deno.statSync(`${dir}/${fd}`); // follows the magic link to the file itself
      if (!info.isFile) continue;
      const path = Deno.readLinkSync(`${dir}/${fd}`);
      if (!seen.has(path)) seen.set(path, { path, dev: info.dev });
    } catch {
      // closed meanwhile
    }
  }
  return [...seen.values()];
}

function numericFds(dir: string): number[] {
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      const n = Number(e.name);
      if (Number.isInteger(n) && n >= 0) out.push(n);
      if (out.length >= MAX_FDS) break;
    }
  } catch {
    // gone
  }
  return out.sort((a, b) => a - b);
}

export interface BlockedTask {
  tgid: number;
  tid: number;
  comm: string;
  /** se.exec_start: when it last stopped running (scheduler clock, ms); changes whenever it runs again. */
  execStartMs: number;
}

/** Every thread in D state now (at most MAX_THREADS threads examined). */
export async function blockedTasks(fs: HostFs): Promise<BlockedTask[]> {
  const out: BlockedTask[] = [];
  const slicer = new Slicer();
  let scanned = 0;
  for (const tgid of listPids(fs)) {
    for (const tid of numeric(fs.proc(`${tgid}/task`), MAX_THREADS)) {
      if (++scanned > MAX_THREADS) return out;
      await slicer.tick();
      const stat = read(fs.proc(`${tgid}/task/${tid}/stat`));
      const t = stat === undefined ? undefined : parseTaskStat(stat);
      if (t?.state !== "D") continue;
      const sched = read(fs.proc(`${tgid}/task/${tid}/sched`));
      let execStartMs: number;
      try {
        if (sched === undefined) continue;
        execStartMs = parseExecStartMs(sched);
      } catch {
        continue;
      }
      out.push({ tgid, tid, comm: t.comm, execStartMs });
    }
  }
  return out;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
