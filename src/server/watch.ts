// POST /v1/events/watch: kernel events as a Server-Sent Events stream of
// CloudEvents 1.0 envelopes (seed 6.2 "内核事件订阅"). Filters are RE2
// regexes, ANDed, matched in linear time (watch_filter.ts); `: ping` comments
// every KeepAliveInterval; a client that fails three consecutive writes is
// closed, and so is one whose filters use more than their time budget;
// beyond MaxClients new requests get HTTP 429.

import { z } from "zod";
import type { EventHub, HubEvent, Subscription } from "../events/hub.ts";
import type { Logger } from "../log/logger.ts";
import { BodyTooLargeError, readBodyText } from "./body.ts";
import { FilterBudget } from "./filter_budget.ts";
import { jsonResponse } from "./json.ts";
import { type CompiledFilters, compileFilters, matchFilters, WatchRequestError } from "./watch_filter.ts";

export {
  type CompiledFilters,
  FILTER_FIELDS,
  type FilterField,
  matchFilters,
  WatchRequestError,
} from "./watch_filter.ts";

export const WATCH_EVENT_TYPE = "tech.huatuo.kernel.event";

/** Consecutive failed writes after which a client is treated as gone (seed: 3). */
export const MAX_WRITE_FAILURES = 3;

/**
 * Events coalesced into one write to a client when several are waiting: all
 * of them. Each write waits for the socket (and, with small segments, for the
 * peer's delayed ACK: ~40 ms), so a per-write cap bounds a client's rate
 * (256 per write capped clients at ~6 k events/s, measured).
 */
const MAX_EVENTS_PER_WRITE = 65_536;

/** Recent coalesced writes kept for other clients pulling the same events. */
const MAX_SHARED_BATCHES = 32;

/** Largest request body read (a watch request is a few filters). */
export const MAX_WATCH_BODY_BYTES = 64 * 1024;

/**
 * A subscriber's filters may match for FILTER_BUDGET_MS in every
 * FILTER_WINDOW_MS (1% of the one JS thread). Remembered results make an
 * ordinary filter cost ~nothing per event, and a fresh value costs it ~1 µs
 * (`^hungtask$` on a hostname-sized value), so only a pattern that is slow
 * on many new values comes near it. The worst single event
 * (MAX_FILTER_INSTRUCTIONS × MAX_FIELD_CHARS) takes 4-16 ms, so such a
 * subscriber is cut off after one to three events; the 10 ms absorb a
 * garbage-collection pause landing inside a timed match.
 */
export const FILTER_BUDGET_MS = 10;
export const FILTER_WINDOW_MS = 1000;

const watchRequestSchema = z.strictObject({
  filters: z.strictObject({
    tracer_name: z.string().optional(),
    hostname: z.string().optional(),
    container_hostname: z.string().optional(),
    container_host_namespace: z.string().optional(),
    region: z.string().optional(),
  }).nullish(),
  // Beyond the seed: also carry the event's tracer_data in the CloudEvent data.
  include_tracer_data: z.boolean().optional(),
});
export type WatchRequest = z.output<typeof watchRequestSchema>;

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

export interface WatchHandlerOptions {
  hub: EventHub;
  /** Node hostname used in the CloudEvents source "/huatuo/{hostname}/{tracer_name}". */
  hostname: string;
  /** config.EventsWatch.MaxClients */
  maxClients: number;
  /** config.EventsWatch.KeepAliveInterval, in seconds (fractions allowed for tests). */
  keepAliveSec: number;
  log: Logger;
  /** Matching time each subscriber's filters may use per window; default FILTER_BUDGET_MS per FILTER_WINDOW_MS. */
  filterBudget?: { limitMs: number; windowMs: number };
}

export interface WatchOptions {
  filters: CompiledFilters;
  includeTracerData: boolean;
}

/** Parse and validate a request body; an empty body means no filters. */
export function parseWatchRequest(body: string): CompiledFilters {
  return parseWatchOptions(body).filters;
}

/** Parse and validate a request body: its filters and stream options. */
export function parseWatchOptions(body: string): WatchOptions {
  let raw: unknown = {};
  if (body.trim() !== "") {
    try {
      raw = JSON.parse(body);
    } catch (err) {
      throw new WatchRequestError("body", `invalid JSON body: ${(err as Error).message}`);
    }
  }
  const parsed = watchRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys") path.push(issue.keys[0]);
    const field = path.length ? path.join(".") : "body";
    throw new WatchRequestError(field, `invalid field ${field}: ${issue.message}`);
  }
  return {
    filters: compileFilters(parsed.data.filters ?? {}),
    includeTracerData: parsed.data.include_tracer_data === true,
  };
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

function parseLastEventId(req: Request): number | undefined {
  const raw = req.headers.get("last-event-id")?.trim();
  if (!raw || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

export interface WatchHandler {
  (req: Request): Promise<Response>;
  /** Ends every open stream at once (agent shutdown): a graceful HTTP shutdown then need not wait for them. */
  closeAll(): void;
}

export function createWatchHandler(opts: WatchHandlerOptions): WatchHandler {
  const encoder = new TextEncoder();
  // Every client receives the same bytes for an event: encode it once per
  // variant, not once per client (100 clients at 10k events/s).
  const encoded = [new WeakMap<HubEvent, Uint8Array>(), new WeakMap<HubEvent, Uint8Array>()];
  const bytesOf = (ev: HubEvent, withData: boolean): Uint8Array => {
    const cache = encoded[withData ? 1 : 0];
    let b = cache.get(ev);
    if (!b) {
      b = encoder.encode(formatSseEvent(ev, opts.hostname, withData));
      cache.set(ev, b);
    }
    return b;
  };
  // Clients that keep up pull the same run of events in the same turn: build
  // each batch once and share it (100 clients at 10k events/s otherwise
  // allocate ~400 MB/s of copies, and the garbage collector stalls the loop).
  const batches = new Map<string, Uint8Array>();
  const batchOf = (first: HubEvent, rest: HubEvent[], variant: string): Uint8Array => {
    const last = rest[rest.length - 1];
    const key = `${variant}|${first.seq}|${last.seq}|${rest.length}`;
    let out = batches.get(key);
    if (!out) {
      const withData = variant.startsWith("1");
      const parts = [bytesOf(first, withData), ...rest.map((e) => bytesOf(e, withData))];
      out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.byteLength;
      }
      batches.set(key, out);
      if (batches.size > MAX_SHARED_BATCHES) batches.delete(batches.keys().next().value!);
    }
    return out;
  };
  const { limitMs, windowMs } = opts.filterBudget ??
    { limitMs: FILTER_BUDGET_MS, windowMs: FILTER_WINDOW_MS };
  let clients = 0;
  let nextClientId = 0;
  const open = new Set<(why: string, abort: boolean) => void>();

  const handler = async (req: Request): Promise<Response> => {
    if (req.method !== "POST") {
      return new Response(JSON.stringify({ error: "method not allowed" }) + "\n", {
        status: 405,
        headers: { "content-type": "application/json; charset=utf-8", allow: "POST" },
      });
    }
    let filters: CompiledFilters;
    let includeTracerData: boolean;
    let variant: string;
    try {
      ({ filters, includeTracerData } = parseWatchOptions(await readBodyText(req, MAX_WATCH_BODY_BYTES)));
      // Clients with the same filters and options get byte-identical batches
      // (JSON: a pattern containing "|" or "=" cannot alias another filter set).
      variant = `${includeTracerData ? 1 : 0}|${
        JSON.stringify(Object.entries(filters).map(([k, f]) => [k, f.source]).sort())
      }`;
    } catch (err) {
      if (err instanceof BodyTooLargeError) return jsonResponse(413, { error: err.message });
      if (err instanceof WatchRequestError) {
        return jsonResponse(400, { error: err.message, field: err.field });
      }
      return jsonResponse(400, { error: `reading body: ${(err as Error).message}`, field: "body" });
    }
    if (req.signal.aborted) return jsonResponse(499, { error: "client closed request" });
    // Check and reserve with no await in between, so the limit holds under concurrency.
    if (clients >= opts.maxClients) {
      return jsonResponse(429, { error: `too many watch clients (max ${opts.maxClients})` });
    }
    clients++;
    const clientId = ++nextClientId;

    // Filters run inside the hub's publish(), for every event (and, on
    // subscribe, for the replayed ones): once over budget they stop matching,
    // and the client is cut off as soon as publish() returns.
    const budget = new FilterBudget(limitMs, windowMs);
    const sub: Subscription = opts.hub.subscribe({
      lastEventId: parseLastEventId(req),
      filter: (doc) => {
        if (budget.exceeded) return false;
        const ok = matchFilters(filters, doc, budget);
        if (!budget.exceeded) return ok;
        queueMicrotask(cutOffOverBudget);
        return false;
      },
    });
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    let timer: ReturnType<typeof setInterval> | undefined;
    let done = false;
    let failures = 0;

    /** Ends this stream; `abort` errors it so the connection is dropped even if the client is not reading. */
    const finish = (why: string, abort = false) => {
      if (done) return;
      done = true;
      clients--;
      open.delete(finish);
      clearInterval(timer);
      req.signal.removeEventListener("abort", onAbort);
      sub.close();
      try {
        if (abort) controller?.error(new Error(why));
        else controller?.close();
      } catch {
        // already closed or errored by the consumer
      }
      opts.log.info("events watch client disconnected", { client: clientId, reason: why, clients });
    };
    open.add(finish);
    const onAbort = () => finish("client gone");
    function cutOffOverBudget() {
      if (done) return;
      const reason = `filters used more than ${FILTER_BUDGET_MS} ms in ${FILTER_WINDOW_MS} ms (${
        budget.spentMs.toFixed(1)
      } ms)`;
      opts.hub.countFilterBudgetCutOff();
      opts.log.warn("events watch client cut off: filter budget exceeded", { client: clientId, reason });
      finish(reason, true);
    }

    /** Enqueue unless the client is backed up; MAX_WRITE_FAILURES in a row closes it. */
    const write = (text: string) => {
      if (done || !controller) return;
      let ok = false;
      const size = controller.desiredSize;
      if (size !== null && size > 0) {
        try {
          controller.enqueue(encoder.encode(text));
          ok = true;
        } catch {
          ok = false;
        }
      }
      if (ok) {
        failures = 0;
        return;
      }
      if (++failures >= MAX_WRITE_FAILURES) {
        opts.hub.countSlowClient();
        finish(`${MAX_WRITE_FAILURES} consecutive failed writes`, true);
      }
    };

    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        timer = setInterval(() => write(PING), Math.max(1, opts.keepAliveSec * 1000));
        sub.onClose((reason) => {
          if (reason === "slow") {
            opts.log.warn("events watch client too slow, cut off", { client: clientId });
            finish("queue full");
          }
        });
      },
      async pull(c) {
        const ev = await sub.next();
        if (done) return;
        if (ev === null) {
          finish("subscription closed");
          return;
        }
        // Whatever else queued up meanwhile goes out in the same write.
        const more = sub.takeAvailable(MAX_EVENTS_PER_WRITE - 1);
        c.enqueue(more.length === 0 ? bytesOf(ev, includeTracerData) : batchOf(ev, more, variant));
        failures = 0;
      },
      cancel() {
        finish("stream cancelled");
      },
    }, { highWaterMark: 1 });

    req.signal.addEventListener("abort", onAbort);
    opts.log.info("events watch client connected", { client: clientId, clients });
    return new Response(stream, {
      status: 200,
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  };
  return Object.assign(handler, {
    closeAll: () => {
      for (const finish of [...open]) finish("agent shutting down", true);
    },
  });
}
