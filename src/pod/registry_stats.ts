// Self-observability of container discovery: how many containers the agent
// knows and what the last cgroup-tree scan cost (it runs off the scrape path,
// so its cost is invisible in scrape durations).

import type { Collector } from "../core/collector.ts";
import { gauge } from "../core/sample.ts";
import type { Container } from "./container.ts";

export interface RegistryStatsSource {
  list(): readonly Container[];
  readonly lastRefresh: { ms: number; dirs: number; containers: number };
}

export function containerRegistryCollector(registry: RegistryStatsSource): Collector {
  return {
    name: "containers",
    collect() {
      const last = registry.lastRefresh;
      return Promise.resolve([
        gauge(
          "containers",
          "Containers found in the cgroup tree at the last refresh.",
          registry.list().length,
        ),
        gauge(
          "containers_refresh_duration_seconds",
          "Wall time of the last cgroup-tree scan for containers.",
          last.ms / 1000,
        ),
        gauge("containers_refresh_cgroup_dirs", "Cgroup directories read by the last scan.", last.dirs),
      ]);
    },
  };
}
