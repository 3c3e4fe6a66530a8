// A fixed background window over a cumulative source (e.g. /proc/stat tick
// counters): the source is read on a timer of its own, and a rate over "the
// last complete window" is the difference of the two most recent readings.
// Every scraper sees the same window whenever it scrapes, instead of a window
// that ends at its own scrape and starts at whoever scraped before it.

export interface WindowSamplerOptions<T> {
  /** Reads the source; synchronous, so no read is in flight when close() returns. Throws when unreadable. */
  read: () => T;
  /** Time between readings = the window length. */
  windowMs: number;
  /**
   * False when `next` shows that no time passed since `cur` (a static fixture,
   * two reads within one tick): the last window is kept rather than replaced
   * by an empty one. Default: always true.
   */
  elapsed?: (cur: T, next: T) => boolean;
}

/** The last complete window: readings at its start and end. */
export interface SampleWindow<T> {
  /** Undefined until a second reading completes the first window (rates are then since the counters' start). */
  readonly start: T | undefined;
  readonly end: T;
}

export class WindowSampler<T> {
  readonly windowMs: number;
  readonly #read: () => T;
  readonly #elapsed: (cur: T, next: T) => boolean;
  #window: SampleWindow<T> | undefined;
  /** The last read's failure; cleared by the next good read. */
  #error: unknown;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Takes the first reading now, then one every windowMs until close(). */
  constructor(opts: WindowSamplerOptions<T>) {
    this.windowMs = opts.windowMs;
    this.#read = opts.read;
    this.#elapsed = opts.elapsed ?? (() => true);
    this.sample();
    const timer = setInterval(() => this.sample(), opts.windowMs);
    // Unref'd: a sampler never keeps the agent or a test run alive on its own (close() stops the readings).
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Takes one reading now (the timer's job; public for tests). */
  sample(): void {
    let next: T;
    try {
      next = this.#read();
    } catch (err) {
      this.#error = err;
      return;
    }
    this.#error = undefined;
    const w = this.#window;
    if (!w) this.#window = { start: undefined, end: next };
    else if (this.#elapsed(w.end, next)) this.#window = { start: w.end, end: next };
  }

  /** The last complete window; throws the last read's error when it failed. */
  window(): SampleWindow<T> {
    if (this.#error !== undefined) throw this.#error;
    if (!this.#window) throw new Error("no reading yet");
    return this.#window;
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
