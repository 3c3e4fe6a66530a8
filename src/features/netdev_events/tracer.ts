// Link state changes of the devices in EventTracing.Netdev.DeviceList, from
// rtnetlink notifications (RTMGRP_LINK multicast, RTM_NEWLINK / RTM_DELLINK)
// read from a non-blocking netlink socket without blocking the event loop.
//
// On start the tracer dumps every link and emits one "netdev_events" event
// per listed device present (start: true, linkstatus = its current admin and
// carrier state); afterwards only changes are events (start: false). An empty
// DeviceList means no devices (seed): the tracer then runs idle. A listed
// device that appears later is compared with "down": it reports when it comes
// up. When the kernel drops notifications (ENOBUFS: socket buffer full) the
// tracer re-reads every link, reports what changed meanwhile, and counts it.
//
// linkstatus: the seed shows two spellings, "linkStatusAdminDown,
// linkStatusCarrierDown" in the tracer's own example and linkstatus_admindown
// / _adminup / _carrierup / _carrierdown in the newer list of "possible
// values" (hardware errors chapter). We use the listed values — the newer,
// enumerated contract a consumer would match on — and, as the older example
// shows, join several with ", " when one notification changes both states
// (an admin down also drops the carrier).
//
// admin = IFF_UP; carrier = IFF_LOWER_UP, which the kernel sets only for a
// running device with carrier (dev_get_flags), so it changes in the same
// notification as the admin state and does not wait for the linkwatch
// operstate update.

import { ethtoolDriverInfo, RtNetlinkMonitor } from "../../../ffi/netlink.ts";
import { readLinkStates } from "../../host/rtnetlink_read.ts";
import {
  IFF_LOWER_UP,
  IFF_UP,
  type LinkState,
  parseLinkState,
  RTM_DELLINK,
  RTM_NEWLINK,
  RTMGRP_LINK,
} from "../../host/rtnetlink.ts";
import type { Logger } from "../../log/logger.ts";
import { counter, type Sample } from "../../core/sample.ts";
import type { Tracer, TracerContext } from "../../tracing/manager.ts";
import type { EventSink } from "../../events/sink.ts";

export const TRACER_NAME = "netdev_events";

export const LINK_STATUSES = [
  "linkstatus_adminup",
  "linkstatus_admindown",
  "linkstatus_carrierup",
  "linkstatus_carrierdown",
] as const;
export type LinkStatus = typeof LINK_STATUSES[number];

export interface DeviceState {
  index: number;
  name: string;
  admin: boolean;
  carrier: boolean;
  mac: string;
}

export function deviceState(l: LinkState): DeviceState {
  return {
    index: l.index,
    name: l.name,
    admin: (l.flags & IFF_UP) !== 0,
    carrier: (l.flags & IFF_LOWER_UP) !== 0,
    mac: l.mac,
  };
}

/** The state itself, for baseline events: admin first, then carrier. */
export function currentStatuses(s: DeviceState): LinkStatus[] {
  return [
    s.admin ? "linkstatus_adminup" : "linkstatus_admindown",
    s.carrier ? "linkstatus_carrierup" : "linkstatus_carrierdown",
  ];
}

/** What changed from @prev to @next; an absent device counts as admin and carrier down. */
export function statusChanges(prev: DeviceState | undefined, next: DeviceState | undefined): LinkStatus[] {
  const was = { admin: prev?.admin ?? false, carrier: prev?.carrier ?? false };
  const now = { admin: next?.admin ?? false, carrier: next?.carrier ?? false };
  const out: LinkStatus[] = [];
  if (was.admin !== now.admin) out.push(now.admin ? "linkstatus_adminup" : "linkstatus_admindown");
  if (was.carrier !== now.carrier) out.push(now.carrier ? "linkstatus_carrierup" : "linkstatus_carrierdown");
  return out;
}

export interface LinkChange {
  device: DeviceState;
  statuses: LinkStatus[];
  /** True for the baseline taken when the tracer starts. */
  start: boolean;
}

/**
 * The listed devices' last known state, fed with dumps and notifications;
 * returns what must be reported and counts the changes per device and status.
 */
export class LinkTracker {
  readonly #devices: ReadonlySet<string>;
  readonly #known = new Map<string, DeviceState>();
  /** device → status → changes seen (baselines are not changes). */
  readonly counts = new Map<string, Map<LinkStatus, number>>();

  constructor(devices: Iterable<string>) {
    this.#devices = new Set(devices);
    for (const d of this.#devices) this.counts.set(d, new Map(LINK_STATUSES.map((s) => [s, 0])));
  }

  get devices(): string[] {
    return [...this.#devices];
  }

  state(name: string): DeviceState | undefined {
    return this.#known.get(name);
  }

  /** Every listed device in the dump, as it is now (start: true). */
  baseline(links: readonly LinkState[]): LinkChange[] {
    this.#known.clear();
    const out: LinkChange[] = [];
    for (const l of links) {
      if (!this.#devices.has(l.name)) continue;
      const s = deviceState(l);
      this.#known.set(l.name, s);
      out.push({ device: s, statuses: currentStatuses(s), start: true });
    }
    return out;
  }

  /** A fresh dump after notifications were lost: what changed since the known state. */
  resync(links: readonly LinkState[]): LinkChange[] {
    const byName = new Map(links.filter((l) => this.#devices.has(l.name)).map((l) => [l.name, l]));
    const out: LinkChange[] = [];
    for (const name of this.#devices) {
      const l = byName.get(name);
      const next = l ? deviceState(l) : undefined;
      const change = this.#update(name, next);
      if (change) out.push(change);
    }
    return out;
  }

  /** One RTM_NEWLINK / RTM_DELLINK notification. */
  apply(type: number, link: LinkState): LinkChange[] {
    // A listed name renamed away (same ifindex, new name) is gone under its old name.
    for (const [name, s] of this.#known) {
      if (s.index === link.index && name !== link.name) this.#known.delete(name);
    }
    if (!this.#devices.has(link.name)) return [];
    // A deleted device was closed first (its RTM_NEWLINK already said down): forget it quietly.
    const change = this.#update(link.name, type === RTM_DELLINK ? undefined : deviceState(link), true);
    return change ? [change] : [];
  }

  #update(name: string, next: DeviceState | undefined, quietRemoval = false): LinkChange | undefined {
    const prev = this.#known.get(name);
    if (next) this.#known.set(name, next);
    else this.#known.delete(name);
    if (!next && quietRemoval) return undefined;
    const statuses = statusChanges(prev, next);
    if (statuses.length === 0) return undefined;
    const counts = this.counts.get(name)!;
    for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
    // A device that vanished is reported under its last known identity.
    return { device: next ?? prev!, statuses, start: false };
  }
}

export interface DriverInfo {
  driver: string;
  driver_version: string;
  firmware_version: string;
}

/** The seed's tracer_data for one change. */
export function netdevTracerData(c: LinkChange, driver: DriverInfo): Record<string, unknown> {
  return {
    ifname: c.device.name,
    index: c.device.index,
    linkstatus: c.statuses.join(", "),
    mac: c.device.mac,
    start: c.start,
    driver: driver.driver,
    driver_version: driver.driver_version,
    firmware_version: driver.firmware_version,
  };
}

const NO_DRIVER: DriverInfo = { driver: "", driver_version: "", firmware_version: "" };

export interface NetdevEventsOptions {
  /** EventTracing.Netdev.DeviceList. */
  devices: readonly string[];
  log: Logger;
  events?: EventSink;
  /** Socket buffer for notifications (tests shrink it to force ENOBUFS). */
  rcvbuf?: number;
}

/** The "netdev_events" tracer; see the file comment. */
export class NetdevEventsTracer implements Tracer {
  readonly name = TRACER_NAME;
  readonly tracker: LinkTracker;
  /** Times the kernel dropped notifications (ENOBUFS) and the tracer re-read every link. */
  overflows = 0;
  readonly #opts: NetdevEventsOptions;
  #monitor?: RtNetlinkMonitor;
  #loop?: Promise<void>;
  #baselined = false;

  constructor(opts: NetdevEventsOptions) {
    this.#opts = opts;
    this.tracker = new LinkTracker(opts.devices);
  }

  start(ctx: TracerContext): Promise<void> {
    const { log } = this.#opts;
    if (this.tracker.devices.length === 0) {
      log.info("EventTracing.Netdev.DeviceList is empty: no devices to watch", { tracer: this.name });
      return Promise.resolve();
    }
    // Subscribe before the dump, so no change falls between the two.
    const monitor = new RtNetlinkMonitor(RTMGRP_LINK, { rcvbuf: this.#opts.rcvbuf });
    let links: LinkState[];
    try {
      links = readLinkStates();
    } catch (err) {
      void monitor.close();
      return Promise.reject(err);
    }
    this.#monitor = monitor;
    // A restart after a failure reports what changed while it was down, not a second baseline.
    const changes = this.#baselined ? this.tracker.resync(links) : this.tracker.baseline(links);
    this.#baselined = true;
    const missing = this.tracker.devices.filter((d) => !links.some((l) => l.name === d));
    if (missing.length > 0) {
      log.warn("listed devices not present (yet)", { tracer: this.name, devices: missing.join(",") });
    }
    this.#emit(changes);
    this.#loop = this.#run(monitor, ctx);
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    const monitor = this.#monitor;
    this.#monitor = undefined;
    await monitor?.close();
    await this.#loop;
    this.#loop = undefined;
  }

  /** Counters for /metrics: per listed device and status, plus overflows. */
  samples(): Sample[] {
    const out: Sample[] = [];
    for (const [device, counts] of this.tracker.counts) {
      for (const [linkstatus, n] of counts) {
        out.push(counter(
          "netdev_events_total",
          "Link status changes of the devices in EventTracing.Netdev.DeviceList.",
          n,
          { device, linkstatus },
        ));
      }
    }
    out.push(counter(
      "netdev_events_netlink_overflow_total",
      "Times the kernel dropped link notifications (netlink ENOBUFS) and every link was re-read.",
      this.overflows,
    ));
    return out;
  }

  async #run(monitor: RtNetlinkMonitor, ctx: TracerContext): Promise<void> {
    try {
      while (await monitor.wait()) {
        const { messages, overrun } = monitor.read();
        for (const m of messages) {
          if (m.type !== RTM_NEWLINK && m.type !== RTM_DELLINK) continue;
          let link: LinkState;
          try {
            link = parseLinkState(m.payload);
          } catch (err) {
            this.#opts.log.warn("unparsable link notification", { tracer: this.name, error: String(err) });
            continue;
          }
          this.#emit(this.tracker.apply(m.type, link));
        }
        if (overrun) {
          this.overflows++;
          this.#opts.log.warn("link notifications lost (netlink ENOBUFS); re-reading every link", {
            tracer: this.name,
            overflows: this.overflows,
          });
          this.#emit(this.tracker.resync(readLinkStates()));
        }
      }
    } catch (err) {
      if (this.#monitor === monitor) ctx.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #emit(changes: readonly LinkChange[]): void {
    const { log, events } = this.#opts;
    for (const c of changes) {
      const driver = this.#driver(c.device.name);
      const fields = {
        tracer: this.name,
        device: c.device.name,
        linkstatus: c.statuses.join(", "),
        start: c.start,
      };
      if (c.start) log.info("link baseline", fields);
      else log.warn("link status changed", fields);
      events?.({ tracerName: this.name, data: netdevTracerData(c, driver) });
    }
  }

  #driver(name: string): DriverInfo {
    try {
      const info = ethtoolDriverInfo(name);
      if (!info) return NO_DRIVER;
      return { driver: info.driver, driver_version: info.version, firmware_version: info.firmwareVersion };
    } catch (err) {
      this.#opts.log.debug("no driver info", { tracer: this.name, device: name, error: String(err) });
      return NO_DRIVER;
    }
  }
}
