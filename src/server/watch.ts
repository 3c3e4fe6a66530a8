// POST /v1/events/watch: kernel events as a Server-Sent Events stream of
// CloudEvents 1.0 envelopes (seed 6.2 "内核事件订阅"). Filters are RE2
// regexes, ANDed, matched in linear time (watch_filter.ts); `: ping` comments
// every KeepAliveInterval; a client that fails three consecutive writes is
// closed, and so is one whose filters use more than their time budget;
// beyond MaxClients new requests get HTTP 429.

import { z } from "zod";
import type { EventHub } from "../events/hub.ts";
import type { Logger } from "../log/logger.ts";
import { BodyTooLargeError, readBodyText } from "./body.ts";
import { jsonResponse } from "./json.ts";
import { type CompiledFilters, compileFilters, WatchRequestError } from "./watch_filter.ts";
import { SseEncoder } from "./watch_event.ts";
import { WatchClient } from "./watch_client.ts";

export {
  type CloudEvent,
  formatSseEvent,
  PING,
  toCloudEvent,
  WATCH_EVENT_TYPE,
  type WatchEventData,
} from "./watch_event.ts";
export { MAX_WRITE_FAILURES } from "./watch_client.ts";

export {
  type CompiledFilters,
  FILTER_FIELDS,
  type FilterField,
  matchFilters,
  WatchRequestError,
} from "./watch_filter.ts";

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

/** The request's options, or the JSON 4xx to answer with. */
async function readWatchRequest(req: Request): Promise<WatchOptions | Response> {
  try {
    return parseWatchOptions(await readBodyText(req, MAX_WATCH_BODY_BYTES));
  } catch (err) {
    if (err instanceof BodyTooLargeError) return jsonResponse(413, { error: err.message });
    if (err instanceof WatchRequestError) return jsonResponse(400, { error: err.message, field: err.field });
    return jsonResponse(400, { error: `reading body: ${(err as Error).message}`, field: "body" });
  }
}

/** Clients with the same filters and options get byte-identical batches (JSON: no pattern can alias another set). */
function variantOf(o: WatchOptions): string {
  return `${o.includeTracerData ? 1 : 0}|${
    JSON.stringify(Object.entries(o.filters).map(([k, f]) => [k, f.source]).sort())
  }`;
}

export function createWatchHandler(opts: WatchHandlerOptions): WatchHandler {
  const encoder = new SseEncoder(opts.hostname);
  const budget = opts.filterBudget ?? { limitMs: FILTER_BUDGET_MS, windowMs: FILTER_WINDOW_MS };
  const open = new Set<WatchClient>();
  let nextClientId = 0;

  const handler = async (req: Request): Promise<Response> => {
    if (req.method !== "POST") {
      const res = jsonResponse(405, { error: "method not allowed" });
      res.headers.set("allow", "POST");
      return res;
    }
    const request = await readWatchRequest(req);
    if (request instanceof Response) return request;
    if (req.signal.aborted) return jsonResponse(499, { error: "client closed request" });
    // Check and admit with no await in between, so the limit holds under concurrency.
    if (open.size >= opts.maxClients) {
      return jsonResponse(429, { error: `too many watch clients (max ${opts.maxClients})` });
    }
    const id = ++nextClientId;
    const client: WatchClient = new WatchClient({
      id,
      hub: opts.hub,
      log: opts.log,
      encoder,
      filters: request.filters,
      includeTracerData: request.includeTracerData,
      variant: variantOf(request),
      lastEventId: parseLastEventId(req),
      keepAliveSec: opts.keepAliveSec,
      budget,
      signal: req.signal,
      onDone: (reason) => {
        open.delete(client);
        opts.log.info("events watch client disconnected", { client: id, reason, clients: open.size });
      },
    });
    open.add(client);
    opts.log.info("events watch client connected", { client: id, clients: open.size });
    return client.response();
  };
  return Object.assign(handler, {
    closeAll: () => {
      for (const client of [...open]) client.finish("agent shutting down", true);
    },
  });
}
