// The /proc/stat window shared by every collector that reports a rate from
// its "cpu" line (cpu_util, diskio_disk_iowait_percent): one reading every
// CPU_WINDOW_MS however many use it, and all of them report the same window.

import type { HostFs } from "./fs.ts";
import { type CpuTimes, parseCpuTotal, totalTicks } from "./stat.ts";
import { type SampleWindow, WindowSampler } from "./window.ts";

/**
 * 5 s: well under the usual scrape intervals (15-60 s), so a scrape reports
 * recent load; long enough that tick counting is fine-grained (USER_HZ 100 →
 * 500 ticks per CPU, 0.2 points on one CPU) and that readings cost nothing
 * (one procfs read of a few KB every 5 s). Scrapers within one window —
 * replicas of one Prometheus — get identical values.
 */
export const CPU_WINDOW_MS = 5000;

export interface CpuWindow {
  /** The last complete window of the aggregate "cpu" line; throws when /proc/stat could not be read or parsed. */
  window(): SampleWindow<CpuTimes>;
  /** Stops sampling once the last user has released it. */
  release(): void;
}

const shared = new Map<string, { sampler: WindowSampler<CpuTimes>; users: number }>();

/** Starts (or joins) sampling `fs`'s /proc/stat; the first reading is taken now. */
export function acquireCpuWindow(fs: HostFs, windowMs = CPU_WINDOW_MS): CpuWindow {
  const path = fs.proc("stat");
  const key = `${path}\0${windowMs}`;
  let entry = shared.get(key);
  if (!entry) {
    const sampler = new WindowSampler<CpuTimes>({
      // Sync: procfs is generated in memory in microseconds, and no read is left in flight at close().
      read: () => parseCpuTotal(fs.readTextSync(path), path),
      windowMs,
      // A reading with no new tick (a static fixture) keeps the window: since boot stays since boot.
      elapsed: (cur, next) => totalTicks(next) !== totalTicks(cur),
    });
    entry = { sampler, users: 0 };
    shared.set(key, entry);
  }
  entry.users++;
  const e = entry;
  let released = false;
  return {
    window: () => e.sampler.window(),
    release() {
      if (released) return;
      released = true;
      if (--e.users === 0) {
        e.sampler.close();
        shared.delete(key);
      }
    },
  };
}
