// The collector registry: runs every enabled collector concurrently per scrape,
// adds the `huatuo_bamai_` prefix and the host/region labels, and reports
// per-collector duration and success. A failing collector never fails the scrape.

import type { Logger } from "../log/logger.ts";
import type { Collector } from "../core/collector.ts";
import { type Family, renderFamilies, type Series } from "./exposition.ts";
import type { Labels, Sample } from "../core/sample.ts";

export const METRIC_PREFIX = "huatuo_bamai_";

export interface CollectorResult {
  readonly name: string;
  readonly samples: Sample[];
  readonly durationSeconds: number;
  readonly error?: string;
  /** The collector's samples keep their names (no `huatuo_bamai_` prefix). */
  readonly unprefixed?: boolean;
}

export interface ScrapeResult {
  readonly text: string;
  readonly results: CollectorResult[];
  readonly seriesCount: number;
}

export class Registry {
  readonly #collectors: Collector[] = [];
  readonly #constLabels: Labels;
  readonly #log: Logger;
  /** Last error per collector, so a persistent failure logs once, not every scrape. */
  readonly #lastError = new Map<string, string>();

  constructor(constLabels: Labels, log: Logger) {
    this.#constLabels = constLabels;
    this.#log = log;
  }

  register(collector: Collector): void {
    if (this.#collectors.some((c) => c.name === collector.name)) {
      throw new Error(`collector ${collector.name} registered twice`);
    }
    this.#collectors.push(collector);
  }

  get names(): string[] {
    return this.#collectors.map((c) => c.name);
  }

  /** Runs all collectors concurrently; never rejects. */
  async collect(): Promise<CollectorResult[]> {
    return await Promise.all(this.#collectors.map((c) => this.#run(c)));
  }

  /**
   * One collection serves every scrape that arrives while it runs: 50
   * concurrent scrapers cost one collection, not 50 queued ones (and two
   * Prometheus replicas read the same values).
   */
  scrape(): Promise<ScrapeResult> {
    this.#inflight ??= this.#scrapeNow().finally(() => this.#inflight = undefined);
    return this.#inflight;
  }

  #inflight: Promise<ScrapeResult> | undefined;

  async #scrapeNow(): Promise<ScrapeResult> {
    const results = await this.collect();
    const families = this.#families(results);
    let seriesCount = 0;
    for (const f of families.values()) seriesCount += f.series.length;
    return { text: renderFamilies(families.values()), results, seriesCount };
  }

  close(): void {
    for (const c of this.#collectors) {
      try {
        c.close?.();
      } catch (err) {
        this.#log.warn("collector close failed", { collector: c.name, error: String(err) });
      }
    }
  }

  async #run(c: Collector): Promise<CollectorResult> {
    const start = performance.now();
    try {
      const samples = await c.collect();
      if (this.#lastError.delete(c.name)) this.#log.info("collector recovered", { collector: c.name });
      return {
        name: c.name,
        samples,
        durationSeconds: (performance.now() - start) / 1000,
        unprefixed: c.unprefixed,
      };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (this.#lastError.get(c.name) !== error) {
        // Errors that repeat something already logged elsewhere (a tracer that is not running) say so at Warn.
        const quiet = typeof err === "object" && err !== null && (err as { quiet?: unknown }).quiet === true;
        (quiet ? this.#log.warn : this.#log.error)("collector failed", { collector: c.name, error });
        this.#lastError.set(c.name, error);
      } else {
        this.#log.debug("collector still failing", { collector: c.name, error });
      }
      return { name: c.name, samples: [], durationSeconds: (performance.now() - start) / 1000, error };
    }
  }

  // Collectors that reuse one label object per source (containerLabels) get
  // the same merged object back every scrape, so rendering can cache it too.
  #merged = new WeakMap<Labels, Labels>();

  #withConstLabels(labels: Labels): Labels {
    let merged = this.#merged.get(labels);
    if (!merged) {
      merged = { ...labels, ...this.#constLabels };
      this.#merged.set(labels, merged);
    }
    return merged;
  }

  #families(results: CollectorResult[]): Map<string, Family> {
    const families = new Map<string, Family>();
    const add = (s: Sample, from: string, unprefixed = false) => {
      const name = unprefixed ? s.name : METRIC_PREFIX + s.name;
      let f = families.get(name);
      if (!f) {
        f = { name, help: s.help, type: s.type, series: [] };
        families.set(name, f);
      } else if (f.type !== s.type) {
        this.#log.warn("sample type conflicts with its family; dropped", { collector: from, metric: name });
        return;
      }
      const labels: Labels = s.labels ? this.#withConstLabels(s.labels) : this.#constLabels;
      (f.series as Series[]).push({ labels, value: s.value });
    };
    for (const r of results) {
      for (const s of r.samples) add(s, r.name, r.unprefixed);
      add({
        name: "scrape_collector_duration_seconds",
        help: "huatuo-bamai: Duration of a collector scrape.",
        type: "gauge",
        value: r.durationSeconds,
        labels: { collector: r.name },
      }, r.name);
      add({
        name: "scrape_collector_success",
        help: "huatuo-bamai: Whether a collector succeeded.",
        type: "gauge",
        value: r.error === undefined ? 1 : 0,
        labels: { collector: r.name },
      }, r.name);
    }
    return families;
  }
}
