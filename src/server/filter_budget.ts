// How much of the agent's one JS thread a watch subscriber's filters may use:
// at most `limitMs` of matching in each `windowMs` of wall time. Once over,
// the budget stays exceeded and the subscriber is cut off.

export class FilterBudget {
  #windowStart: number;
  #spent = 0;
  #exceeded = false;

  constructor(
    readonly limitMs: number,
    readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#windowStart = now();
  }

  /** Milliseconds charged in the current window. */
  get spentMs(): number {
    return this.#spent;
  }

  get exceeded(): boolean {
    return this.#exceeded;
  }

  /** Charges `ms` of work done just now. */
  charge(ms: number): void {
    const t = this.now();
    if (t - this.#windowStart >= this.windowMs) {
      this.#windowStart = t;
      this.#spent = 0;
    }
    this.#spent += ms;
    if (this.#spent > this.limitMs) this.#exceeded = true;
  }
}
