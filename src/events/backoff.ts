// Report backoff for event storms (softlockup, hungtask) and a plain cooldown
// (RAS MCE threshold interrupts). Pure state machines over an injectable
// clock: they decide whether an occurrence is reported; counting every
// occurrence stays with the caller (the BPF counters).

/** Milliseconds since some fixed origin; Date.now by default. */
export type Clock = () => number;

const MINUTE = 60_000;

export interface StormBackoffOptions {
  /** Wait after the first report of a storm before the next one may be reported. Default 10 min. */
  firstIntervalMs?: number;
  /** The wait doubles after each report up to this. Default 3 h. */
  maxIntervalMs?: number;
  /**
   * A storm ends (and the interval resets) after this long without any
   * occurrence. Default 30 min: the kernel re-reports a condition that lasts
   * far more often than that (the hung task detector at every check,
   * kernel.hung_task_timeout_secs, 120 s by default and rarely above 600 s;
   * the soft lockup watchdog every 2 * kernel.watchdog_thresh, 20 s by
   * default), so 30 quiet minutes mean the condition went away, and a new
   * occurrence after that is news worth reporting at once.
   */
  quietMs?: number;
  now?: Clock;
}

export interface BackoffDecision {
  /** Whether to report this occurrence. */
  report: boolean;
  /** Occurrences not reported since the previous report of this storm (0 for a storm's first). */
  suppressed: number;
  /** When the next occurrence may be reported (ms on the clock); only meaningful within the storm. */
  nextAllowedAt: number;
}

/**
 * Within one storm: the first occurrence is reported, then at most one every
 * interval, the interval starting at 10 minutes and doubling after each
 * report up to 3 hours. The storm ends after a quiet period.
 */
export class StormBackoff {
  readonly firstIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly quietMs: number;
  readonly #now: Clock;
  #inStorm = false;
  #lastSeen = 0;
  #lastReport = 0;
  #interval = 0;
  #suppressed = 0;

  constructor(opts: StormBackoffOptions = {}) {
    this.firstIntervalMs = opts.firstIntervalMs ?? 10 * MINUTE;
    this.maxIntervalMs = opts.maxIntervalMs ?? 180 * MINUTE;
    this.quietMs = opts.quietMs ?? 30 * MINUTE;
    this.#now = opts.now ?? Date.now;
    if (!(this.firstIntervalMs > 0 && this.maxIntervalMs >= this.firstIntervalMs && this.quietMs > 0)) {
      throw new RangeError("StormBackoff: need 0 < firstIntervalMs <= maxIntervalMs and quietMs > 0");
    }
  }

  /** The current wait between reports (0 outside a storm). */
  get intervalMs(): number {
    return this.#inStorm ? this.#interval : 0;
  }

  /** Records one occurrence now and says whether to report it. */
  occur(): BackoffDecision {
    const t = this.#now();
    if (!this.#inStorm || t - this.#lastSeen >= this.quietMs) {
      this.#inStorm = true;
      this.#lastSeen = t;
      this.#lastReport = t;
      this.#interval = this.firstIntervalMs;
      this.#suppressed = 0;
      return { report: true, suppressed: 0, nextAllowedAt: t + this.#interval };
    }
    this.#lastSeen = t;
    if (t - this.#lastReport >= this.#interval) {
      const suppressed = this.#suppressed;
      this.#lastReport = t;
      this.#interval = Math.min(this.#interval * 2, this.maxIntervalMs);
      this.#suppressed = 0;
      return { report: true, suppressed, nextAllowedAt: t + this.#interval };
    }
    this.#suppressed++;
    return { report: false, suppressed: this.#suppressed, nextAllowedAt: this.#lastReport + this.#interval };
  }
}

/** At most one report per fixed interval (0: every occurrence is reported). */
export class Cooldown {
  readonly #now: Clock;
  #last: number | undefined;
  #suppressed = 0;

  constructor(readonly intervalMs: number, now: Clock = Date.now) {
    if (!(intervalMs >= 0)) throw new RangeError("Cooldown: interval must be >= 0");
    this.#now = now;
  }

  occur(): BackoffDecision {
    const t = this.#now();
    if (this.#last === undefined || t - this.#last >= this.intervalMs) {
      const suppressed = this.#suppressed;
      this.#last = t;
      this.#suppressed = 0;
      return { report: true, suppressed, nextAllowedAt: t + this.intervalMs };
    }
    this.#suppressed++;
    return { report: false, suppressed: this.#suppressed, nextAllowedAt: this.#last + this.intervalMs };
  }
}
