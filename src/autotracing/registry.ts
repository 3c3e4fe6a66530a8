// The AutoTracing triggers of a running agent by name: what POST
// /v1/autotracing/{name} starts captures through and what the self-metrics
// read. A trigger BlackList turns off is listed with its reason, so asking
// for it says why instead of "no such trigger".

import type { AutoTracer } from "./tracer.ts";

export class AutoTracingRegistry {
  readonly #tracers = new Map<string, AutoTracer>();
  readonly #disabled = new Map<string, string>();

  add(t: AutoTracer): void {
    if (this.#tracers.has(t.name) || this.#disabled.has(t.name)) {
      throw new Error(`autotracing ${t.name} registered twice`);
    }
    this.#tracers.set(t.name, t);
  }

  /** A trigger that exists but is off (BlackList, --disable-tracing). */
  disable(name: string, reason: string): void {
    this.#disabled.set(name, reason);
  }

  get(name: string): AutoTracer | undefined {
    return this.#tracers.get(name);
  }

  disabledReason(name: string): string | undefined {
    return this.#disabled.get(name);
  }

  /** Every trigger's name, enabled or not, sorted. */
  names(): string[] {
    return [...this.#tracers.keys(), ...this.#disabled.keys()].sort();
  }

  /** The enabled triggers, by name. */
  list(): AutoTracer[] {
    return [...this.#tracers.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
