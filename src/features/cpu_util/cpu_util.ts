// Host CPU utilisation (percent of all CPUs) over a fixed background window
// (host/stat_window.ts: /proc/stat read every 5 s): every scrape reports the
// last complete window, so every scraper sees the same value however close
// together they scrape. Until the first window completes (the first 5 s
// after start) it reports the since-boot average.

import { cpuUtil, ZERO_CPU_TIMES } from "../../host/stat.ts";
import { acquireCpuWindow } from "../../host/stat_window.ts";
import { metricsFeature } from "../feature.ts";
import { cpuUtilContainer } from "./container.ts";
import { gauge } from "../../core/sample.ts";

export default metricsFeature("cpu_util", ({ fs }) => {
  const cpu = acquireCpuWindow(fs);
  return {
    collect() {
      let window;
      try {
        window = cpu.window();
      } catch (err) {
        // A rejection, not a throw: merged collectors (containers/index.ts) run both parts as promises.
        return Promise.reject(err);
      }
      const { start, end } = window;
      // A window whose counters went backwards (never expected) falls back to since boot.
      const u = (start && cpuUtil(start, end)) ?? cpuUtil(ZERO_CPU_TIMES, end) ??
        { usr: 0, sys: 0, total: 0 };
      return Promise.resolve([
        gauge("cpu_util_sys", "cpu sys for the host", u.sys),
        gauge("cpu_util_usr", "cpu usr for the host", u.usr),
        gauge("cpu_util_total", "cpu total for the host", u.total),
      ]);
    },
    close: () => cpu.release(),
  };
}, { container: cpuUtilContainer });
