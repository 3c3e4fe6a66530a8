// memory_events_container_<event>: cgroup2 memory.events counters (low, high,
// max, oom, oom_kill, oom_group_kill, ...; hierarchical, as the kernel
// reports them), filtered by MetricCollector.MemoryEvents Included / Excluded.
// A v1 memory cgroup has no memory.events; what it has is mapped onto the
// same names: memory.failcnt (charges that hit the limit) → max, and
// memory.oom_control's oom_kill → oom_kill. v1 counts nothing for low, high,
// oom or oom_group_kill, so those series are absent there.

import { parseKeyValue } from "../../host/keyvalue.ts";
import { SourceError } from "../../host/fs.ts";
import { type Container, containerLabels, type ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import {
  type CgroupDir,
  controllerDir,
  parseSingleInt,
  perContainer,
  readCgroupFile,
} from "../common/cgroup.ts";
import { containerFeature } from "../feature.ts";

/** v1 memory.failcnt + memory.oom_control → events, each only when its file exists. */
export function v1MemoryEvents(failcnt: string | undefined, oomControl: string | undefined, dir: string) {
  const out = new Map<string, number>();
  if (failcnt !== undefined) out.set("max", parseSingleInt(failcnt, `${dir}/memory.failcnt`));
  if (oomControl !== undefined) {
    const kv = parseKeyValue(oomControl, `${dir}/memory.oom_control`);
    const kills = kv.get("oom_kill"); // since 4.13
    if (kills !== undefined) out.set("oom_kill", kills);
    else if (!kv.has("under_oom")) throw new SourceError(`${dir}/memory.oom_control`, "garbled");
  }
  return out;
}

function readEvents(d: CgroupDir): Map<string, number> | undefined {
  if (d.v2) {
    const text = readCgroupFile(d.dir, "memory.events");
    return text === undefined ? undefined : parseKeyValue(text, `${d.dir}/memory.events`);
  }
  const failcnt = readCgroupFile(d.dir, "memory.failcnt");
  const oom = readCgroupFile(d.dir, "memory.oom_control");
  return v1MemoryEvents(failcnt, oom, d.dir);
}

export function memoryEventsContainer(ctx: FeatureContext, containers: ContainerRegistry): Collector {
  const cfg = ctx.config.MetricCollector.MemoryEvents;
  const filter = new NameFilter(cfg.Included, cfg.Excluded);
  // A cgroup's event names never change: one whose names the filter takes none of (the shipped
  // Included matches no v1 name) is not read again until the next registry refresh's object.
  const nothingWanted = new WeakSet<Container>();
  return {
    name: "memory_events",
    collect() {
      return perContainer(containers.list(), (c): Sample[] => {
        if (nothingWanted.has(c)) return [];
        const d = controllerDir(c, "memory");
        const events = d && readEvents(d);
        if (!events) return [];
        const labels = containerLabels(c);
        const out: Sample[] = [];
        for (const [key, value] of events) {
          if (filter.accepts(key)) {
            out.push(gauge(`memory_events_container_${key}`, `memory events ${key}`, value, labels));
          }
        }
        if (out.length === 0) nothingWanted.add(c);
        return out;
      });
    },
  };
}

export default containerFeature("memory_events", memoryEventsContainer);
