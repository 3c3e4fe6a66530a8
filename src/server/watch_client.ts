// One subscriber of POST /v1/events/watch: its hub subscription, its SSE
// stream, `: ping` every KeepAliveInterval, and the ways it ends (client gone,
// too slow, failed writes, filters over their time budget, agent shutdown).

import type { EventHub, Subscription } from "../events/hub.ts";
import type { Logger } from "../log/logger.ts";
import { FilterBudget } from "./filter_budget.ts";
import { type CompiledFilters, matchFilters } from "./watch_filter.ts";
import { PING, type SseEncoder } from "./watch_event.ts";

/** Consecutive failed writes after which a client is treated as gone (seed: 3). */
export const MAX_WRITE_FAILURES = 3;

/**
 * Events coalesced into one write to a client when several are waiting: all
 * of them. Each write waits for the socket (and, with small segments, for the
 * peer's delayed ACK: ~40 ms), so a per-write cap bounds a client's rate
 * (256 per write capped clients at ~6 k events/s, measured).
 */
const MAX_EVENTS_PER_WRITE = 65_536;

export interface WatchClientOptions {
  readonly id: number;
  readonly hub: EventHub;
  readonly log: Logger;
  readonly encoder: SseEncoder;
  readonly filters: CompiledFilters;
  readonly includeTracerData: boolean;
  /** Clients with the same variant get byte-identical batches. */
  readonly variant: string;
  readonly lastEventId: number | undefined;
  readonly keepAliveSec: number;
  readonly budget: { readonly limitMs: number; readonly windowMs: number };
  /** Aborted when the HTTP client goes away. */
  readonly signal: AbortSignal;
  /** Called once when the stream ends, with why. */
  readonly onDone: (why: string) => void;
}

export class WatchClient {
  readonly #o: WatchClientOptions;
  readonly #budget: FilterBudget;
  readonly #sub: Subscription;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #done = false;
  #failures = 0;
  readonly #ping = new TextEncoder().encode(PING);

  constructor(o: WatchClientOptions) {
    this.#o = o;
    // Filters run inside the hub's publish(), for every event (and, on
    // subscribe, for the replayed ones): once over budget they stop matching,
    // and the client is cut off as soon as publish() returns.
    this.#budget = new FilterBudget(o.budget.limitMs, o.budget.windowMs);
    this.#sub = o.hub.subscribe({
      lastEventId: o.lastEventId,
      filter: (doc) => {
        if (this.#budget.exceeded) return false;
        const ok = matchFilters(o.filters, doc, this.#budget);
        if (!this.#budget.exceeded) return ok;
        queueMicrotask(() => this.#cutOffOverBudget());
        return false;
      },
    });
    o.signal.addEventListener("abort", this.#onAbort);
  }

  /** The SSE response streaming this client's events. */
  response(): Response {
    const stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
        this.#timer = setInterval(() => this.#write(this.#ping), Math.max(1, this.#o.keepAliveSec * 1000));
        this.#sub.onClose((reason) => {
          if (reason === "slow") {
            this.#o.log.warn("events watch client too slow, cut off", { client: this.#o.id });
            this.finish("queue full");
          }
        });
      },
      pull: async (c) => {
        const ev = await this.#sub.next();
        if (this.#done) return;
        if (ev === null) {
          this.finish("subscription closed");
          return;
        }
        // Whatever else queued up meanwhile goes out in the same write.
        const more = this.#sub.takeAvailable(MAX_EVENTS_PER_WRITE - 1);
        const { encoder, includeTracerData, variant } = this.#o;
        c.enqueue(
          more.length === 0
            ? encoder.bytesOf(ev, includeTracerData)
            : encoder.batchOf(ev, more, variant, includeTracerData),
        );
        this.#failures = 0;
      },
      cancel: () => {
        this.finish("stream cancelled");
      },
    }, { highWaterMark: 1 });
    return new Response(stream, {
      status: 200,
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  }

  /** Ends this stream; `abort` errors it so the connection is dropped even if the client is not reading. */
  finish(why: string, abort = false): void {
    if (this.#done) return;
    this.#done = true;
    clearInterval(this.#timer);
    this.#o.signal.removeEventListener("abort", this.#onAbort);
    this.#sub.close();
    try {
      if (abort) this.#controller?.error(new Error(why));
      else this.#controller?.close();
    } catch {
      // already closed or errored by the consumer
    }
    this.#o.onDone(why);
  }

  #onAbort = () => this.finish("client gone");

  #cutOffOverBudget(): void {
    if (this.#done) return;
    const { limitMs, windowMs } = this.#o.budget;
    const reason = `filters used more than ${limitMs} ms in ${windowMs} ms (${
      this.#budget.spentMs.toFixed(1)
    } ms)`;
    this.#o.hub.countFilterBudgetCutOff();
    this.#o.log.warn("events watch client cut off: filter budget exceeded", { client: this.#o.id, reason });
    this.finish(reason, true);
  }

  /** Enqueue unless the client is backed up; MAX_WRITE_FAILURES in a row closes it. */
  #write(bytes: Uint8Array): void {
    const c = this.#controller;
    if (this.#done || !c) return;
    let ok = false;
    const size = c.desiredSize;
    if (size !== null && size > 0) {
      try {
        c.enqueue(bytes);
        ok = true;
      } catch {
        ok = false;
      }
    }
    if (ok) {
      this.#failures = 0;
      return;
    }
    if (++this.#failures >= MAX_WRITE_FAILURES) {
      this.#o.hub.countSlowClient();
      this.finish(`${MAX_WRITE_FAILURES} consecutive failed writes`, true);
    }
  }
}
