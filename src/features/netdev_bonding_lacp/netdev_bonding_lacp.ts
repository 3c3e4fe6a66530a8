// LACP (IEEE 802.3ad) state of bonding interfaces, from /proc/net/bonding/*.
// The seed hooks the bonding driver with a kprobe; kprobes are unavailable on
// the kernels we target, and the driver publishes every bit of LACP state we
// care about in its procfs file, so this tracer polls those files (through
// HostFs, so --procfs-prefix fixture trees work) and emits one
// "netdev_bonding_lacp" event with the whole file when the LACP-relevant part
// of an 802.3ad bond changes: bond MII status, the active aggregator, and per
// slave its MII status, link failures, aggregator, churn state and the
// actor/partner LACPDU details. Settings (delays, hash policy, queue ids) and
// the first sight of a bond are not events: the first is a baseline, logged.
//
// No 802.3ad bond (or no bonding driver at all) is not an error: bonds are
// often created after the agent starts (NetworkManager, ifup), so the tracer
// stays running, says once in the log that it is idle, and keeps rescanning.

import { type HostFs, MAX_PROC_FILE_BYTES } from "../../host/fs.ts";
import { readTextFileBounded } from "../../io/read.ts";
import type { Logger } from "../../log/logger.ts";
import type { Tracer, TracerContext } from "../../tracing/manager.ts";
import type { EventSink } from "../../events/sink.ts";
import { eventsFeature } from "../feature.ts";

export const TRACER_NAME = "netdev_bonding_lacp";
export const DEFAULT_INTERVAL_MS = 2000;

const LACP_MODE = "IEEE 802.3ad";

/** One /proc/net/bonding/<bond> file as flat "section.key" → value pairs. */
export interface BondingInfo {
  /** "Bonding Mode" line, e.g. "IEEE 802.3ad Dynamic link aggregation". */
  mode: string;
  /** Bond-level keys; lines of "Active Aggregator Info:" are prefixed "Active Aggregator ". */
  master: Map<string, string>;
  /** Slave name → its keys; LACPDU details are prefixed "actor " / "partner ". */
  slaves: Map<string, Map<string, string>>;
}

/**
 * Parses the bonding driver's procfs text (drivers/net/bonding/bond_procfs.c).
 * Lines are "Key: value"; indented lines belong to the header line before
 * them ("Active Aggregator Info:", "details actor lacp pdu:", ...).
 */
export function parseBonding(text: string): BondingInfo {
  const master = new Map<string, string>();
  const slaves = new Map<string, Map<string, string>>();
  let section = master;
  let prefix = "";
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    const indented = /^\s/.test(raw);
    const line = raw.trim();
    if (!indented) prefix = "";
    const noAgg = /^bond \S+ has no active aggregator$/.exec(line);
    if (noAgg) {
      master.set("Active Aggregator", "none");
      continue;
    }
    // "Key: value", or "Key:" heading indented lines; keys may hold colons ("(xx::xx form)").
    const sep = line.indexOf(": ");
    const colon = sep >= 0 ? sep : line.endsWith(":") ? line.length - 1 : -1;
    if (colon < 0) continue; // "802.3ad info" and other headings
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!indented && key === "Slave Interface") {
      section = new Map();
      slaves.set(value, section);
      continue;
    }
    if (!indented && value === "") {
      // A header for the indented lines that follow.
      if (key === "Active Aggregator Info") prefix = "Active Aggregator ";
      else if (key === "details actor lacp pdu") prefix = "actor ";
      else if (key === "details partner lacp pdu") prefix = "partner ";
      else prefix = `${key} `;
      continue;
    }
    if (key.startsWith("Ethernet Channel Bonding Driver")) continue;
    section.set(prefix + key, value);
  }
  return { mode: master.get("Bonding Mode") ?? "", master, slaves };
}

export function isLacp(info: BondingInfo): boolean {
  return info.mode.startsWith(LACP_MODE);
}

// What makes an LACP state; anything else (delays, hash policy, LACP rate,
// queue ids, speed) is configuration or follows from these.
const MASTER_KEYS = [
  "Bonding Mode",
  "MII Status",
  "Active Aggregator",
  "Active Aggregator Aggregator ID",
  "Active Aggregator Number of ports",
  "Active Aggregator Actor Key",
  "Active Aggregator Partner Key",
  "Active Aggregator Partner Mac Address",
];
const SLAVE_KEYS = [
  "MII Status",
  "Link Failure Count",
  "Aggregator ID",
  "Actor Churn State",
  "Partner Churn State",
  "Actor Churned Count",
  "Partner Churned Count",
  "actor port key",
  "actor port state",
  "partner system priority",
  "partner system mac address",
  "partner oper key",
  "partner port priority",
  "partner port number",
  "partner port state",
];

/** The LACP-relevant state as "where key" → value (absent keys are left out). */
export function lacpState(info: BondingInfo): Map<string, string> {
  const out = new Map<string, string>();
  for (const k of MASTER_KEYS) {
    const v = info.master.get(k);
    if (v !== undefined) out.set(k, v);
  }
  for (const [name, keys] of info.slaves) {
    out.set(`slave ${name}`, "present");
    for (const k of SLAVE_KEYS) {
      const v = keys.get(k);
      if (v !== undefined) out.set(`slave ${name} ${k}`, v);
    }
  }
  return out;
}

/** Human-readable differences between two LACP states ("key: old -> new"); empty when equal. */
export function lacpChanges(prev: ReadonlyMap<string, string>, next: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of next) {
    const old = prev.get(k);
    if (old !== v) out.push(`${k}: ${old ?? "(none)"} -> ${v}`);
  }
  for (const [k, v] of prev) {
    if (!next.has(k)) out.push(`${k}: ${v} -> (none)`);
  }
  return out;
}

/** The seed's tracer_data: the file's path on the host, a newline, then its content. */
export function bondingTracerData(bond: string, content: string): Record<string, unknown> {
  return { content: `/proc/net/bonding/${bond}\n${content}` };
}

export interface BondingLacpOptions {
  fs: HostFs;
  log: Logger;
  events?: EventSink;
  intervalMs?: number;
}

/** Polls /proc/net/bonding and emits an event per LACP state change of an 802.3ad bond. */
export class BondingLacpTracer implements Tracer {
  readonly name = TRACER_NAME;
  readonly #opts: BondingLacpOptions;
  readonly #intervalMs: number;
  /** 802.3ad bonds seen in the last scan → their LACP state. */
  readonly #known = new Map<string, Map<string, string>>();
  #timer?: ReturnType<typeof setTimeout>;
  #running = false;
  #inflight?: Promise<void>;
  #idleLogged = false;
  /** Completed scans (for tests and the status log). */
  scans = 0;

  constructor(opts: BondingLacpOptions) {
    this.#opts = opts;
    this.#intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
  }

  get dir(): string {
    return this.#opts.fs.proc("net/bonding");
  }

  /** 802.3ad bonds currently watched. */
  get bonds(): string[] {
    return [...this.#known.keys()].sort();
  }

  async start(ctx: TracerContext): Promise<void> {
    this.#running = true;
    this.#idleLogged = false;
    await this.#scan();
    const tick = async () => {
      this.#timer = undefined;
      if (!this.#running) return;
      try {
        await (this.#inflight = this.#scan());
      } catch (err) {
        if (this.#running) ctx.fail(err instanceof Error ? err : new Error(String(err)));
        return;
      } finally {
        this.#inflight = undefined;
      }
      if (this.#running) this.#timer = setTimeout(tick, this.#intervalMs);
    };
    this.#timer = setTimeout(tick, this.#intervalMs);
  }

  /** Stops polling; resolves once a scan in progress has finished. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inflight?.catch(() => {});
  }

  /** Bond names under /proc/net/bonding; none when the bonding driver is not loaded. */
  async #listBonds(): Promise<string[]> {
    const names: string[] = [];
    try {
      // Hidden names are never bonds (the driver names files after interfaces).
      for await (const e of Deno.readDir(this.dir)) if (!e.name.startsWith(".")) names.push(e.name);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw new Error(`${this.dir}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return names.sort();
  }

  async #scan(): Promise<void> {
    const { log, events } = this.#opts;
    const seen = new Set<string>();
    for (const bond of await this.#listBonds()) {
      let content: string;
      try {
        content = await readTextFileBounded(`${this.dir}/${bond}`, MAX_PROC_FILE_BYTES);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue; // removed between readdir and read
        throw new Error(`${this.dir}/${bond}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const info = parseBonding(content);
      if (!isLacp(info)) continue;
      seen.add(bond);
      const state = lacpState(info);
      const prev = this.#known.get(bond);
      this.#known.set(bond, state);
      if (prev === undefined) {
        log.info("watching 802.3ad bond", {
          tracer: this.name,
          bond,
          mii_status: info.master.get("MII Status"),
          aggregator: info.master.get("Active Aggregator Aggregator ID") ?? "none",
          slaves: [...info.slaves.keys()].join(","),
        });
        continue;
      }
      const changes = lacpChanges(prev, state);
      if (changes.length === 0) continue;
      log.warn("bond LACP state changed", { tracer: this.name, bond, changes: changes.join("; ") });
      events?.({ tracerName: this.name, data: bondingTracerData(bond, content) });
    }
    for (const bond of [...this.#known.keys()]) {
      if (seen.has(bond)) continue;
      this.#known.delete(bond);
      log.info("802.3ad bond gone", { tracer: this.name, bond });
    }
    if (this.#known.size === 0 && !this.#idleLogged) {
      this.#idleLogged = true;
      log.info("no IEEE 802.3ad bond; idle, rescanning", {
        tracer: this.name,
        dir: this.dir,
        interval_ms: this.#intervalMs,
      });
    } else if (this.#known.size > 0) {
      this.#idleLogged = false;
    }
    this.scans++;
  }
}

export function netdevBondingLacpTracer(
  ctx: { fs: HostFs; log: Logger; events?: EventSink },
  intervalMs?: number,
): BondingLacpTracer {
  return new BondingLacpTracer({ fs: ctx.fs, log: ctx.log, events: ctx.events, intervalMs });
}

export default eventsFeature("netdev_bonding_lacp", (ctx) => netdevBondingLacpTracer(ctx));
