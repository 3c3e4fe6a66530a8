// The common shape of the BPF event stream readers (ffi/ringbuf.ts for
// BPF_MAP_TYPE_RINGBUF, ffi/perfbuf.ts for BPF_MAP_TYPE_PERF_EVENT_ARRAY).
//
// Both read the kernel's mmap'ed ring directly from the JS thread on a timer
// (docs/architecture.md, FFI facts: ~1.9 M events/s at 13–15 % of one core, where libbpf's
// *_consume + JS callbacks cost 0.4–0.7 µs/event and epoll-driven reading was
// far worse). Nobody sleeps on the ring, so the kernel never needs to wake
// anyone: ring buffer producers should submit with BPF_RB_NO_WAKEUP, perf
// buffers are opened with a watermark so wakeups are (almost) never raised.
//
// Records are handed over as (view, offset, length): a DataView over the
// mapping itself (or, for a perf record that wraps around the end of its
// ring, over a reused scratch buffer). The view is valid only during the
// call — copy what you keep. Nothing is allocated per record.

/**
 * Called once per record with its bytes at `view[offset, offset + length)`.
 * Must not keep `view` (or a typed array over its buffer) after returning.
 */
export type RecordHandler = (view: DataView, offset: number, length: number) => void;

/**
 * Receives what a record handler threw (the reader counts it in `errors` and
 * goes on with the next record), or, when the timer's poll() itself fails
 * (the reader was closed under it), that error — the timer then stops.
 */
export type ErrorHandler = (err: unknown) => void;

export interface EventReaderOptions {
  /** Called with what a record handler threw; default: logs the first one to stderr. */
  onError?: ErrorHandler;
}

/** Records handed out per timer tick unless start() is given another budget. */
export const DEFAULT_BUDGET_PER_TICK = 65536;
export const DEFAULT_INTERVAL_MS = 10;

export interface EventReader {
  /** Records handed to the handler so far (including those whose handler threw). */
  readonly events: number;
  /**
   * Records the kernel could not store. Perf buffers: the sum of the
   * kernel's PERF_RECORD_LOST counts seen so far. Ring buffers have no
   * kernel-side count: the BPF program counts failed bpf_ringbuf_reserve()s
   * itself (see ffi/ringbuf.ts), read here on access.
   */
  readonly lost: number;
  /** Handler calls that threw. */
  readonly errors: number;
  /** Receives what a handler threw; the reader counts it and goes on with the next record. */
  onError: ErrorHandler;
  /** Whether the timer started by start() is running. */
  readonly running: boolean;
  /**
   * Hands at most `budget` records to the handler and returns how many it
   * did; never blocks. Throws once closed.
   */
  poll(budget?: number): number;
  /**
   * Polls every `intervalMs` with `budgetPerTick`. When a tick uses its
   * whole budget a follow-up poll is queued as a new macrotask, so a backlog
   * drains quickly while timers and I/O (e.g. HTTP requests) still run in
   * between. Restarting replaces the previous timer.
   */
  start(intervalMs?: number, budgetPerTick?: number): void;
  stop(): void;
  /** Stops, unmaps and releases everything; idempotent. */
  close(): void;
}

let warnedHandlerError = false;

function defaultOnError(err: unknown): void {
  if (warnedHandlerError) return;
  warnedHandlerError = true;
  console.error("event reader: a record handler threw (further errors are only counted):", err);
}

/** Timer, counters and error handling shared by both readers. */
export abstract class EventReaderBase implements EventReader {
  onError: ErrorHandler;
  protected handler: RecordHandler;
  protected eventCount = 0;
  #errors = 0;
  #interval: ReturnType<typeof setInterval> | undefined;
  #followUp: ReturnType<typeof setTimeout> | undefined;
  #budget = DEFAULT_BUDGET_PER_TICK;

  constructor(handler: RecordHandler, opts: EventReaderOptions) {
    this.handler = handler;
    this.onError = opts.onError ?? defaultOnError;
  }

  get events(): number {
    return this.eventCount;
  }

  get errors(): number {
    return this.#errors;
  }

  abstract get lost(): number;
  abstract poll(budget?: number): number;
  abstract close(): void;

  get running(): boolean {
    return this.#interval !== undefined;
  }

  start(intervalMs: number = DEFAULT_INTERVAL_MS, budgetPerTick: number = DEFAULT_BUDGET_PER_TICK): void {
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
    if (!(budgetPerTick >= 1)) throw new RangeError(`budgetPerTick must be >= 1, got ${budgetPerTick}`);
    this.stop();
    this.#budget = budgetPerTick;
    this.#interval = setInterval(this.#onInterval, intervalMs);
  }

  stop(): void {
    if (this.#interval !== undefined) clearInterval(this.#interval);
    if (this.#followUp !== undefined) clearTimeout(this.#followUp);
    this.#interval = undefined;
    this.#followUp = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Called by poll() when the handler threw; never throws itself. */
  protected handlerFailed(err: unknown): void {
    this.#errors++;
    try {
      this.onError(err);
    } catch {
      // An onError that throws must not stop the reader either.
    }
  }

  // Arrow functions: one closure each for the reader's life, not one per tick.
  #onInterval = (): void => {
    if (this.#followUp === undefined) this.#run(); // else a follow-up poll is already queued
  };

  #onFollowUp = (): void => {
    this.#followUp = undefined;
    if (this.#interval !== undefined) this.#run();
  };

  #run(): void {
    let n: number;
    try {
      n = this.poll(this.#budget);
    } catch (err) {
      // Handlers' errors are caught inside poll(); this is a closed or broken
      // reader: stop instead of failing every tick.
      this.stop();
      try {
        this.onError(err);
      } catch {
        // ignored, as in handlerFailed
      }
      return;
    }
    if (n >= this.#budget) this.#followUp = setTimeout(this.#onFollowUp, 0);
  }
}

/** Checks a poll budget: a positive integer or Infinity. */
export function checkBudget(budget: number): void {
  if (!(budget >= 1) || (budget !== Infinity && !Number.isInteger(budget))) {
    throw new RangeError(`budget must be a positive integer, got ${budget}`);
  }
}
