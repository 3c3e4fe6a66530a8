// What one AutoTracing trigger (cpusys, cpuidle, dload, iotracing, memburst;
// seed 5.3) gives the runtime in src/autotracing/tracer.ts: its condition,
// polled every Interval, and its capture. The runtime owns everything the five
// share: the poll timer, cooldown, one capture at a time, Filter, on-demand
// captures, the document and the counts.

import type { Container } from "../pod/container.ts";

/** One firing of a trigger's condition. */
export interface Firing {
  /** What the cooldown is kept per: "host", or the container id of a per-container trigger. */
  readonly key: string;
  /** The container the capture is about (per-container triggers). */
  readonly container?: Container;
  /** tracer_data fields known when it fired: the readings and their thresholds, in the seed's order. */
  readonly data: Record<string, unknown>;
}

export interface CaptureOptions {
  /** How long to capture (RunTracingToolTimeout, or the duration asked for); 0 for snapshot triggers. */
  readonly durationMs: number;
  /** Aborted when the trigger is stopped (agent shutdown, tracer stop). */
  readonly signal: AbortSignal;
}

export interface CaptureResult {
  /** The rest of tracer_data (flamedata, stacks, process lists). */
  readonly data: Record<string, unknown>;
  /** What the capture gathered: profile samples, stacks or processes (huatuo_bamai_autotracing_samples_total). */
  readonly samples: number;
}

export interface Trigger {
  readonly name: string;
  /** Between two polls of the condition (Interval). */
  readonly intervalMs: number;
  /** After a capture, further firings of the same key are suppressed this long (IntervalTracing). */
  readonly cooldownMs: number;
  /** Default capture length (RunTracingToolTimeout); undefined for snapshot triggers (dload, memburst). */
  readonly captureMs?: number;
  /** Watches each container: firings carry one, Filter applies, on-demand captures name one. */
  readonly perContainer: boolean;
  /**
   * Runs once at start: a first reading of its source, a check that what it
   * captures with exists. Throws UnsupportedError when it cannot work here.
   */
  prepare?(): void | Promise<void>;
  /** One poll: the firings of the condition now (per-container triggers: one per container). */
  poll(): Firing[] | Promise<Firing[]>;
  /** Whether the Filter rules let this container through (per-container triggers). */
  admits?(c: Container): boolean;
  capture(f: Firing, opts: CaptureOptions): Promise<CaptureResult>;
  /** The firing data of an on-demand capture: the latest readings and the thresholds, no condition. */
  manualData(container?: Container): Record<string, unknown>;
}

/** An on-demand capture that cannot be started; `status` is the HTTP status to answer with. */
export class ManualCaptureError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "ManualCaptureError";
  }
}

/** What an on-demand capture asks for (POST /v1/autotracing/{name}). */
export interface ManualRequest {
  /** Seconds; the trigger's RunTracingToolTimeout when absent. */
  readonly durationSec?: number;
  /** A container id or a unique prefix of one. */
  readonly containerId?: string;
}

/** Resolves a container id or unique prefix; a ManualCaptureError (400) names the field otherwise. */
export function findContainer(list: readonly Container[], idOrPrefix: string): Container {
  const want = idOrPrefix.toLowerCase();
  const exact = list.find((c) => c.id === want);
  if (exact) return exact;
  const matches = list.filter((c) => c.id.startsWith(want));
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) {
    throw new ManualCaptureError(
      400,
      `container_id: no container ${JSON.stringify(idOrPrefix)} on this host`,
    );
  }
  throw new ManualCaptureError(
    400,
    `container_id: ${JSON.stringify(idOrPrefix)} matches ${matches.length} containers; give more of the id`,
  );
}

/** Percentages and rates in documents: two decimals are plenty and keep them readable. */
export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
