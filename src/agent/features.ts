// Builds every feature of src/features/index.ts that BlackList leaves on: its
// collector joins the registry, its tracer the tracing manager. A feature that
// cannot be created reports its error at every scrape; a blacklisted one that
// traces is listed as disabled.

import type { Collector } from "../core/collector.ts";
import type { Feature, FeatureContext } from "../features/feature.ts";
import { FEATURES } from "../features/index.ts";
import { Registry } from "../metrics/registry.ts";
import type { Tracer, TracerManager } from "../tracing/manager.ts";

/**
 * The AutoTracing features' names: their tracers' documents are the ones the
 * local store indexes for GET /v1/flamegraph/{tracer_id}. Blacklisted ones too:
 * their files from earlier runs are still served.
 */
export function autotracingTracers(features: readonly Feature[] = FEATURES): string[] {
  return features.filter((f) => f.modes.includes("autotracing")).map((f) => f.name);
}

/** Tracers that emit documents (events, autotracing) and BlackList leaves on. */
export function documentTracers(
  blackList: readonly string[],
  features: readonly Feature[] = FEATURES,
): string[] {
  return features.filter((f) =>
    (f.modes.includes("events") || f.modes.includes("autotracing")) && !blackList.includes(f.name)
  ).map((f) => f.name);
}

export function buildFeatures(
  ctx: FeatureContext,
  constLabels: Record<string, string>,
  tracers: TracerManager,
  features: readonly Feature[] = FEATURES,
): Registry {
  const registry = new Registry(constLabels, ctx.log);
  for (const feature of features) {
    if (ctx.config.BlackList.includes(feature.name)) {
      ctx.log.info("feature disabled by BlackList", { feature: feature.name });
      if (feature.tracing) tracers.add(idleTracer(feature.name), {}, "disabled by BlackList");
      if (feature.modes.includes("autotracing")) {
        ctx.autotracing?.disable(feature.name, "disabled by BlackList");
      }
      continue;
    }
    let collector: Collector | undefined;
    let tracer: Tracer | undefined;
    try {
      ({ collector, tracer } = feature.create(ctx));
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      ctx.log.error("feature cannot start", { feature: feature.name, error });
      if (feature.modes.includes("metrics")) {
        collector = { name: feature.name, collect: () => Promise.reject(new Error(error)) };
      }
    }
    if (tracer) tracers.add(tracer);
    if (collector) registry.register(collector);
  }
  return registry;
}

function idleTracer(name: string): Tracer {
  return { name, start: () => Promise.resolve(), stop: () => {} };
}
