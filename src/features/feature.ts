// The collector interface (node_exporter model): every collector has a registry
// name, which is also the name users put in BlackList, and returns its samples
// when scraped. A collector throws when its source is missing, unreadable or
// garbled; the registry turns that into success=0 and keeps the scrape going.

import type { Config } from "../config/schema.ts";
import type { HostFs } from "../host/fs.ts";
import type { BpfRuntime } from "../bpf/tracer.ts";
import type { EventSink } from "../events/sink.ts";
import type { Logger } from "../log/logger.ts";
import type { Tracer } from "../tracing/manager.ts";
import type { ContainerRegistry } from "../pod/container.ts";
import type { Sample } from "../core/sample.ts";

export interface Collector {
  /** Registry name = BlackList name, e.g. `cpu_util`. */
  readonly name: string;
  collect(): Promise<Sample[]>;
  /** Releases sockets or other handles; called once on shutdown. */
  close?(): void;
  /**
   * A BPF-backed collector loads its programs through a tracer that the
   * tracing manager starts, restarts and reports on; collect() reads its maps.
   */
  readonly tracer?: Tracer;
}

export interface CollectorContext {
  readonly fs: HostFs;
  readonly config: Config;
  readonly log: Logger;
  /** The BPF object directory (`--bpf-dir`) and the loaded BPF tracers. */
  readonly bpf: BpfRuntime;
  /** Kernel events of tracers go here (local file + subscribers); absent in unit tests. */
  readonly events?: EventSink;
  /** Containers of this host (cgroup discovery + kubelet); absent in unit tests. */
  readonly containers?: ContainerRegistry;
}

export interface CollectorDefinition {
  readonly name: string;
  /** True when create() returns a collector with a tracer (shown as disabled when blacklisted). */
  readonly tracing?: boolean;
  create(ctx: CollectorContext): Collector;
}

export function defineCollector(
  name: string,
  create: (ctx: CollectorContext) => Omit<Collector, "name">,
  opts: { tracing?: boolean } = {},
): CollectorDefinition {
  return { name, tracing: opts.tracing, create: (ctx) => ({ name, ...create(ctx) }) };
}
