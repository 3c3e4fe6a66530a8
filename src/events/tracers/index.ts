// Event tracers: long-running tracers whose output is events (documents on
// disk and on the watch stream), not series. Names are BlackList names.

import type { CollectorContext } from "../../metrics/collector.ts";
import type { Tracer } from "../../tracing/manager.ts";
import { oomTracer } from "./oom.ts";

export interface EventTracerDefinition {
  readonly name: string;
  create(ctx: CollectorContext): Tracer;
}

export const EVENT_TRACERS: readonly EventTracerDefinition[] = [
  { name: "oom", create: (ctx) => oomTracer(ctx) },
];
