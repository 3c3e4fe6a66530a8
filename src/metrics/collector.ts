// The collector interface (node_exporter model): every collector has a registry
// name, which is also the name users put in BlackList, and returns its samples
// when scraped. A collector throws when its source is missing, unreadable or
// garbled; the registry turns that into success=0 and keeps the scrape going.

import type { Config } from "../config/schema.ts";
import type { HostFs } from "../host/fs.ts";
import type { Logger } from "../log/logger.ts";
import type { Sample } from "./sample.ts";

export interface Collector {
  /** Registry name = BlackList name, e.g. `cpu_util`. */
  readonly name: string;
  collect(): Promise<Sample[]>;
  /** Releases sockets or other handles; called once on shutdown. */
  close?(): void;
}

export interface CollectorContext {
  readonly fs: HostFs;
  readonly config: Config;
  readonly log: Logger;
}

export interface CollectorDefinition {
  readonly name: string;
  create(ctx: CollectorContext): Collector;
}

export function defineCollector(
  name: string,
  create: (ctx: CollectorContext) => Omit<Collector, "name">,
): CollectorDefinition {
  return { name, create: (ctx) => ({ name, ...create(ctx) }) };
}
