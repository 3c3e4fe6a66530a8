// Host /proc/vmstat, filtered by MetricCollector.Vmstat.IncludedOnHost/ExcludedOnHost.

import { parseKeyValue } from "../../host/keyvalue.ts";
import { metricsFeature } from "../feature.ts";
import { memoryVmstatContainer } from "./container.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { gauge, type Sample } from "../../core/sample.ts";

export default metricsFeature("memory_vmstat", ({ fs, config }) => {
  const cfg = config.MetricCollector.Vmstat;
  const filter = new NameFilter(cfg.IncludedOnHost, cfg.ExcludedOnHost);
  return {
    async collect() {
      const path = fs.proc("vmstat");
      const out: Sample[] = [];
      for (const [key, value] of parseKeyValue(await fs.readText(path), path)) {
        if (filter.accepts(key)) out.push(gauge(`memory_vmstat_${key}`, `/proc/vmstat ${key}`, value));
      }
      return out;
    },
  };
}, { container: memoryVmstatContainer });
