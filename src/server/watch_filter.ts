// Watch filters: one RE2 pattern per document field, ANDed. Client-supplied
// patterns run on the agent's one JS thread for every event, so what one
// event can cost is bounded: patterns are matched by a linear-time NFA
// (src/events/re2), their compiled size is capped, and so is the length of
// the field values they are matched against. Field values repeat (a handful
// of tracer names, one hostname), so results are remembered per value.

import { Re2, Re2SyntaxError } from "../events/re2/re2.ts";
import type { EventDocument } from "../core/document.ts";
import type { FilterBudget } from "./filter_budget.ts";

export const FILTER_FIELDS = [
  "tracer_name",
  "hostname",
  "container_hostname",
  "container_host_namespace",
  "region",
] as const;
export type FilterField = typeof FILTER_FIELDS[number];

/** A request the watch endpoint refuses (HTTP 400), naming the offending field. */
export class WatchRequestError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

/** Longest pattern accepted, in UTF-8 bytes. */
export const MAX_PATTERN_BYTES = 1024;

/**
 * NFA instructions of all of a request's filters together. With
 * MAX_FIELD_CHARS it bounds matching one event at 2000 × 257 NFA steps:
 * ~4 ms measured (~16 ms for the first matches, before V8 optimises the
 * matcher). RE2's largest count, `a{1000}`, still fits.
 */
export const MAX_FILTER_INSTRUCTIONS = 2000;

/** Values longer than this never match (Linux hostnames are at most 64 bytes, Kubernetes names 253). */
export const MAX_FIELD_CHARS = 256;

/** Remembered results per filter; only short values are remembered, so this holds < 200 KiB. */
const MEMO_ENTRIES = 1024;
const MEMO_MAX_CHARS = 64;

export class FieldFilter {
  readonly #re: Re2;
  readonly #memo = new Map<string, boolean>();

  constructor(readonly field: FilterField, re: Re2) {
    this.#re = re;
  }

  get source(): string {
    return this.#re.source;
  }

  /** Whether the pattern matches `value`; time spent matching is charged to `budget`. */
  test(value: string, budget?: FilterBudget): boolean {
    if (value.length > MAX_FIELD_CHARS) return false;
    const known = this.#memo.get(value);
    if (known !== undefined) return known;
    const t0 = performance.now();
    const ok = this.#re.test(value);
    budget?.charge(performance.now() - t0);
    if (value.length <= MEMO_MAX_CHARS) {
      if (this.#memo.size >= MEMO_ENTRIES) this.#memo.delete(this.#memo.keys().next().value!);
      this.#memo.set(value, ok);
    }
    return ok;
  }
}

export type CompiledFilters = Partial<Record<FilterField, FieldFilter>>;

/** Compiles the non-empty patterns (an empty one matches everything); throws WatchRequestError. */
export function compileFilters(patterns: Partial<Record<FilterField, string>>): CompiledFilters {
  const out: CompiledFilters = {};
  let left = MAX_FILTER_INSTRUCTIONS;
  for (const key of FILTER_FIELDS) {
    const pattern = patterns[key];
    if (pattern === undefined || pattern === "") continue;
    const field = `filters.${key}`;
    if (new TextEncoder().encode(pattern).byteLength > MAX_PATTERN_BYTES) {
      throw new WatchRequestError(field, `pattern for ${field} is longer than ${MAX_PATTERN_BYTES} bytes`);
    }
    let re: Re2;
    try {
      re = Re2.compile(pattern, { maxInstructions: left });
    } catch (err) {
      if (!(err instanceof Re2SyntaxError)) throw err;
      const why = err.message.startsWith("expression too large")
        ? `expression too large (a request's filters together may compile to at most ${MAX_FILTER_INSTRUCTIONS} NFA instructions)`
        : err.message;
      throw new WatchRequestError(field, `invalid regex for ${field}: ${why}`);
    }
    left -= re.instructions;
    out[key] = new FieldFilter(key, re);
  }
  return out;
}

/** AND of all filters; an absent document field is matched as "". Stops once the budget is exceeded. */
export function matchFilters(filters: CompiledFilters, doc: EventDocument, budget?: FilterBudget): boolean {
  for (const key of FILTER_FIELDS) {
    const f = filters[key];
    if (!f) continue;
    if (budget?.exceeded || !f.test(doc[key] ?? "", budget)) return false;
  }
  return true;
}
