// Who may call what: the bearer token ([APIServer] Token) compared in constant
// time, and the rule for state-changing routes (tracer control, on-demand
// AutoTracing captures): with a token it must be sent; without one only
// loopback peers may change state.

import type { ConnInfo } from "./transport.ts";
import { jsonResponse } from "./json.ts";

const encoder = new TextEncoder();

/** Constant-time comparison, so response timing does not reveal how much of a token matched. */
export function sameToken(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  // The loop runs over the presented token only: its time depends on nothing secret.
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ (y.length ? y[i % y.length] : 0);
  return diff === 0;
}

/** Undefined when the request carries the token (or none is configured), else the 401 to answer with. */
export function checkToken(req: Request, token: string | undefined): Response | undefined {
  if (!token) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization") ?? "");
  if (m && sameToken(m[1].trim(), token)) return undefined;
  const res = jsonResponse(401, { error: "missing or wrong bearer token" });
  res.headers.set("www-authenticate", 'Bearer realm="huatuo-bamai"');
  return res;
}

/** 127.0.0.0/8, ::1 and their v4-mapped forms: peers on this host. */
export function isLoopback(addr: Deno.NetAddr | undefined): boolean {
  if (!addr) return false;
  const h = addr.hostname.toLowerCase().replace(/^::ffff:/, "");
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === "::1";
}

/**
 * Undefined when a state-changing request may proceed: with a token it must
 * carry it; without one only loopback peers may change state.
 */
export function authorizeChange(
  req: Request,
  info: ConnInfo | undefined,
  token: string | undefined,
): Response | undefined {
  if (token) return checkToken(req, token);
  if (isLoopback(info?.remoteAddr)) return undefined;
  return jsonResponse(403, {
    error: "state-changing requests from other hosts need a bearer token; set [APIServer] Token " +
      "(or HUATUO_BAMAI_API_TOKEN) — without one only loopback peers may change state",
  });
}
