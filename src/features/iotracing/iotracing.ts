// iotracing (seed 5.3): /proc/diskstats every 5 s (the seed's fixed period;
// [AutoTracing.IOTracing] has no Interval), md devices and partitions left
// out. When one of a disk's read MB/s (RbpsThreshold), write MB/s
// (WbpsThreshold), util % (UtilThreshold) or read/write await ms
// (AwaitThreshold) is above its threshold (the seed's "超过阈值") at two polls in a row (an
// NVMe disk's MB/s count only when its util is too, as huatuo-bamai.conf
// says), a capture of RunTracingToolTimeout seconds records:
//   - process_io_data: the MaxProcDump processes that moved the most bytes to
//     and from disks during the capture (/proc/<pid>/io before and after:
//     disk_* = read_bytes/write_bytes, fs_* = rchar/wchar), each with up to
//     MaxFilesPerProcDump of its open regular files (those on the disk that
//     fired first) and how many it has open;
//   - timeout_io_stack: tasks that waited for block I/O (D state, a kernel
//     stack under an I/O wait) at least AwaitThreshold ms without running,
//     with that stack.
// Filter drops processes of the containers it rejects (host processes stay).
// The seed's 30-minute cooldown of every AutoTracing event applies (no
// IntervalTracing key); one key for the host: the capture is host-wide.
//
// latency_us: CONFIG_SCHEDSTATS and delay accounting are off on common
// kernels (this project's CI kernel has neither), so no per-task block-time
// counter exists to read. Instead every thread is polled every 200 ms during
// the capture; a D-state task whose se.exec_start (/proc/<pid>/sched: when it
// last left the CPU) stays the same across polls has not run in between, and
// its wait is at least the time between the first and last poll that saw it
// (a lower bound, short by less than one poll). Comparing exec_start with a
// clock read here instead would be off by the CPUs' differing irq/steal time
// (rq clock_task), ~100 ms on this project's VMs.

import type { Config } from "../../config/schema.ts";
import { exists, type HostFs } from "../../host/fs.ts";
import { type DiskStat, type IoStatus, ioStatus, parseDiskstats, splitDev } from "../../host/diskstats.ts";
import { waitsForIo } from "../../host/proc_pid.ts";
import { type Container, containerEventFields, type ContainerRegistry } from "../../pod/container.ts";
import { taskCgroupId } from "../../events/task_cgroup.ts";
import { ContainerFilterRules } from "../../autotracing/filter.ts";
import {
  type BlockedTask,
  blockedTasks,
  ioSnapshot,
  openRegularFiles,
  readPidStatus,
  readStack,
  sleep,
} from "../../autotracing/procs.ts";
import { AutoTracer } from "../../autotracing/tracer.ts";
import {
  type CaptureOptions,
  type CaptureResult,
  type Firing,
  round2,
  type Trigger,
} from "../../autotracing/trigger.ts";
import type { PidIo } from "../../host/proc_pid.ts";
import { autotracingFeature } from "../feature.ts";

export type IoTracingConfig = Config["AutoTracing"]["IOTracing"];

/** The seed's fixed poll period of /proc/diskstats. */
export const IOTRACING_INTERVAL_SEC = 5;
/** The seed's cooldown of every AutoTracing event ("默认 30 分钟"); iotracing has no key for it. */
export const IOTRACING_COOLDOWN_SEC = 1800;
/** Polls in a row a threshold must be reached at. */
export const STREAK = 2;
/** How often threads are examined for I/O waits during a capture. */
export const BLOCKED_POLL_MS = 200;

/** reason_snapshot.type, in the seed's order (also the order of preference when several fire together). */
export const IO_REASONS = ["ioutil", "read_bps", "write_bps", "read_await", "write_await"] as const;
export type IoReason = typeof IO_REASONS[number];

/** The thresholds a device's status is above now. */
export function ioReasons(
  s: IoStatus,
  cfg: Pick<IoTracingConfig, "RbpsThreshold" | "WbpsThreshold" | "UtilThreshold" | "AwaitThreshold">,
  nvme: boolean,
): IoReason[] {
  const util = s.io_util > cfg.UtilThreshold;
  const out: IoReason[] = [];
  if (util) out.push("ioutil");
  if (s.read_bps > cfg.RbpsThreshold && (util || !nvme)) out.push("read_bps");
  if (s.write_bps > cfg.WbpsThreshold && (util || !nvme)) out.push("write_bps");
  if (s.read_await > cfg.AwaitThreshold) out.push("read_await");
  if (s.write_await > cfg.AwaitThreshold) out.push("write_await");
  return out;
}

/** Counts, per device and reason, the polls in a row at which the reason held. */
export class Streaks {
  readonly #runs = new Map<string, Map<IoReason, number>>();

  /** Records this poll's reasons of `device`; returns the first one that has held STREAK polls in a row. */
  update(device: string, reasons: readonly IoReason[]): IoReason | undefined {
    const prev = this.#runs.get(device) ?? new Map<IoReason, number>();
    const next = new Map<IoReason, number>();
    for (const r of reasons) next.set(r, (prev.get(r) ?? 0) + 1);
    this.#runs.set(device, next);
    return IO_REASONS.find((r) => (next.get(r) ?? 0) >= STREAK);
  }

  /** Forgets devices not seen at the last poll. */
  keep(devices: ReadonlySet<string>): void {
    for (const d of this.#runs.keys()) if (!devices.has(d)) this.#runs.delete(d);
  }
}

/** The iostatus of a document: the seed's fields, two decimals. */
export function iostatusData(s: IoStatus): Record<string, number> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round2(v)]));
}

export interface IoDelta {
  pid: number;
  fs_read: number;
  fs_write: number;
  disk_read: number;
  disk_write: number;
}

/**
 * Bytes each process moved between two /proc/<pid>/io snapshots, the most
 * disk bytes first (then file-system bytes); processes that moved nothing
 * are left out. A process that started in between counts from zero.
 */
export function ioDeltas(before: ReadonlyMap<number, PidIo>, after: ReadonlyMap<number, PidIo>): IoDelta[] {
  const zero: PidIo = { rchar: 0, wchar: 0, readBytes: 0, writeBytes: 0 };
  const out: IoDelta[] = [];
  for (const [pid, a] of after) {
    const b = before.get(pid) ?? zero;
    const d = (k: keyof PidIo) => Math.max(0, a[k] - b[k]);
    const row = {
      pid,
      fs_read: d("rchar"),
      fs_write: d("wchar"),
      disk_read: d("readBytes"),
      disk_write: d("writeBytes"),
    };
    if (row.fs_read + row.fs_write + row.disk_read + row.disk_write > 0) out.push(row);
  }
  const disk = (r: IoDelta) => r.disk_read + r.disk_write;
  const fsb = (r: IoDelta) => r.fs_read + r.fs_write;
  return out.sort((x, y) => disk(y) - disk(x) || fsb(y) - fsb(x) || x.pid - y.pid);
}

/** One task's longest uninterrupted wait seen across polls. */
export interface Wait {
  tgid: number;
  tid: number;
  comm: string;
  /** ms between the first and the last poll that saw it waiting without having run. */
  ms: number;
  /** Its kernel stack when first seen in this wait, innermost first. */
  frames: string[];
}

/**
 * Follows D-state tasks across polls: a task seen in D with the same
 * se.exec_start as at the previous poll has not run in between, so its wait
 * goes on. Keeps each task's longest wait.
 */
export class WaitTracker {
  readonly #open = new Map<number, Wait & { execStartMs: number; since: number }>();
  readonly #longest = new Map<number, Wait>();

  /** Records one poll at `nowMs`; `stack` reads a task's kernel stack when a new wait is first seen. */
  observe(
    tasks: readonly BlockedTask[],
    nowMs: number,
    stack: (t: BlockedTask) => string[] | undefined,
  ): void {
    const seen = new Set<number>();
    for (const t of tasks) {
      seen.add(t.tid);
      let w = this.#open.get(t.tid);
      if (!w || w.execStartMs !== t.execStartMs) {
        const frames = stack(t);
        if (frames === undefined) continue; // left D (or exited) before its stack was read
        w = {
          tgid: t.tgid,
          tid: t.tid,
          comm: t.comm,
          ms: 0,
          frames,
          execStartMs: t.execStartMs,
          since: nowMs,
        };
        this.#open.set(t.tid, w);
      }
      w.ms = nowMs - w.since;
      const best = this.#longest.get(t.tid);
      if (!best || w.ms >= best.ms) {
        this.#longest.set(t.tid, { tgid: w.tgid, tid: w.tid, comm: w.comm, ms: w.ms, frames: w.frames });
      }
    }
    for (const tid of this.#open.keys()) if (!seen.has(tid)) this.#open.delete(tid);
  }

  /** Waits for block I/O of at least `minMs`, longest first. */
  ioWaits(minMs: number): Wait[] {
    return [...this.#longest.values()].filter((w) => w.ms >= minMs && waitsForIo(w.frames))
      .sort((a, b) => b.ms - a.ms || a.tid - b.tid);
  }
}

interface DeviceReading {
  readonly stat: DiskStat;
  readonly status?: IoStatus;
}

export class IoTracingTrigger implements Trigger {
  readonly name = "iotracing";
  readonly perContainer = false;
  readonly intervalMs = IOTRACING_INTERVAL_SEC * 1000;
  readonly cooldownMs = IOTRACING_COOLDOWN_SEC * 1000;
  readonly captureMs: number;
  readonly #filter: ContainerFilterRules;
  readonly #streaks = new Streaks();
  #last = new Map<string, DeviceReading>();
  #at = 0;
  /** st_dev → the disk it is on ("" when not a disk), for ordering a process's files. */
  readonly #disks = new Map<number, string>();

  constructor(
    private readonly fs: HostFs,
    private readonly cfg: IoTracingConfig,
    private readonly containers: ContainerRegistry | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.captureMs = cfg.RunTracingToolTimeout * 1000;
    this.#filter = new ContainerFilterRules(cfg.Filter);
  }

  /** Whole disks of the diskstats lines: no md arrays, no partitions (their disk counts them too). */
  #disksOnly(stats: DiskStat[]): DiskStat[] {
    const block = this.fs.sys("block");
    const sysfs = exists(block);
    return stats.filter((d) =>
      !/^md\d/.test(d.name) && (!sysfs || exists(`${block}/${d.name.replaceAll("/", "!")}`))
    );
  }

  #read(): DiskStat[] {
    const path = this.fs.proc("diskstats");
    return this.#disksOnly(parseDiskstats(this.fs.readTextSync(path), path));
  }

  prepare(): void {
    this.#last = new Map(this.#read().map((d) => [d.name, { stat: d }]));
    this.#at = this.now();
  }

  poll(): Firing[] {
    const stats = this.#read();
    const at = this.now();
    const seconds = (at - this.#at) / 1000;
    this.#at = at;
    const next = new Map<string, DeviceReading>();
    let fired: Firing | undefined;
    for (const d of stats) {
      const prev = this.#last.get(d.name);
      const status = prev && ioStatus(prev.stat, d, seconds);
      next.set(d.name, { stat: d, status });
      if (!status) continue;
      const reason = this.#streaks.update(d.name, ioReasons(status, this.cfg, d.name.startsWith("nvme")));
      fired ??= reason && {
        key: "host",
        data: { reason_snapshot: { type: reason, device: d.name, iostatus: iostatusData(status) } },
      };
    }
    this.#streaks.keep(new Set(next.keys()));
    this.#last = next;
    return fired ? [fired] : [];
  }

  async capture(f: Firing, opts: CaptureOptions): Promise<CaptureResult> {
    const device = (f.data.reason_snapshot as { device?: string } | undefined)?.device ?? "";
    const before = await ioSnapshot(this.fs);
    const waits = new WaitTracker();
    const end = performance.now() + opts.durationMs;
    for (;;) {
      waits.observe(await blockedTasks(this.fs), performance.now(), (t) => readStack(this.fs, t.tgid, t.tid));
      const left = end - performance.now();
      if (left <= 0 || opts.signal.aborted) break;
      await sleep(Math.min(BLOCKED_POLL_MS, left), opts.signal);
    }
    const after = await ioSnapshot(this.fs);
    const processes = [];
    for (const d of ioDeltas(before, after)) {
      if (processes.length >= this.cfg.MaxProcDump) break;
      const c = this.#containerOf(d.pid);
      if (c && !this.#filter.admits(c)) continue;
      const files = this.#files(d.pid, device);
      processes.push({
        pid: d.pid,
        comm: readPidStatus(this.fs, d.pid)?.name ?? "",
        container_hostname: c ? containerEventFields(c).container_hostname : "",
        fs_read: d.fs_read,
        fs_write: d.fs_write,
        disk_read: d.disk_read,
        disk_write: d.disk_write,
        file_stat: files.slice(0, this.cfg.MaxFilesPerProcDump),
        file_count: files.length,
      });
    }
    const stacks = [];
    for (const w of waits.ioWaits(this.cfg.AwaitThreshold)) {
      if (stacks.length >= this.cfg.MaxProcDump) break;
      const c = this.#containerOf(w.tgid);
      if (c && !this.#filter.admits(c)) continue;
      stacks.push({
        pid: w.tgid,
        ...(w.tid !== w.tgid ? { tid: w.tid } : {}),
        comm: w.comm,
        container_hostname: c ? containerEventFields(c).container_hostname : "",
        latency_us: Math.round(w.ms * 1000),
        stack: { back_trace: w.frames },
      });
    }
    return {
      data: { process_io_data: processes, timeout_io_stack: stacks },
      samples: processes.length + stacks.length,
    };
  }

  #containerOf(pid: number): Container | undefined {
    if (!this.containers) return undefined;
    const id = taskCgroupId(pid, this.fs.proc("").replace(/\/$/, ""));
    return id === undefined ? undefined : this.containers.byCgroupId(id);
  }

  /** A process's open regular files, those on `device` first. */
  #files(pid: number, device: string): string[] {
    const files = openRegularFiles(this.fs, pid);
    const on = (dev: number) => this.#diskOf(dev) === device ? 0 : 1;
    return files.sort((a, b) => on(a.dev) - on(b.dev)).map((f) => f.path);
  }

  /** The disk a st_dev lives on: itself, or the disk of a partition (/sys/dev/block/M:m). */
  #diskOf(dev: number): string {
    let name = this.#disks.get(dev);
    if (name === undefined) {
      const { major, minor } = splitDev(dev);
      try {
        const real = Deno.realPathSync(this.fs.sys(`dev/block/${major}:${minor}`));
        const parts = real.split("/");
        name = exists(`${real}/partition`) ? parts[parts.length - 2] : parts[parts.length - 1];
      } catch {
        name = ""; // not a block device (tmpfs, overlay without a disk)
      }
      this.#disks.set(dev, name);
    }
    return name;
  }

  manualData(): Record<string, unknown> {
    // No threshold fired: the busiest disk of the last poll stands in as the reason.
    let busiest: { name: string; status: IoStatus } | undefined;
    for (const [name, r] of this.#last) {
      if (r.status && (!busiest || r.status.io_util > busiest.status.io_util)) {
        busiest = { name, status: r.status };
      }
    }
    return {
      reason_snapshot: {
        type: "manual",
        device: busiest?.name ?? "",
        iostatus: busiest ? iostatusData(busiest.status) : {},
      },
    };
  }
}

export default autotracingFeature(
  "iotracing",
  (ctx) =>
    new AutoTracer(new IoTracingTrigger(ctx.fs, ctx.config.AutoTracing.IOTracing, ctx.containers), {
      events: ctx.events,
      containers: ctx.containers,
    }),
);
