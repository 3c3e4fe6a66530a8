// POST /v1/autotracing/{name}: an AutoTracing capture now, whatever the
// thresholds and the cooldown say. Optional JSON body
//   {"duration": <seconds>, "container_id": "<id or unique prefix>"}
// → 202 {"tracer_id": "..."}: the capture runs in the background and its
// document (tracer_type "manual") carries that tracer_id. Protected like
// tracer control (a token when configured, else loopback peers only). 400
// names the bad field, 409 while a capture of that kind runs (or the trigger
// is disabled or stopped), 413 for a body over 4 KiB.

import type { AutoTracingRegistry } from "../autotracing/registry.ts";
import { MAX_MANUAL_DURATION_SEC } from "../autotracing/tracer.ts";
import { ManualCaptureError, type ManualRequest } from "../autotracing/trigger.ts";
import type { Logger } from "../log/logger.ts";
import { BodyTooLargeError, readBodyText } from "./body.ts";
import { authorizeChange } from "./auth.ts";
import { jsonResponse, type Route } from "./json.ts";

/** A request body is a few dozen bytes. */
export const MAX_BODY_BYTES = 4096;

const ID_PREFIX = /^[0-9a-f]{1,64}$/i;
const FIELDS = ["duration", "container_id"];

/** The request a body asks for, or the 400 message naming the field. */
export function parseManualBody(text: string): ManualRequest | { error: string } {
  if (text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    return { error: `body: not JSON (${err instanceof Error ? err.message : err})` };
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { error: "body: expected a JSON object" };
  }
  const out: { durationSec?: number; containerId?: string } = {};
  for (const [key, value] of Object.entries(body)) {
    if (key === "duration") {
      if (typeof value !== "number" || !(value > 0 && value <= MAX_MANUAL_DURATION_SEC)) {
        return { error: `duration: expected seconds, a number > 0 and <= ${MAX_MANUAL_DURATION_SEC}` };
      }
      out.durationSec = value;
    } else if (key === "container_id") {
      if (typeof value !== "string" || !ID_PREFIX.test(value)) {
        return { error: "container_id: expected a container id or a prefix of one (1-64 hex digits)" };
      }
      out.containerId = value;
    } else {
      return { error: `${key}: unknown field (accepted: ${FIELDS.join(", ")})` };
    }
  }
  return out;
}

/** The route of one trigger's on-demand captures. */
export function autotracingRoute(
  name: string,
  deps: { registry: AutoTracingRegistry; token?: string; log: Logger },
): Route {
  return async (req, info) => {
    const denied = authorizeChange(req, info, deps.token);
    if (denied) {
      await req.body?.cancel().catch(() => {});
      return denied;
    }
    let text: string;
    try {
      text = await readBodyText(req, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return jsonResponse(413, { error: err.message });
      throw err;
    }
    const parsed = parseManualBody(text);
    if ("error" in parsed) return jsonResponse(400, { error: parsed.error });
    const tracer = deps.registry.get(name);
    if (!tracer) {
      const why = deps.registry.disabledReason(name);
      return why
        ? jsonResponse(409, { error: `${name} is ${why}` })
        : jsonResponse(404, { error: `no autotracing named "${name}"` });
    }
    try {
      const id = tracer.manual(parsed);
      deps.log.info("autotracing capture started via API", { tracer: name, tracer_id: id });
      return jsonResponse(202, { tracer_id: id });
    } catch (err) {
      if (err instanceof ManualCaptureError) return jsonResponse(err.status, { error: err.message });
      throw err;
    }
  };
}
