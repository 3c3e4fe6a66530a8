// [[AutoTracing.<X>.Filter.Included]] / [[...Excluded]]: which containers a
// per-container trigger watches (huatuo-bamai.conf): no rules, all of them;
// Excluded only, all but the matches; Included only, only the matches; both,
// the Included matches that no Excluded rule matches. A rule matches when its
// Pattern (unanchored) matches the container's field; an empty Pattern is no
// rule.

import type { ContainerFilter } from "../config/schema.ts";
import { type Container, containerEventFields } from "../pod/container.ts";

interface Rule {
  readonly field: string;
  readonly re: RegExp;
}

function compile(rules: ContainerFilter["Included"]): Rule[] {
  return rules.filter((r) => r.Pattern !== "").map((r) => ({ field: r.Field, re: new RegExp(r.Pattern) }));
}

export class ContainerFilterRules {
  readonly #included: Rule[];
  readonly #excluded: Rule[];

  constructor(filter: ContainerFilter) {
    this.#included = compile(filter.Included);
    this.#excluded = compile(filter.Excluded);
  }

  /** Whether the trigger watches a container with these document fields. */
  admitsFields(fields: Readonly<Record<string, string>>): boolean {
    const hit = (r: Rule) => r.re.test(fields[r.field] ?? "");
    if (this.#included.length > 0 && !this.#included.some(hit)) return false;
    return !this.#excluded.some(hit);
  }

  admits(c: Container): boolean {
    return this.admitsFields(containerEventFields(c));
  }
}
