// The AutoTracing runtime of one trigger, as a tracer the TracerManager
// starts, stops and restarts: it polls the trigger's condition every
// Interval, and for each firing decides — Filter, cooldown, one capture of a
// kind at a time — whether to capture; a capture becomes one document with
// tracer_type "auto". On-demand captures (POST /v1/autotracing/{name}) skip
// the condition and the cooldown, not the one-at-a-time rule, and are
// "manual". Everything is counted for huatuo_bamai_autotracing_*.

import { newTracerId, type TracerType } from "../core/document.ts";
import type { EventSink } from "../events/sink.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import { containerEventFields, type ContainerRegistry } from "../pod/container.ts";
import type { Tracer, TracerContext } from "../tracing/manager.ts";
import {
  findContainer,
  type Firing,
  ManualCaptureError,
  type ManualRequest,
  type Trigger,
} from "./trigger.ts";

/** The longest on-demand capture: a forgotten request must not profile a node for hours. */
export const MAX_MANUAL_DURATION_SEC = 600;

export type SuppressReason = "cooldown" | "filter" | "busy";

export interface AutoTracerStats {
  /** Polls at which the condition held (per key). */
  triggers: number;
  /** Documents emitted, by tracer_type. */
  captures: Record<TracerType, number>;
  /** Firings that started no capture, by why. */
  suppressed: Record<SuppressReason, number>;
  /** Captures that failed (no document). */
  errors: number;
  /** What captures gathered (profile samples, stacks, processes). */
  samples: number;
  /** Seconds the last capture took (0 before the first). */
  lastDurationSec: number;
  /** A capture is running now. */
  busy: boolean;
}

export interface AutoTracerDeps {
  /** Where documents go; absent in unit tests that only count. */
  readonly events?: EventSink;
  /** Containers, for on-demand captures of per-container triggers. */
  readonly containers?: ContainerRegistry;
  /** ms clock of the cooldown (tests). */
  readonly now?: () => number;
}

export class AutoTracer implements Tracer {
  readonly name: string;
  readonly #stats: AutoTracerStats = {
    triggers: 0,
    captures: { auto: 0, manual: 0 },
    suppressed: { cooldown: 0, filter: 0, busy: 0 },
    errors: 0,
    samples: 0,
    lastDurationSec: 0,
    busy: false,
  };
  /** key → when its last automatic capture started (ms on the clock). */
  readonly #last = new Map<string, number>();
  readonly #now: () => number;
  #ctx: TracerContext | undefined;
  #log: Logger = silentLogger;
  #abort: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(readonly trigger: Trigger, private readonly deps: AutoTracerDeps = {}) {
    this.name = trigger.name;
    this.#now = deps.now ?? Date.now;
  }

  stats(): AutoTracerStats {
    return structuredClone(this.#stats);
  }

  /** Whether the trigger is running (started and not stopped): on-demand captures need it. */
  get running(): boolean {
    return this.#ctx !== undefined;
  }

  async start(ctx: TracerContext): Promise<void> {
    await this.trigger.prepare?.();
    this.#ctx = ctx;
    this.#log = ctx.log;
    this.#abort = new AbortController();
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#ctx = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort();
    // A capture ends promptly once aborted (profiles, sleeps and scans watch the signal).
    await this.#inFlight;
  }

  #schedule(): void {
    this.#timer = setTimeout(async () => {
      this.#timer = undefined;
      const ctx = this.#ctx;
      if (!ctx) return;
      try {
        await this.poll();
      } catch (err) {
        // The source is gone or garbled: the manager reports it and restarts with backoff.
        if (this.#ctx === ctx) ctx.fail(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (this.#ctx === ctx) this.#schedule();
    }, this.trigger.intervalMs);
  }

  /** One poll of the condition and what follows from it (the timer's job; public for tests). */
  async poll(): Promise<void> {
    const firings = await this.trigger.poll();
    // Stopped while the poll ran: its firings start nothing.
    if (this.#abort?.signal.aborted) return;
    const now = this.#now();
    // Keys whose cooldown ended are forgotten: deleted containers leave nothing behind.
    for (const [key, at] of this.#last) if (now - at >= this.trigger.cooldownMs) this.#last.delete(key);
    for (const f of firings) {
      this.#stats.triggers++;
      const why = this.#suppressed(f, now);
      if (why) {
        this.#stats.suppressed[why]++;
        this.#log.debug("autotracing trigger suppressed", { tracer: this.name, key: f.key, reason: why });
        continue;
      }
      this.#last.set(f.key, now);
      this.#log.info("autotracing triggered", { tracer: this.name, key: f.key });
      this.#begin(f, "auto", this.trigger.captureMs ?? 0, newTracerId());
    }
  }

  #suppressed(f: Firing, now: number): SuppressReason | undefined {
    if (f.container && this.trigger.admits && !this.trigger.admits(f.container)) return "filter";
    const last = this.#last.get(f.key);
    if (last !== undefined && now - last < this.trigger.cooldownMs) return "cooldown";
    if (this.#stats.busy) return "busy";
    return undefined;
  }

  /**
   * Starts an on-demand capture now (no condition, no cooldown) and returns
   * the tracer_id its document will carry. Throws ManualCaptureError: 400 for
   * a request this trigger cannot take, 409 while a capture of this kind runs
   * or when the trigger is not running.
   */
  manual(req: ManualRequest = {}): string {
    if (!this.#ctx) throw new ManualCaptureError(409, `${this.name} is not running`);
    const t = this.trigger;
    let container;
    if (t.perContainer) {
      if (req.containerId === undefined) {
        throw new ManualCaptureError(400, `container_id: required: ${this.name} captures one container`);
      }
      container = findContainer(this.deps.containers?.list() ?? [], req.containerId);
    } else if (req.containerId !== undefined) {
      throw new ManualCaptureError(
        400,
        `container_id: ${this.name} captures the whole host, not a container`,
      );
    }
    if (req.durationSec !== undefined) {
      if (t.captureMs === undefined) {
        throw new ManualCaptureError(400, `duration: ${this.name} takes a snapshot; it has no duration`);
      }
      if (!(req.durationSec > 0 && req.durationSec <= MAX_MANUAL_DURATION_SEC)) {
        throw new ManualCaptureError(400, `duration: expected seconds > 0 and <= ${MAX_MANUAL_DURATION_SEC}`);
      }
    }
    if (this.#stats.busy) throw new ManualCaptureError(409, `${this.name}: a capture is already running`);
    const durationMs = req.durationSec !== undefined ? req.durationSec * 1000 : t.captureMs ?? 0;
    const firing: Firing = { key: container?.id ?? "host", container, data: t.manualData(container) };
    const id = newTracerId();
    this.#log.info("autotracing capture requested", { tracer: this.name, key: firing.key, tracer_id: id });
    this.#begin(firing, "manual", durationMs, id);
    return id;
  }

  /** Runs one capture in the background (busy until it ends) and emits its document. */
  #begin(f: Firing, type: TracerType, durationMs: number, tracerId: string): void {
    this.#abort ??= new AbortController(); // poll() called by a test without start()
    const signal = this.#abort.signal;
    const time = new Date();
    const t0 = performance.now();
    this.#stats.busy = true;
    const run = (async () => {
      try {
        const r = await this.trigger.capture(f, { durationMs, signal });
        // Stopped part-way: a cut-short capture is not the scene asked for.
        if (signal.aborted) return;
        this.#stats.captures[type]++;
        this.#stats.samples += r.samples;
        this.deps.events?.({
          tracerName: this.name,
          tracerType: type,
          tracerId,
          time,
          data: { ...f.data, ...r.data },
          container: f.container ? containerEventFields(f.container) : undefined,
        });
      } catch (err) {
        if (signal.aborted) return;
        this.#stats.errors++;
        this.#log.warn("autotracing capture failed", {
          tracer: this.name,
          key: f.key,
          error: err instanceof Error ? err.message : String(err),
        });
      } finally {
        this.#stats.lastDurationSec = (performance.now() - t0) / 1000;
        this.#stats.busy = false;
        this.#inFlight = undefined;
      }
    })();
    this.#inFlight = run;
  }
}
