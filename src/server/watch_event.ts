// The watch stream's wire format: each event as a CloudEvents 1.0 envelope
// (seed 6.2 "内核事件订阅") in one SSE message, encoded once per variant and
// shared by every client that receives it.

import type { HubEvent } from "../events/hub.ts";

export const WATCH_EVENT_TYPE = "tech.huatuo.kernel.event";

/** The seed's WatchEventData: the event record without tracer_data. */
export interface WatchEventData {
  hostname: string;
  region: string;
  observed_timestamp: string;
  tracer_name: string;
  tracer_id: string;
  tracer_run_type: string;
  container_id?: string;
  container_hostname?: string;
  container_host_namespace?: string;
  container_type?: string;
  container_qos?: string;
  /** Only when the request asked for it with "include_tracer_data": true. */
  tracer_data?: Record<string, unknown>;
}

export interface CloudEvent {
  specversion: "1.0";
  id: string;
  source: string;
  type: typeof WATCH_EVENT_TYPE;
  datacontenttype: "application/json";
  time: string;
  data: WatchEventData;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?\s?(Z|[+-]\d{2}:?\d{2})$/;

/**
 * Parse "2025-06-11 16:05:16.251 +0800" (tracer_time) or RFC 3339 into UTC
 * pieces: whole seconds and the fraction digits, so precision beyond
 * milliseconds survives. Undefined when the text is neither.
 */
function parseTime(s: string | undefined): { secs: Date; frac: string } | undefined {
  const m = s ? RFC3339.exec(s) : null;
  if (!m) return undefined;
  let zone = m[4];
  if (zone !== "Z" && !zone.includes(":")) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const secs = new Date(`${m[1]}T${m[2]}${zone}`);
  if (Number.isNaN(secs.getTime())) return undefined;
  return { secs, frac: (m[3] ?? "").replace(/0+$/, "") };
}

function eventTime(ev: HubEvent): { secs: Date; frac: string } {
  const t = parseTime(ev.doc.tracer_time) ?? parseTime(ev.doc.uploaded_time);
  if (t) return t;
  const ms = ev.publishedAt.getUTCMilliseconds();
  const secs = new Date(ev.publishedAt.getTime() - ms);
  return { secs, frac: String(ms).padStart(3, "0").replace(/0+$/, "") };
}

function utcSeconds(d: Date): string {
  return d.toISOString().slice(0, 19);
}

/** Wrap a published event in the seed's CloudEvents 1.0 envelope. */
export function toCloudEvent(ev: HubEvent, hostname: string, includeTracerData = false): CloudEvent {
  const { secs, frac } = eventTime(ev);
  const doc = ev.doc;
  const data: WatchEventData = {
    hostname: doc.hostname,
    region: doc.region,
    observed_timestamp: `${utcSeconds(secs)}Z`,
    tracer_name: doc.tracer_name,
    tracer_id: doc.tracer_id,
    tracer_run_type: doc.tracer_type,
  };
  for (
    const key of [
      "container_id",
      "container_hostname",
      "container_host_namespace",
      "container_type",
      "container_qos",
    ] as const
  ) {
    const v = doc[key];
    if (v !== undefined && v !== "") data[key] = v;
  }
  if (includeTracerData) data.tracer_data = doc.tracer_data;
  return {
    specversion: "1.0",
    id: ev.id,
    source: `/huatuo/${hostname}/${doc.tracer_name}`,
    type: WATCH_EVENT_TYPE,
    datacontenttype: "application/json",
    time: `${utcSeconds(secs)}${frac ? "." + frac : ""}Z`,
    data,
  };
}

/** One SSE message: `id: <seq>` then `data: <CloudEvent JSON>`. */
export function formatSseEvent(ev: HubEvent, hostname: string, includeTracerData = false): string {
  return `id: ${ev.seq}\ndata: ${JSON.stringify(toCloudEvent(ev, hostname, includeTracerData))}\n\n`;
}

export const PING = ": ping\n";

/** Recent coalesced writes kept for other clients pulling the same events. */
const MAX_SHARED_BATCHES = 32;

/**
 * Encodes events for clients: every client receives the same bytes for an
 * event, so each is encoded once per variant (with or without tracer_data),
 * not once per client (100 clients at 10k events/s); and clients that keep
 * up pull the same run of events in the same turn, so each batch is built
 * once and shared (per-client copies allocated ~400 MB/s, and the garbage
 * collector stalled the loop).
 */
export class SseEncoder {
  readonly #encoder = new TextEncoder();
  readonly #encoded = [new WeakMap<HubEvent, Uint8Array>(), new WeakMap<HubEvent, Uint8Array>()];
  readonly #batches = new Map<string, Uint8Array>();

  constructor(readonly hostname: string) {}

  bytesOf(ev: HubEvent, withData: boolean): Uint8Array {
    const cache = this.#encoded[withData ? 1 : 0];
    let b = cache.get(ev);
    if (!b) {
      b = this.#encoder.encode(formatSseEvent(ev, this.hostname, withData));
      cache.set(ev, b);
    }
    return b;
  }

  /** `first` and `rest` as one write, shared by clients of the same `variant` (see WatchClient). */
  batchOf(first: HubEvent, rest: HubEvent[], variant: string, withData: boolean): Uint8Array {
    const last = rest[rest.length - 1];
    const key = `${variant}|${first.seq}|${last.seq}|${rest.length}`;
    let out = this.#batches.get(key);
    if (!out) {
      const parts = [this.bytesOf(first, withData), ...rest.map((e) => this.bytesOf(e, withData))];
      out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.byteLength;
      }
      this.#batches.set(key, out);
      if (this.#batches.size > MAX_SHARED_BATCHES) this.#batches.delete(this.#batches.keys().next().value!);
    }
    return out;
  }
}
