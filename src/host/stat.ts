// /proc/stat: the aggregate "cpu" line, in USER_HZ ticks.

import { SourceError } from "./fs.ts";

export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  // guest and guest_nice are already included in user and nice.
}

/** Tick counters a "cpu" line must have: user nice system idle (Linux 2.4; the rest came later). */
const MIN_CPU_FIELDS = 4;

/**
 * The counters of one "cpu…" line; fields the kernel does not report (fewer
 * than 8: older kernels, minimal fixtures) are 0. Fields after steal (guest,
 * guest_nice) are already counted in user and nice, so they are not read.
 * Undefined when the line has fewer than 4 fields or a non-numeric one.
 */
export function parseCpuLine(line: string): CpuTimes | undefined {
  const f = line.trim().split(/\s+/).slice(1);
  if (f.length < MIN_CPU_FIELDS || f.some((x) => !/^\d+$/.test(x))) return undefined;
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = f.slice(0, 8).map(Number);
  return { user, nice, system, idle, iowait, irq, softirq, steal };
}

export function parseCpuTotal(text: string, path = "stat"): CpuTimes {
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) throw new SourceError(path, 'no aggregate "cpu" line');
  const times = parseCpuLine(line);
  if (!times) {
    throw new SourceError(
      path,
      `"cpu" line: expected at least ${MIN_CPU_FIELDS} numeric tick counters, found ${JSON.stringify(line)}`,
    );
  }
  return times;
}

/** All ticks of a reading: time passed on all CPUs together. */
export function totalTicks(t: CpuTimes): number {
  return t.user + t.nice + t.system + t.idle + t.iowait + t.irq + t.softirq + t.steal;
}

export interface CpuUtil {
  /** Percent of all CPUs' time, 0..100. */
  usr: number;
  sys: number;
  total: number;
}

/** Utilisation between two readings; `prev` of all zeros gives the since-boot average. */
export function cpuUtil(prev: CpuTimes, cur: CpuTimes): CpuUtil | undefined {
  const all = totalTicks(cur) - totalTicks(prev);
  if (all <= 0) return undefined;
  const usr = (cur.user + cur.nice - prev.user - prev.nice) / all * 100;
  const sys = (cur.system + cur.irq + cur.softirq - prev.system - prev.irq - prev.softirq) / all * 100;
  const idle = (cur.idle + cur.iowait - prev.idle - prev.iowait) / all * 100;
  return { usr, sys, total: 100 - idle };
}

/**
 * Percent of all CPUs' time spent idle with I/O outstanding between two
 * readings: Δiowait / Δ(all eight counters) × 100; `prev` of all zeros gives
 * the since-boot value. Undefined when no tick passed or counters went back.
 */
export function iowaitPercent(prev: CpuTimes, cur: CpuTimes): number | undefined {
  const all = totalTicks(cur) - totalTicks(prev);
  const iowait = cur.iowait - prev.iowait;
  if (all <= 0 || iowait < 0) return undefined;
  return iowait / all * 100;
}

export const ZERO_CPU_TIMES: CpuTimes = Object.freeze({
  user: 0,
  nice: 0,
  system: 0,
  idle: 0,
  iowait: 0,
  irq: 0,
  softirq: 0,
  steal: 0,
});
