// memory_vmstat_container_<key>: every line of a container's memory.stat (v1
// memory controller, else cgroup2), values as the kernel gives them (sizes in
// bytes, events as counts), filtered by MetricCollector.Vmstat
// IncludedOnContainer / ExcludedOnContainer. A container without a memory
// cgroup (cgroup2 with the controller not enabled) has no series.

import { parseKeyValue } from "../../host/keyvalue.ts";
import { containerLabels, type ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import { controllerDir, perContainer, readCgroupFile } from "../common/cgroup.ts";

export function memoryVmstatContainer(ctx: FeatureContext, containers: ContainerRegistry): Collector {
  const cfg = ctx.config.MetricCollector.Vmstat;
  const filter = new NameFilter(cfg.IncludedOnContainer, cfg.ExcludedOnContainer);
  return {
    name: "memory_vmstat",
    collect() {
      return perContainer(containers.list(), (c): Sample[] => {
        const d = controllerDir(c, "memory");
        if (!d) return [];
        const text = readCgroupFile(d.dir, "memory.stat");
        if (text === undefined) return [];
        const labels = containerLabels(c);
        const out: Sample[] = [];
        for (const [key, value] of parseKeyValue(text, `${d.dir}/memory.stat`)) {
          if (filter.accepts(key)) {
            out.push(gauge(`memory_vmstat_container_${key}`, `cgroup memory.stat ${key}`, value, labels));
          }
        }
        return out;
      });
    },
  };
}
