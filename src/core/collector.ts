// The collector interface (node_exporter model): a collector has a registry
// name, which is also the feature name users put in BlackList, and returns its
// samples when scraped. It throws when its source is missing, unreadable or
// garbled; the registry turns that into success=0 and keeps the scrape going.

import type { Sample } from "./sample.ts";

export interface Collector {
  /** Registry name = BlackList name, e.g. `cpu_util`. */
  readonly name: string;
  collect(): Promise<Sample[]>;
  /**
   * Standard exporter families (process_*) keep their names: every Prometheus exporter exposes them
   * unprefixed, and dashboards and alerts are written for those names.
   */
  readonly unprefixed?: boolean;
  /** Releases sockets or other handles; called once on shutdown. */
  close?(): void;
}
