// Event tracers: long-running tracers whose output is events (documents on
// disk and on the watch stream), not series. Names are BlackList names.

import type { CollectorContext } from "../../features/feature.ts";
import type { Tracer } from "../../tracing/manager.ts";
import { type NetnsContainerResolver, netRxLatencyTracer } from "../../features/net_rx_latency/net_rx_latency.ts";
import { containerEventFields } from "../../pod/container.ts";
import { oomTracer } from "../../features/oom/oom.ts";
import { softirqTracingTracer } from "../../features/softirq_tracing/softirq_tracing.ts";
import { memoryReclaimEventsTracer } from "../../features/memory_reclaim_events/memory_reclaim_events.ts";
import { netdevBondingLacpTracer } from "../../features/netdev_bonding_lacp/netdev_bonding_lacp.ts";
import { netdevTxqueueTimeoutTracer } from "../../features/netdev_txqueue_timeout/netdev_txqueue_timeout.ts";

/** net_rx_latency's view of the container registry: event fields by network namespace. */
function netnsResolver(ctx: CollectorContext): NetnsContainerResolver | undefined {
  const reg = ctx.containers;
  if (!reg) return undefined;
  return {
    containerByNetns: (inode) => {
      const c = reg.byNetns(inode);
      return c ? containerEventFields(c) : undefined;
    },
  };
}

export interface EventTracerDefinition {
  readonly name: string;
  create(ctx: CollectorContext): Tracer;
}

export const EVENT_TRACERS: readonly EventTracerDefinition[] = [
  { name: "oom", create: (ctx) => oomTracer(ctx) },
  { name: "softirq_tracing", create: (ctx) => softirqTracingTracer(ctx) },
  { name: "memory_reclaim_events", create: (ctx) => memoryReclaimEventsTracer(ctx) },
  { name: "netdev_bonding_lacp", create: (ctx) => netdevBondingLacpTracer(ctx) },
  { name: "netdev_txqueue_timeout", create: (ctx) => netdevTxqueueTimeoutTracer(ctx) },
  { name: "net_rx_latency", create: (ctx) => netRxLatencyTracer({ ...ctx, containers: netnsResolver(ctx) }) },
];
