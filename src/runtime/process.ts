// The standard process_* families every Prometheus exporter exposes (the names client libraries use), read
// from the agent's own /proc/self: CPU time, memory, start time and file descriptors against their limit.
// They stay unprefixed so stock dashboards and alerts (e.g. fd exhaustion) work unchanged.

import type { Collector } from "../core/collector.ts";
import { counter, gauge, type Sample } from "../core/sample.ts";
import { readProcText } from "../host/fs.ts";
import { fieldsAfterComm, statField } from "../host/pid_stat.ts";

/** Linux reports process times in USER_HZ = 100 ticks per second on every architecture we run on. */
const USER_HZ = 100;

export interface ProcStat {
  /** utime + stime, seconds. */
  cpuSeconds: number;
  /** Start time after boot, seconds. */
  startAfterBootSeconds: number;
  virtualBytes: number;
}

/** /proc/<pid>/stat: fields after the parenthesised comm, which may itself hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat {
  const f = fieldsAfterComm(text);
  if (!f) throw new Error("garbled /proc/self/stat: no comm");
  const num = (field: number) => {
    const v = Number(statField(f, field));
    if (!Number.isFinite(v)) {
      throw new Error(`garbled /proc/self/stat: field ${field} is ${statField(f, field)}`);
    }
    return v;
  };
  return {
    cpuSeconds: (num(14) + num(15)) / USER_HZ,
    startAfterBootSeconds: num(22) / USER_HZ,
    virtualBytes: num(23),
  };
}

/** VmRSS from /proc/<pid>/status, bytes. */
export function parseVmRss(text: string): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(text);
  if (!m) throw new Error("no VmRSS in /proc/self/status");
  return Number(m[1]) * 1024;
}

/** The soft "Max open files" from /proc/<pid>/limits ("unlimited" as +Inf). */
export function parseMaxFds(text: string): number {
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m) throw new Error("no Max open files in /proc/self/limits");
  return m[1] === "unlimited" ? Infinity : Number(m[1]);
}

/** btime from /proc/stat: boot time, seconds since the epoch. */
export function parseBootTime(text: string): number {
  const m = /^btime (\d+)$/m.exec(text);
  if (!m) throw new Error("no btime in /proc/stat");
  return Number(m[1]);
}

export function processCollector(proc = "/proc"): Collector {
  let bootTime: number | undefined;
  return {
    name: "process",
    unprefixed: true,
    async collect(): Promise<Sample[]> {
      const [stat, status, limits] = await Promise.all([
        readProcText(`${proc}/self/stat`),
        readProcText(`${proc}/self/status`),
        readProcText(`${proc}/self/limits`),
      ]);
      bootTime ??= parseBootTime(await readProcText(`${proc}/stat`));
      let fds = 0;
      for await (const _ of Deno.readDir(`${proc}/self/fd`)) fds++;
      const s = parseProcStat(stat);
      return [
        counter(
          "process_cpu_seconds_total",
          "Total user and system CPU time spent in seconds.",
          s.cpuSeconds,
        ),
        gauge("process_resident_memory_bytes", "Resident memory size in bytes.", parseVmRss(status)),
        gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", s.virtualBytes),
        gauge(
          "process_start_time_seconds",
          "Start time of the process since unix epoch in seconds.",
          bootTime + s.startAfterBootSeconds,
        ),
        gauge("process_open_fds", "Number of open file descriptors.", fds),
        gauge("process_max_fds", "Maximum number of open file descriptors.", parseMaxFds(limits)),
      ];
    },
  };
}

export interface BuildInfo {
  version: string;
  revision: string;
  buildTime: string;
}

/** huatuo_bamai_build_info{version,revision,deno,v8} 1: joins any series to the build that produced it. */
export function buildInfoCollector(b: BuildInfo): Collector {
  const labels = { version: b.version, revision: b.revision, deno: Deno.version.deno, v8: Deno.version.v8 };
  return {
    name: "build_info",
    collect: () =>
      Promise.resolve([
        gauge("build_info", "The agent's version, git revision, Deno and V8 versions.", 1, labels),
      ]),
  };
}
