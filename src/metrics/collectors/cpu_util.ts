// Host CPU utilisation (percent of all CPUs) between this scrape and the last;
// the first scrape reports the since-boot average.

import { type CpuTimes, type CpuUtil, cpuUtil, parseCpuTotal, ZERO_CPU_TIMES } from "../../host/stat.ts";
import { defineCollector } from "../collector.ts";
import { gauge } from "../sample.ts";

export default defineCollector("cpu_util", ({ fs }) => {
  let prev: CpuTimes = ZERO_CPU_TIMES;
  let last: CpuUtil = { usr: 0, sys: 0, total: 0 };
  return {
    async collect() {
      const path = fs.proc("stat");
      const cur = parseCpuTotal(await fs.readText(path), path);
      // No tick elapsed (two scrapes in the same jiffy, or a static fixture): keep the last value.
      last = cpuUtil(prev, cur) ?? last;
      prev = cur;
      return [
        gauge("cpu_util_sys", "cpu sys for the host", last.sys),
        gauge("cpu_util_usr", "cpu usr for the host", last.usr),
        gauge("cpu_util_total", "cpu total for the host", last.total),
      ];
    },
  };
});
