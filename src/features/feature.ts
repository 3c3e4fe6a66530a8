// A feature is one thing a user of HUATUO names: a BlackList entry, a
// collector name, a tracer_name (seed 7.1 采集模式: metrics, events,
// autotracing). Each lives in src/features/<name>/ (its BPF program, if any, in
// bpf/<name>.bpf.c) and is listed once in src/features/index.ts; the agent
// builds every collector and tracer from that list.

import type { Config } from "../config/schema.ts";
import type { HostFs } from "../host/fs.ts";
import type { BpfRuntime } from "../bpf/tracer.ts";
import type { EventSink } from "../events/sink.ts";
import type { Logger } from "../log/logger.ts";
import type { Tracer } from "../tracing/manager.ts";
import type { ContainerRegistry } from "../pod/container.ts";
import type { Collector } from "../core/collector.ts";
import { mergeCollectors } from "./common/container_part.ts";
import type { Profiler } from "../profile/profile.ts";
import type { AutoTracer } from "../autotracing/tracer.ts";
import type { AutoTracingRegistry } from "../autotracing/registry.ts";

/** How a user meets a feature's output (seed 7.1). */
export type Mode = "metrics" | "events" | "autotracing";

/** What features are built from. */
export interface FeatureContext {
  readonly fs: HostFs;
  readonly config: Config;
  readonly log: Logger;
  /** The BPF object directory (`--bpf-dir`) and the loaded BPF tracers. */
  readonly bpf: BpfRuntime;
  /** Kernel events of tracers go here (local file + subscribers); absent in unit tests. */
  readonly events?: EventSink;
  /** Containers of this host (cgroup discovery + kubelet); absent in unit tests. */
  readonly containers?: ContainerRegistry;
  /** CPU profiles for the cpusys and cpuidle triggers; absent: those report "unsupported". */
  readonly profiler?: Profiler;
  /** AutoTracing triggers by name (on-demand captures, self-metrics); absent in unit tests. */
  readonly autotracing?: AutoTracingRegistry;
}

/** What a created feature runs: series for /metrics, a long-running tracer (BPF programs, readers), or both. */
export interface FeatureParts {
  readonly collector?: Collector;
  readonly tracer?: Tracer;
}

export interface Feature {
  /** The seed's name: BlackList entry, collector name, tracer name. */
  readonly name: string;
  readonly modes: readonly Mode[];
  /** True when it runs a tracer: listed on /v1/tracers (as disabled when blacklisted). */
  readonly tracing: boolean;
  /** Its per-container series alone (for tests and benchmarks; create() already merges them in). */
  readonly container?: ContainerPart;
  create(ctx: FeatureContext): FeatureParts;
}

/** A collector as a feature module writes it: its samples, and the tracer that feeds them when it has one. */
export type CollectorParts = Omit<Collector, "name"> & { readonly tracer?: Tracer };

/** A container part: the same families for every container, merged into the feature's collector. */
export type ContainerPart = (ctx: FeatureContext, containers: ContainerRegistry) => Collector;

export interface MetricsFeatureOptions {
  /** Also emits events (dropwatch, hungtask, ...). */
  readonly events?: boolean;
  /** create() returns a tracer. */
  readonly tracing?: boolean;
  /** The per-container series of the same BlackList name (cpu_util_container_* for cpu_util). */
  readonly container?: ContainerPart;
}

/** A feature whose output is series (and, with a tracer, possibly events). */
export function metricsFeature(
  name: string,
  create: (ctx: FeatureContext) => CollectorParts,
  opts: MetricsFeatureOptions = {},
): Feature {
  return {
    name,
    modes: opts.events ? ["metrics", "events"] : ["metrics"],
    tracing: opts.tracing === true,
    container: opts.container,
    create(ctx) {
      const { tracer, ...rest } = create(ctx);
      let collector: Collector = { name, ...rest };
      if (opts.container && ctx.containers) {
        collector = mergeCollectors(collector, opts.container(ctx, ctx.containers));
      }
      return { collector, tracer };
    },
  };
}

/** A feature with per-container series only (cpu_stat, memory_events): nothing without a container registry. */
export function containerFeature(name: string, part: ContainerPart): Feature {
  return {
    name,
    modes: ["metrics"],
    tracing: false,
    container: part,
    create: (ctx) => (ctx.containers ? { collector: part(ctx, ctx.containers) } : {}),
  };
}

/** A feature whose output is events: a tracer (its tracer name is the feature's name). */
export function eventsFeature(name: string, create: (ctx: FeatureContext) => Tracer): Feature {
  return { name, modes: ["events"], tracing: true, create: (ctx) => ({ tracer: create(ctx) }) };
}

/**
 * A feature whose output is AutoTracing captures (seed 7.4: in the framework
 * an autotracing trigger is a tracer like an event tracer; it watches for its
 * condition and emits documents with tracer_type "auto").
 */
export function autotracingFeature(name: string, create: (ctx: FeatureContext) => AutoTracer): Feature {
  return {
    name,
    modes: ["autotracing"],
    tracing: true,
    create(ctx) {
      const tracer = create(ctx);
      // Listed for POST /v1/autotracing/{name} and huatuo_bamai_autotracing_*.
      ctx.autotracing?.add(tracer);
      return { tracer };
    },
  };
}
