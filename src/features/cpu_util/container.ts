// cpu_util_container_{sys,usr,total,cores}: a container's CPU use over a
// window of at least CPU_WINDOW_MS (5 s, the host's window) as a percent of
// the CPUs it may use (its cores), like the host's cpu_util is a percent of all
// host CPUs. cores = CFS quota / period, capped by its cpuset; the cpuset's
// (else the host's) CPU count when unlimited. The first scrape of a container
// reports the average since its first process started (the host's first
// window is the since-boot average).
//
// Minimum-window scheme, not the host's background timer: a scrape starts a
// new window only when the current one is at least 5 s old, otherwise it
// reports the current one again. So scrapers less than 5 s apart (replicas of
// one Prometheus) get identical values, no window is shorter than 5 s, and the
// cost stays what it was: one cpu.stat read per container per scrape, no
// timer reading hundreds of cgroups between scrapes.
// Sources: v1 cpuacct.stat (USER_HZ ticks) or cgroup2 cpu.stat user_usec /
// system_usec; v1 cpu.cfs_quota_us + cpu.cfs_period_us or cgroup2 cpu.max;
// cpuset.effective_cpus (v1) or cpuset.cpus.effective (v2).

import { parseKeyValue } from "../../host/keyvalue.ts";
import { type HostFs, MAX_PROC_FILE_BYTES, SourceError } from "../../host/fs.ts";
import { CPU_WINDOW_MS } from "../../host/stat_window.ts";
import { readTextFileBoundedSync } from "../../io/read.ts";
import { type Container, containerLabels, type ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import {
  cfsCores,
  controllerDir,
  countCpuList,
  hostCpusSync,
  parseCpuMax,
  parseSingleInt,
  parseStartTicks,
  perContainer,
  readCgroupFile,
  requireCgroupFile,
  USER_HZ,
} from "../common/cgroup.ts";

/** Cumulative CPU time of a cgroup, nanoseconds. */
export interface CpuUsage {
  user: number;
  system: number;
}

export interface ContainerCpuUtil {
  usr: number;
  sys: number;
  total: number;
}

/** Percent of `cores` CPUs used between two readings `elapsedNs` apart; undefined when no time passed. */
export function containerCpuUtil(
  prev: CpuUsage,
  cur: CpuUsage,
  elapsedNs: number,
  cores: number,
): ContainerCpuUtil | undefined {
  if (elapsedNs <= 0 || cores <= 0) return undefined;
  const pct = (ns: number) => Math.max(0, ns) / (elapsedNs * cores) * 100;
  const usr = pct(cur.user - prev.user);
  const sys = pct(cur.system - prev.system);
  return { usr, sys, total: usr + sys };
}

/** v1 cpuacct.stat ("user <ticks>\nsystem <ticks>") → ns. */
export function parseCpuacctStat(text: string, path: string): CpuUsage {
  const kv = parseKeyValue(text, path);
  const user = kv.get("user"), system = kv.get("system");
  if (user === undefined || system === undefined) throw new SourceError(path, "no user/system lines");
  return { user: user * (1e9 / USER_HZ), system: system * (1e9 / USER_HZ) };
}

/** cgroup2 cpu.stat user_usec / system_usec → ns. */
export function parseCpuStatUsage(text: string, path: string): CpuUsage {
  const kv = parseKeyValue(text, path);
  const user = kv.get("user_usec"), system = kv.get("system_usec");
  if (user === undefined || system === undefined) throw new SourceError(path, "no user_usec/system_usec");
  return { user: user * 1000, system: system * 1000 };
}

export function readCpuUsage(c: Container): CpuUsage | undefined {
  const d = controllerDir(c, "cpuacct");
  if (!d) return undefined;
  const name = d.v2 ? "cpu.stat" : "cpuacct.stat";
  const text = requireCgroupFile(d.dir, name);
  return d.v2 ? parseCpuStatUsage(text, `${d.dir}/${name}`) : parseCpuacctStat(text, `${d.dir}/${name}`);
}

/** CPUs the container may use; `host` is asked only when neither quota nor cpuset bounds it. */
export function readCores(c: Container, host: () => number): number {
  let quota: number | undefined;
  const cpu = controllerDir(c, "cpu");
  if (cpu?.v2) {
    const text = readCgroupFile(cpu.dir, "cpu.max");
    if (text !== undefined) quota = parseCpuMax(text, `${cpu.dir}/cpu.max`);
  } else if (cpu) {
    // Absent without CONFIG_CFS_BANDWIDTH: unlimited.
    const q = readCgroupFile(cpu.dir, "cpu.cfs_quota_us");
    const p = readCgroupFile(cpu.dir, "cpu.cfs_period_us");
    if (q !== undefined && p !== undefined) {
      const path = `${cpu.dir}/cpu.cfs_quota_us`;
      quota = cfsCores(parseSingleInt(q, path), parseSingleInt(p, `${cpu.dir}/cpu.cfs_period_us`), path);
    }
  }
  let cpuset: number | undefined;
  const cs = controllerDir(c, "cpuset");
  if (cs) {
    const names = cs.v2 ? ["cpuset.cpus.effective"] : ["cpuset.effective_cpus", "cpuset.cpus"];
    for (const name of names) {
      const text = readCgroupFile(cs.dir, name);
      if (text === undefined) continue;
      const n = countCpuList(text, `${cs.dir}/${name}`);
      if (n > 0) cpuset = n;
      break;
    }
  }
  if (quota !== undefined) return cpuset !== undefined ? Math.min(quota, cpuset) : quota;
  return cpuset ?? host();
}

/** Seconds since `pid` started (CLOCK_BOOTTIME), or undefined when it is gone. */
function secondsSinceStart(fs: HostFs, pid: number): number | undefined {
  if (pid <= 0) return undefined;
  let stat: string;
  const path = fs.proc(`${pid}/stat`);
  try {
    stat = readTextFileBoundedSync(path, MAX_PROC_FILE_BYTES);
  } catch {
    return undefined; // exited: no since-start baseline
  }
  const uptimePath = fs.proc("uptime");
  const uptime = Number(fs.readTextSync(uptimePath).split(" ")[0]);
  if (!Number.isFinite(uptime)) throw new SourceError(uptimePath, "garbled");
  return uptime - parseStartTicks(stat, path) / USER_HZ;
}

interface State {
  /** The reading that ends the current window. */
  usage: CpuUsage;
  at: number;
  /** Use over the current window; undefined when its start is unknown (no process to date it). */
  util?: ContainerCpuUtil;
}

export function cpuUtilContainer(
  ctx: FeatureContext,
  containers: ContainerRegistry,
  now: () => number = () => performance.now(),
  windowMs = CPU_WINDOW_MS,
): Collector {
  const states = new Map<string, State>();
  const coresCache = new WeakMap<Container, number>();
  return {
    name: "cpu_util",
    async collect() {
      const list = containers.list();
      let host: number | undefined;
      const hostOnce = () => host ??= hostCpusSync(ctx.fs);
      const seen = new Set<string>();
      const out = await perContainer(list, (c): Sample[] => {
        seen.add(c.id);
        // Read at every scrape even within a window: a deleted container is skipped (NotFound), not reported stale.
        const usage = readCpuUsage(c);
        if (!usage) return [];
        // Quota and cpuset change rarely (an in-place resize): read once per registry
        // refresh, which hands out new Container objects.
        let cores = coresCache.get(c);
        if (cores === undefined) coresCache.set(c, cores = readCores(c, hostOnce));
        const at = now();
        let state = states.get(c.id);
        if (!state) {
          const since = secondsSinceStart(ctx.fs, c.initPid);
          const util = since === undefined
            ? undefined
            : containerCpuUtil({ user: 0, system: 0 }, usage, since * 1e9, cores);
          states.set(c.id, state = { usage, at, util });
        } else if (at - state.at >= windowMs) {
          // The current window is old enough: this reading ends a new one. Otherwise every scraper gets the same value.
          const util = containerCpuUtil(state.usage, usage, (at - state.at) * 1e6, cores) ?? state.util;
          states.set(c.id, state = { usage, at, util });
        }
        const util = state.util;
        const labels = containerLabels(c);
        const samples = [
          gauge("cpu_util_container_cores", "cpu core number for the containers", cores, labels),
        ];
        if (util) {
          samples.push(
            gauge("cpu_util_container_sys", "cpu sys for the containers", util.sys, labels),
            gauge("cpu_util_container_usr", "cpu usr for the containers", util.usr, labels),
            gauge("cpu_util_container_total", "cpu total for the containers", util.total, labels),
          );
        }
        return samples;
      });
      // Deleted containers leave no state behind.
      for (const id of states.keys()) if (!seen.has(id)) states.delete(id);
      return out;
    },
  };
}
