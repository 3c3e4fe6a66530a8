// Event-loop lag and memory of the agent itself: everything (BPF buffer polling, event
// documents, HTTP, SSE fan-out) shares one JS thread, so a long synchronous
// stretch delays all of it. A 50 ms timer measures how late it fires.

import type { Collector } from "../core/collector.ts";
import { counter, gauge } from "../core/sample.ts";

/** Lag above which a timer tick counts as a stall. */
export const STALL_MS = 100;

export class LoopLagMonitor {
  #timer: ReturnType<typeof setInterval> | undefined;
  #expected = 0;
  /** Largest lag since the last read (ms). */
  #maxMs = 0;
  stalls = 0;
  stalledMs = 0;

  constructor(readonly intervalMs = 50, private readonly now: () => number = () => performance.now()) {}

  start(): void {
    this.#expected = this.now() + this.intervalMs;
    this.#timer = setInterval(() => this.tick(), this.intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  /** One timer firing (exported for tests with a fake clock). */
  tick(): void {
    const t = this.now();
    const lag = Math.max(0, t - this.#expected);
    this.#expected = t + this.intervalMs;
    if (lag > this.#maxMs) this.#maxMs = lag;
    if (lag >= STALL_MS) {
      this.stalls++;
      this.stalledMs += lag;
    }
  }

  /** The largest lag since the previous call, in ms. */
  takeMaxMs(): number {
    const m = this.#maxMs;
    this.#maxMs = 0;
    return m;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** The agent's own memory: RSS, and the JS heap and memory held outside it (buffers, FFI). */
export function memorySamples(u: Deno.MemoryUsage) {
  const help = "Memory of the agent process: rss, JS heap_total/heap_used, external (array buffers, FFI).";
  return (["rss", "heapTotal", "heapUsed", "external"] as const).map((k) =>
    gauge("process_memory_bytes", help, u[k], { kind: k.replace(/[A-Z]/, (c) => `_${c.toLowerCase()}`) })
  );
}

export function loopLagCollector(m: LoopLagMonitor): Collector {
  return {
    name: "event_loop",
    collect: () =>
      Promise.resolve([
        gauge(
          "event_loop_lag_max_seconds",
          "Largest event-loop delay of the agent since the previous scrape.",
          m.takeMaxMs() / 1000,
        ),
        counter(
          "event_loop_stalls_total",
          `Event-loop delays of ${STALL_MS} ms or more (events, HTTP and SSE all waited).`,
          m.stalls,
        ),
        counter("event_loop_stalled_seconds_total", "Time lost in those stalls.", m.stalledMs / 1000),
        ...memorySamples(Deno.memoryUsage()),
      ]),
    close: () => m.stop(),
  };
}
