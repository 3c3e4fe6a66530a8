// The in-process CPU profiler: bpf/cpu_profile.bpf.c sampled on every online
// CPU by a perf event (software cpu-clock; hardware cycles where a PMU
// exists), stacks and counts aggregated in the kernel, read once at the end
// and symbolized here.
//
// Each capture loads its own object (20-40 ms: libbpf reads the kernel's BTF
// for CO-RE, the verifier runs, the stack map is preallocated; see
// bench/RESULTS.md) and releases it, its links and its perf fds before
// returning, so nothing stays in the kernel between captures. A stack holds
// up to 127 frames (PROFILE_STACK_DEPTH in C, perf's default maximum).

import { BpfError, type BpfLink, BpfObject, type BpfProgram, bpfStatsEnabled } from "../../ffi/libbpf.ts";
import { close, ENODEV, ErrnoError, perfEventOpen } from "../../ffi/libc.ts";
import { defaultBpfDir } from "../bpf/locate.ts";
import { recordLayout, RecordReader, sumPerCpu, TASK_COMM_LEN } from "../bpf/record.ts";
import { BpfPermissionError, classifyLoadError, requireLibbpf } from "../bpf/tracer.ts";
import { parseCpuList } from "../host/cpulist.ts";
import { readTextFileBoundedSync } from "../io/read.ts";
import { UnsupportedError } from "../tracing/manager.ts";
import type { Profile, Profiler, ProfileRequest, ProfileScope, StackSample } from "./profile.ts";
import type { ElfSymbols } from "./elf.ts";
import type { Mapping } from "./maps.ts";
import { Symbolizer, UNKNOWN_FRAME } from "./symbolize.ts";

/** struct profile_key of bpf/cpu_profile.bpf.c: the key of profile_counts. */
export const PROFILE_KEY = recordLayout("cpu_profile.o", "profile_key", 28, {
  tgid: 0,
  kernel_stack_id: 4,
  user_stack_id: 8,
  comm: 12,
});

const LOST_SLOTS = 2;

/** `perf record -F 99`: a prime rate, off any timer the workload runs on. */
export const DEFAULT_FREQUENCY_HZ = 99;
export const MAX_FREQUENCY_HZ = 10_000;
/** Captures are for minutes at most: a trigger wants its answer while the anomaly lasts. */
export const MAX_DURATION_MS = 10 * 60_000;
/** How often a capture looks for processes it has not seen (their maps are kept in case they exit). */
const SNAPSHOT_EVERY_MS = 1000;
/** Processes whose maps one capture keeps at most. */
const MAX_SNAPSHOTS = 4096;

export type SamplingClock = "cpu-clock" | "cycles";

export interface CpuProfilerOptions {
  /** Where cpu_profile.o is. Default: the agent's BPF directory. */
  bpfDir?: string;
  /** Kernel BTF for CO-RE; without it, <bpfDir>/btf/<release>.btf. */
  kernelBtf?: string;
  /** Sample the idle task (pid 0) too, as `perf record -a` does. Default false (like bcc's profile). */
  includeIdle?: boolean;
  /** "auto" (default): hardware cycles when the CPU has a PMU, else cpu-clock. */
  clock?: SamplingClock | "auto";
  /** Shared across captures: its cache keeps parsed ELF symbol tables. */
  symbolizer?: Symbolizer;
  /**
   * Upper bound of the stacks the stack map holds (~1 KiB of kernel memory each while capturing; it gets
   * twice as many buckets). Default 32768.
   */
  maxStackEntries?: number;
  /** Where sysfs is (the online CPU list). Default "/sys". */
  sysRoot?: string;
  /** A single-file build's carried objects (BpfRuntime.objects): cpu_profile.o comes from here when present. */
  objects?: ReadonlyMap<string, Uint8Array>;
}

/** How a capture went, beside the profile: costs and sizes (bench/profiler.ts reports them). */
export interface CaptureStats {
  clock: SamplingClock;
  /** CPUs sampled. */
  cpus: number[];
  /** Why some CPUs were not sampled. */
  notes: string[];
  /** Open + load (verifier, map preallocation) of the object. */
  loadMs: number;
  /** perf_event_open and attach on every CPU. */
  attachMs: number;
  /** Reading the count and stack maps. */
  readMs: number;
  symbolizeMs: number;
  /** max_entries of the stack map (stacks it holds; its buckets: the next power of two). */
  stackEntries: number;
  countEntries: number;
  /** Distinct keys read, and distinct stacks among them. */
  keys: number;
  stacks: number;
  /** Samples lost because profile_counts was full, and because a stack could not be stored. */
  lostCounts: number;
  lostStacks: number;
  /** Run time and runs of the BPF program (only when kernel.bpf_stats_enabled=1). */
  bpfRunNs?: number;
  bpfRuns?: number;
}

/** A StackSample that also says where its kernel part begins. */
export interface CpuStackSample extends StackSample {
  /** How many of the last frames are kernel frames (0: sampled in user mode). */
  readonly kernelFrames: number;
}

export interface CpuProfile extends Profile {
  readonly samples: readonly CpuStackSample[];
  readonly stats: CaptureStats;
}

/** One entry of profile_counts. */
export interface CountEntry {
  tgid: number;
  /** -1: no stack of that kind. */
  kernelStackId: number;
  userStackId: number;
  comm: string;
  count: number;
}

/** Decodes `count` profile_counts entries read in one batch. */
export function decodeCounts(keys: Uint8Array, values: Uint8Array, count: number): CountEntry[] {
  const kv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  const vv = new DataView(values.buffer, values.byteOffset, values.byteLength);
  const f = PROFILE_KEY.fields;
  const out: CountEntry[] = [];
  for (let i = 0; i < count; i++) {
    const r = RecordReader.of(PROFILE_KEY, kv, i * PROFILE_KEY.size, PROFILE_KEY.size);
    out.push({
      tgid: r.u32(f.tgid),
      kernelStackId: r.i32(f.kernel_stack_id),
      userStackId: r.i32(f.user_stack_id),
      comm: r.cString(f.comm, TASK_COMM_LEN),
      count: Number(vv.getBigUint64(i * 8, true)),
    });
  }
  return out;
}

/** The return addresses of one profile_stacks value: up to the first zero. */
export function decodeStack(value: Uint8Array): bigint[] {
  const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const out: bigint[] = [];
  for (let o = 0; o + 8 <= value.byteLength; o += 8) {
    const a = v.getBigUint64(o, true);
    if (a === 0n) break;
    out.push(a);
  }
  return out;
}

/**
 * Stack samples from count entries and their symbolized stacks (innermost
 * first, as sampled): frames root first (user, then kernel); entries whose
 * frames read the same (different addresses in one function) merge; most
 * samples first.
 */
export function assembleSamples(
  entries: readonly CountEntry[],
  kernelFrames: (id: number) => readonly string[] | undefined,
  userFrames: (tgid: number, id: number) => readonly string[] | undefined,
): CpuStackSample[] {
  const merged = new Map<string, CpuStackSample & { count: number }>();
  for (const e of entries) {
    const user = e.userStackId >= 0 ? userFrames(e.tgid, e.userStackId) ?? [UNKNOWN_FRAME] : [];
    const kernel = e.kernelStackId >= 0 ? kernelFrames(e.kernelStackId) ?? [UNKNOWN_FRAME] : [];
    let frames = [...user].reverse().concat([...kernel].reverse());
    if (frames.length === 0) frames = [UNKNOWN_FRAME];
    const key = `${e.tgid}\0${e.comm}\0${kernel.length}\0${frames.join("\0")}`;
    const s = merged.get(key);
    if (s) s.count += e.count;
    else {merged.set(key, {
        tgid: e.tgid,
        process: e.comm,
        frames,
        count: e.count,
        kernelFrames: kernel.length,
      });}
  }
  return [...merged.values()].sort((a, b) => b.count - a.count);
}

/** The .rodata scope filter of cpu_profile.o for `scope`. */
export function scopeRodata(
  scope: ProfileScope,
): { target_cgroup2_id: bigint; target_cpu_cgroup_ino: bigint } {
  if (scope.kind === "host") return { target_cgroup2_id: 0n, target_cpu_cgroup_ino: 0n };
  const cg2 = scope.cgroup2Id ?? 0n;
  const ino = scope.cpuCgroupInode ?? 0n;
  if (cg2 <= 0n && ino <= 0n) throw new RangeError("a container scope needs cgroup2Id or cpuCgroupInode");
  return { target_cgroup2_id: cg2, target_cpu_cgroup_ino: ino };
}

/** Entries for a map sized from the samples a capture can take (`samples`), a power of 2 within [min, max]. */
export function mapEntries(samples: number, perSample: number, min: number, max: number): number {
  const want = Math.max(min, Math.ceil(samples * perSample));
  let n = 1;
  while (n < want) n *= 2;
  return Math.max(min, Math.min(n, max));
}

// struct perf_event_attr (linux/perf_event.h): type@0 size@4 config@8
// sample_period|sample_freq@16 flags@40 (bit 10: freq).
const PERF_ATTR_SIZE = 128;
const PERF_TYPE_HARDWARE = 0;
const PERF_TYPE_SOFTWARE = 1;
const PERF_ATTR_FREQ = 1n << 10n;
const PERF_FLAG_FD_CLOEXEC = 8;
const ENXIO = 6;
const EPERM = 1;
const EACCES = 13;

/** perf_event_attr sampling `clock` at `hz` per CPU (config 0 is both cycles and cpu-clock). */
export function samplingAttr(clock: SamplingClock, hz: number): Uint8Array<ArrayBuffer> {
  const attr = new Uint8Array(PERF_ATTR_SIZE);
  const dv = new DataView(attr.buffer);
  dv.setUint32(0, clock === "cycles" ? PERF_TYPE_HARDWARE : PERF_TYPE_SOFTWARE, true);
  dv.setUint32(4, PERF_ATTR_SIZE, true);
  dv.setBigUint64(16, BigInt(hz), true);
  dv.setBigUint64(40, PERF_ATTR_FREQ, true);
  return attr;
}

/**
 * Profiler implementation of src/profile/profile.ts. A capture resolves with
 * the symbolized profile; a request's signal aborting it (before or while it
 * samples) rejects with the signal's reason after releasing everything.
 */
export class BpfCpuProfiler implements Profiler {
  readonly symbolizer: Symbolizer;
  readonly #dir: string;
  readonly #objects: ReadonlyMap<string, Uint8Array> | undefined;
  readonly #kernelBtf: string;
  readonly #includeIdle: boolean;
  readonly #clock: SamplingClock | "auto";
  readonly #maxStackEntries: number;
  readonly #sys: string;
  #probedClock: SamplingClock | undefined;

  constructor(opts: CpuProfilerOptions = {}) {
    this.#dir = opts.bpfDir ?? defaultBpfDir();
    this.#objects = opts.objects;
    this.#kernelBtf = opts.kernelBtf ?? "/sys/kernel/btf/vmlinux";
    this.#includeIdle = opts.includeIdle ?? false;
    this.#clock = opts.clock ?? "auto";
    this.#maxStackEntries = opts.maxStackEntries ?? 32768;
    this.#sys = opts.sysRoot ?? "/sys";
    this.symbolizer = opts.symbolizer ?? new Symbolizer();
  }

  async capture(req: ProfileRequest): Promise<CpuProfile> {
    const hz = req.frequencyHz ?? DEFAULT_FREQUENCY_HZ;
    if (!Number.isInteger(hz) || hz < 1 || hz > MAX_FREQUENCY_HZ) {
      throw new RangeError(`frequencyHz must be an integer in [1, ${MAX_FREQUENCY_HZ}], got ${hz}`);
    }
    if (!Number.isFinite(req.durationMs) || req.durationMs <= 0 || req.durationMs > MAX_DURATION_MS) {
      throw new RangeError(`durationMs must be in (0, ${MAX_DURATION_MS}], got ${req.durationMs}`);
    }
    const rodata = { ...scopeRodata(req.scope), include_idle: this.#includeIdle };
    req.signal?.throwIfAborted();
    requireLibbpf();
    const object = `${this.#dir}/cpu_profile.o`;
    const carried = this.#objects?.get("cpu_profile.o");
    if (!carried) {
      try {
        Deno.statSync(object);
      } catch {
        throw new Error(
          `BPF object ${object} not found (build it with ./build.sh bpf, or point --bpf-dir at it)`,
        );
      }
    }

    const cpus = this.#onlineCpus();
    const samples = (req.durationMs / 1000) * hz * cpus.length;
    // A stack id is a bucket of the stack map (a hash of the stack): a new stack whose bucket another
    // stack holds is lost (-EEXIST), so the map gets several buckets per stack it may hold (two per
    // sample at most), within its cap: k distinct stacks in n buckets lose about k²/2n of them. The
    // kernel preallocates max_entries stacks (~1 KiB each) but makes max_entries rounded up to a
    // power of two buckets (8 bytes each): 2^m + 1 entries give twice the buckets for one more stack.
    const stackEntries = mapEntries(samples, 16, 16384, this.#maxStackEntries) + 1;
    const countEntries = mapEntries(samples, 1, 4096, 1 << 17);
    const notes: string[] = [];
    const links: BpfLink[] = [];
    let obj: BpfObject | undefined;
    let t = performance.now();
    try {
      try {
        obj = carried
          ? BpfObject.openMem(carried, "cpu_profile.o", { btfCustomPath: this.#customBtf() })
          : BpfObject.openFile(object, { btfCustomPath: this.#customBtf() });
        obj.setRodata(rodata);
        obj.map("profile_stacks").setMaxEntries(stackEntries);
        obj.map("profile_counts").setMaxEntries(countEntries);
        obj.load();
      } catch (err) {
        throw classifyLoadError(err);
      }
      const loadMs = performance.now() - t;

      t = performance.now();
      const prog = obj.program("cpu_profile_sample");
      const clock = this.#pickClock(cpus[0] ?? 0, hz);
      const sampled = this.#attach(prog, samplingAttr(clock, hz), cpus, links, notes);
      if (sampled.length === 0) throw new Error(`no CPU could be sampled: ${notes.join("; ")}`);
      const attachMs = performance.now() - t;

      const started = performance.now();
      const snapshots = new Map<number, Mapping[]>();
      await this.#sample(obj, req, snapshots);
      for (const l of links) l.destroy(); // sampling stops here
      const durationMs = performance.now() - started;

      t = performance.now();
      const read = readProfileMaps(obj);
      const run = bpfStatsEnabled() ? prog.info() : undefined;
      obj.close(); // the kernel memory goes before symbolizing
      obj = undefined;
      const readMs = performance.now() - t;

      t = performance.now();
      const profileSamples = await this.#symbolize(read.entries, read.stacks, snapshots);
      const symbolizeMs = performance.now() - t;

      const total = profileSamples.reduce((n, s) => n + s.count, 0);
      return {
        samples: profileSamples,
        total,
        lost: read.lostCounts + read.lostStacks,
        durationMs,
        frequencyHz: hz,
        stats: {
          clock,
          cpus: sampled,
          notes,
          loadMs,
          attachMs,
          readMs,
          symbolizeMs,
          stackEntries,
          countEntries,
          keys: read.entries.length,
          stacks: read.stacks.size,
          lostCounts: read.lostCounts,
          lostStacks: read.lostStacks,
          bpfRunNs: run === undefined ? undefined : Number(run.runTimeNs),
          bpfRuns: run === undefined ? undefined : Number(run.runCnt),
        },
      };
    } finally {
      for (const l of links) l.destroy();
      obj?.close();
    }
  }

  // One perf event per CPU with the program attached; returns the CPUs sampled.
  #attach(
    prog: BpfProgram,
    attr: Uint8Array<ArrayBuffer>,
    cpus: number[],
    links: BpfLink[],
    notes: string[],
  ) {
    const sampled: number[] = [];
    for (const cpu of cpus) {
      let fd: number;
      try {
        fd = perfEventOpen(attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
      } catch (err) {
        if (err instanceof ErrnoError && (err.errno === EPERM || err.errno === EACCES)) {
          throw new BpfPermissionError(`perf_event_open on cpu ${cpu}`, { cause: err });
        }
        // Went offline since the list was read: nothing to sample there.
        if (err instanceof ErrnoError && (err.errno === ENODEV || err.errno === ENXIO)) continue;
        notes.push(`cpu ${cpu}: ${errText(err)}`);
        continue;
      }
      try {
        links.push(prog.attachPerfEvent(fd)); // the link owns fd now
      } catch (err) {
        close(fd);
        if (err instanceof BpfError && err.errno === EPERM) throw classifyLoadError(err);
        notes.push(`cpu ${cpu}: attach: ${errText(err)}`);
        continue;
      }
      sampled.push(cpu);
    }
    return sampled;
  }

  // Hardware cycles when the option allows and a PMU accepts the event; cpu-clock otherwise.
  #pickClock(cpu: number, hz: number): SamplingClock {
    if (this.#clock !== "auto") return this.#clock;
    if (this.#probedClock === undefined) {
      try {
        close(perfEventOpen(samplingAttr("cycles", hz), -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
        this.#probedClock = "cycles";
      } catch {
        this.#probedClock = "cpu-clock"; // no PMU (most VMs): ENOENT / EOPNOTSUPP
      }
    }
    return this.#probedClock;
  }

  #onlineCpus(): number[] {
    try {
      return parseCpuList(readTextFileBoundedSync(`${this.#sys}/devices/system/cpu/online`, 64 * 1024));
    } catch {
      return Array.from({ length: navigator.hardwareConcurrency }, (_, i) => i);
    }
  }

  #customBtf(): string | undefined {
    try {
      Deno.statSync(this.#kernelBtf);
      return undefined;
    } catch {
      const custom = `${this.#dir}/btf/${Deno.osRelease()}.btf`;
      try {
        Deno.statSync(custom);
        return custom;
      } catch {
        throw new UnsupportedError(`kernel has no BTF (${this.#kernelBtf}) and no ${custom}`);
      }
    }
  }

  // Waits out the capture; every SNAPSHOT_EVERY_MS keeps the executable mappings of processes seen for
  // the first time, so the user stacks of those that exit before the end still resolve.
  async #sample(obj: BpfObject, req: ProfileRequest, snapshots: Map<number, Mapping[]>): Promise<void> {
    const end = performance.now() + req.durationMs;
    const counts = obj.map("profile_counts");
    for (;;) {
      const left = end - performance.now();
      if (left <= 0) return;
      await sleep(Math.min(left, SNAPSHOT_EVERY_MS), req.signal);
      if (end - performance.now() <= 0 || snapshots.size >= MAX_SNAPSHOTS) continue;
      const batch = counts.lookupBatch();
      const fresh = newProcesses(batch.keys, batch.count, snapshots);
      for (const tgid of fresh.slice(0, MAX_SNAPSHOTS - snapshots.size)) {
        snapshots.set(tgid, this.symbolizer.executableMaps(tgid) ?? []);
      }
    }
  }

  async #symbolize(
    entries: CountEntry[],
    stacks: Map<number, bigint[]>,
    snapshots: ReadonlyMap<number, Mapping[]>,
  ): Promise<CpuStackSample[]> {
    const kernel = new Map<number, string[]>();
    const userIds = new Map<number, Set<number>>();
    for (const e of entries) {
      if (e.kernelStackId >= 0 && !kernel.has(e.kernelStackId)) {
        kernel.set(e.kernelStackId, this.symbolizer.kernelStack(stacks.get(e.kernelStackId) ?? []));
      }
      if (e.userStackId >= 0) {
        let ids = userIds.get(e.tgid);
        if (!ids) userIds.set(e.tgid, ids = new Set());
        ids.add(e.userStackId);
      }
    }
    const user = new Map<string, string[]>();
    const seen = new Map<string, ElfSymbols>();
    for (const [tgid, ids] of userIds) {
      const list = [...ids];
      const snapshot = snapshots.get(tgid);
      const named = await this.symbolizer.userStacks(
        tgid,
        list.map((id) => stacks.get(id) ?? []),
        seen,
        snapshot,
      );
      list.forEach((id, i) => user.set(`${tgid}:${id}`, named[i]));
    }
    return assembleSamples(entries, (id) => kernel.get(id), (tgid, id) => user.get(`${tgid}:${id}`));
  }
}

interface ProfileMaps {
  entries: CountEntry[];
  /** Stack id → return addresses, innermost first. */
  stacks: Map<number, bigint[]>;
  lostCounts: number;
  lostStacks: number;
}

function readProfileMaps(obj: BpfObject): ProfileMaps {
  const counts = obj.map("profile_counts");
  const batch = counts.lookupBatch();
  const entries = decodeCounts(batch.keys, batch.values, batch.count);
  const stackMap = obj.map("profile_stacks");
  const key = new Uint8Array(4);
  const keyView = new DataView(key.buffer);
  const value = new Uint8Array(stackMap.valueSize);
  const stacks = new Map<number, bigint[]>();
  for (const e of entries) {
    for (const id of [e.kernelStackId, e.userStackId]) {
      if (id < 0 || stacks.has(id)) continue;
      keyView.setUint32(0, id, true);
      value.fill(0);
      stacks.set(id, stackMap.lookup(key, value) ? decodeStack(value) : []);
    }
  }
  const lost = obj.map("profile_lost");
  const slot = new Uint8Array(4);
  const perCpu = new Uint8Array(lost.valueStride);
  const lostBy: number[] = [];
  for (let i = 0; i < LOST_SLOTS; i++) {
    new DataView(slot.buffer).setUint32(0, i, true);
    lostBy.push(lost.lookup(slot, perCpu) ? Number(sumPerCpu(perCpu)) : 0);
  }
  return { entries, stacks, lostCounts: lostBy[0], lostStacks: lostBy[1] };
}

/** Processes of profile_counts keys with a user stack that `known` does not hold yet. */
export function newProcesses(keys: Uint8Array, count: number, known: ReadonlyMap<number, unknown>): number[] {
  const v = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  const fresh = new Set<number>();
  for (let i = 0; i < count; i++) {
    const o = i * PROFILE_KEY.size;
    const tgid = v.getUint32(o + PROFILE_KEY.fields.tgid, true);
    const user = v.getInt32(o + PROFILE_KEY.fields.user_stack_id, true);
    if (tgid !== 0 && user >= 0 && !known.has(tgid)) fresh.add(tgid);
  }
  return [...fresh];
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
