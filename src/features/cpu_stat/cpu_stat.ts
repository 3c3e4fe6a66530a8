// cpu_stat_container_{nr_throttled,throttled_time,nr_bursts,burst_time}: CFS
// bandwidth counters of a container's cpu cgroup, cumulative, times in ns
// (the seed's unit). v1 cpu.stat has throttled_time / burst_time in ns;
// cgroup2 cpu.stat has throttled_usec / burst_usec (and only when the cpu
// controller is enabled for the cgroup). Counters the kernel lacks (bursts
// before 5.14) are left out rather than reported as 0.

import { parseKeyValue } from "../../host/keyvalue.ts";
import { containerLabels, type ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import { controllerDir, perContainer, requireCgroupFile } from "../common/cgroup.ts";
import { containerFeature } from "../feature.ts";

export interface CpuBandwidthStat {
  nr_throttled?: number;
  throttled_time?: number;
  nr_bursts?: number;
  burst_time?: number;
}

export function parseCpuBandwidthStat(text: string, path: string, v2: boolean): CpuBandwidthStat {
  const kv = parseKeyValue(text, path);
  const us = (k: string) => {
    const v = kv.get(k);
    return v === undefined ? undefined : v * 1000;
  };
  return {
    nr_throttled: kv.get("nr_throttled"),
    throttled_time: v2 ? us("throttled_usec") : kv.get("throttled_time"),
    nr_bursts: kv.get("nr_bursts"),
    burst_time: v2 ? us("burst_usec") : kv.get("burst_time"),
  };
}

const HELP: Record<keyof CpuBandwidthStat, string> = {
  nr_throttled: "throttle nr for the containers",
  throttled_time: "throttle time for the containers",
  nr_bursts: "burst nr for the containers",
  burst_time: "burst time for the containers",
};

export function cpuStatContainer(_ctx: FeatureContext, containers: ContainerRegistry): Collector {
  return {
    name: "cpu_stat",
    collect() {
      return perContainer(containers.list(), (c): Sample[] => {
        const d = controllerDir(c, "cpu");
        if (!d) return [];
        const path = `${d.dir}/cpu.stat`;
        const stat = parseCpuBandwidthStat(requireCgroupFile(d.dir, "cpu.stat"), path, d.v2);
        const labels = containerLabels(c);
        const out: Sample[] = [];
        for (const key of Object.keys(HELP) as (keyof CpuBandwidthStat)[]) {
          const v = stat[key];
          if (v !== undefined) out.push(gauge(`cpu_stat_container_${key}`, HELP[key], v, labels));
        }
        return out;
      });
    },
  };
}

export default containerFeature("cpu_stat", cpuStatContainer);
