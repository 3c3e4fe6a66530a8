// Per-container collectors, by registry name. The seed names a collector by
// its series prefix, host and container alike (cpu_util_sys and
// cpu_util_container_sys are both "cpu_util"), so one BlackList name covers
// both: withContainerCollectors() merges a container collector into the host
// collector of the same name and adds the container-only ones (cpu_stat,
// memory_events).

import type { ContainerRegistry } from "../../pod/container.ts";
import type { Collector, CollectorContext, CollectorDefinition } from "../feature.ts";
import type { Sample } from "../../core/sample.ts";
import { arpContainer } from "../arp/container.ts";
import { cpuStatContainer } from "../cpu_stat/cpu_stat.ts";
import { cpuUtilContainer } from "../cpu_util/container.ts";
import { loadavgContainer } from "../loadavg/container.ts";
import { memoryEventsContainer } from "../memory_events/memory_events.ts";
import { memoryVmstatContainer } from "../memory_vmstat/container.ts";
import { netdevContainer } from "../netdev/container.ts";
import { netstatContainer } from "../netstat/container.ts";
import { sockstatContainer } from "../sockstat/container.ts";

export interface ContainerCollectorDefinition {
  readonly name: string;
  create(ctx: CollectorContext, containers: ContainerRegistry): Collector;
}

export const CONTAINER_COLLECTORS: readonly ContainerCollectorDefinition[] = [
  { name: "cpu_util", create: (ctx, containers) => cpuUtilContainer(ctx, containers) },
  { name: "cpu_stat", create: cpuStatContainer },
  { name: "loadavg", create: loadavgContainer },
  { name: "memory_vmstat", create: memoryVmstatContainer },
  { name: "memory_events", create: memoryEventsContainer },
  { name: "netdev", create: netdevContainer },
  { name: "netstat", create: netstatContainer },
  { name: "sockstat", create: sockstatContainer },
  { name: "arp", create: arpContainer },
];

/**
 * One collector running both parts concurrently. It fails (success=0) when
 * either part fails, naming the part, as one collector does; the error of the
 * container part is prefixed "containers: ".
 */
export function mergeCollectors(host: Collector, containers: Collector): Collector {
  return {
    name: host.name,
    tracer: host.tracer ?? containers.tracer,
    async collect(): Promise<Sample[]> {
      const [h, c] = await Promise.allSettled([host.collect(), containers.collect()]);
      if (h.status === "fulfilled" && c.status === "fulfilled") return [...h.value, ...c.value];
      const msg = (r: PromiseRejectedResult) =>
        r.reason instanceof Error ? r.reason.message : String(r.reason);
      const errors: string[] = [];
      if (h.status === "rejected") errors.push(msg(h));
      if (c.status === "rejected") errors.push(`containers: ${msg(c)}`);
      throw new Error(errors.join("; "));
    },
    close() {
      host.close?.();
      containers.close?.();
    },
  };
}

/**
 * The host definitions with the container collectors merged in by name, plus
 * the container-only ones; `defs` unchanged when there is no registry.
 */
export function withContainerCollectors(
  defs: readonly CollectorDefinition[],
  containers: ContainerRegistry | undefined,
  extra: readonly ContainerCollectorDefinition[] = CONTAINER_COLLECTORS,
): CollectorDefinition[] {
  if (!containers) return [...defs];
  const byName = new Map(extra.map((d) => [d.name, d]));
  const out: CollectorDefinition[] = defs.map((def) => {
    const cdef = byName.get(def.name);
    if (!cdef) return def;
    byName.delete(def.name);
    return {
      name: def.name,
      tracing: def.tracing,
      create: (ctx) => mergeCollectors(def.create(ctx), cdef.create(ctx, containers)),
    };
  });
  for (const cdef of byName.values()) {
    out.push({
      name: cdef.name,
      create: (ctx) => cdef.create(ctx, containers),
    });
  }
  return out;
}
