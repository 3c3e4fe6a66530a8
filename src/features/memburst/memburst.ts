// memburst (seed 5.3): the host's anonymous memory (/proc/meminfo AnonPages)
// read every Interval into a window of the last SlidingWindowLength readings
// (60 × 10 s: the last 10 minutes). When the current reading is at least
// (1 + DeltaMemoryBurst/100) times the window's oldest (100%: doubled) AND at
// least DeltaAnonThreshold % of MemTotal, the DumpProcessMaxNum processes
// with the largest resident set are recorded (top_memory_usage). Cooldown:
// IntervalTracing.

import type { Config } from "../../config/schema.ts";
import type { HostFs } from "../../host/fs.ts";
import { meminfoValue, parseMeminfo } from "../../host/meminfo.ts";
import { topByRss } from "../../autotracing/procs.ts";
import { AutoTracer } from "../../autotracing/tracer.ts";
import type { CaptureResult, Firing, Trigger } from "../../autotracing/trigger.ts";
import { autotracingFeature } from "../feature.ts";

export type MemBurstConfig = Config["AutoTracing"]["MemoryBurst"];

export interface AnonReading {
  /** AnonPages, bytes. */
  readonly anon: number;
  /** MemTotal, bytes. */
  readonly total: number;
}

/**
 * The trigger condition over `window` (earlier readings of AnonPages, oldest
 * first) and the current reading.
 */
export function memburstFires(
  window: readonly number[],
  cur: AnonReading,
  cfg: Pick<MemBurstConfig, "DeltaMemoryBurst" | "DeltaAnonThreshold">,
): boolean {
  if (window.length === 0) return false;
  return cur.anon >= (1 + cfg.DeltaMemoryBurst / 100) * window[0] &&
    cur.anon >= cfg.DeltaAnonThreshold / 100 * cur.total;
}

/** A window of the last `length` values, oldest first. */
export class SlidingWindow {
  readonly #values: number[] = [];
  constructor(readonly length: number) {}

  get values(): readonly number[] {
    return this.#values;
  }

  push(v: number): void {
    this.#values.push(v);
    if (this.#values.length > this.length) this.#values.shift();
  }

  clear(): void {
    this.#values.length = 0;
  }
}

export class MemBurstTrigger implements Trigger {
  readonly name = "memburst";
  readonly perContainer = false;
  readonly intervalMs: number;
  readonly cooldownMs: number;
  readonly #window: SlidingWindow;

  constructor(private readonly fs: HostFs, private readonly cfg: MemBurstConfig) {
    this.intervalMs = cfg.Interval * 1000;
    this.cooldownMs = cfg.IntervalTracing * 1000;
    this.#window = new SlidingWindow(cfg.SlidingWindowLength);
  }

  #read(): AnonReading {
    const path = this.fs.proc("meminfo");
    const info = parseMeminfo(this.fs.readTextSync(path), path);
    return { anon: meminfoValue(info, "AnonPages", path), total: meminfoValue(info, "MemTotal", path) };
  }

  prepare(): void {
    this.#window.clear();
    this.#window.push(this.#read().anon);
  }

  poll(): Firing[] {
    const cur = this.#read();
    const fires = memburstFires(this.#window.values, cur, this.cfg);
    this.#window.push(cur.anon);
    return fires ? [{ key: "host", data: {} }] : [];
  }

  async capture(): Promise<CaptureResult> {
    const top = await topByRss(this.fs, this.cfg.DumpProcessMaxNum);
    return { data: { top_memory_usage: top }, samples: top.length };
  }

  manualData(): Record<string, unknown> {
    return {};
  }
}

export default autotracingFeature(
  "memburst",
  (ctx) =>
    new AutoTracer(new MemBurstTrigger(ctx.fs, ctx.config.AutoTracing.MemoryBurst), {
      events: ctx.events,
      containers: ctx.containers,
    }),
);
