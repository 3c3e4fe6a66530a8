// The Included/Excluded filter shared by every MetricCollector section:
// no rules → keep all; only Excluded → drop matches; only Included → keep
// matches; both → keep what matches Included and not Excluded. Patterns are
// unanchored regular expressions, as in the seed configuration.

export class NameFilter {
  readonly #included?: RegExp;
  readonly #excluded?: RegExp;

  constructor(included = "", excluded = "") {
    if (included !== "") this.#included = new RegExp(included);
    if (excluded !== "") this.#excluded = new RegExp(excluded);
  }

  accepts(name: string): boolean {
    if (this.#included && !this.#included.test(name)) return false;
    if (this.#excluded && this.#excluded.test(name)) return false;
    return true;
  }
}

export const acceptAll = new NameFilter();
