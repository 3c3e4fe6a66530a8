// --dry-run's verdict: it starts everything and scrapes once, and it exists
// to catch a host where something does not work, so any collector that failed
// its scrape or tracer that failed to start makes it exit non-zero. A tracer
// whose kernel hook is absent ("unsupported") or that BlackList disables is not
// a failure.

import type { CollectorResult } from "../metrics/registry.ts";
import type { TracerStatus } from "../tracing/manager.ts";

export interface DryRunFailures {
  collectors: string[];
  tracers: string[];
}

export function dryRunFailures(
  results: readonly Pick<CollectorResult, "name" | "error">[],
  tracers: readonly TracerStatus[],
): DryRunFailures {
  return {
    collectors: results.filter((r) => r.error !== undefined).map((r) => r.name).sort(),
    tracers: tracers.filter((t) => t.state === "failed").map((t) => t.name).sort(),
  };
}
