// What every route answers with: JSON bodies (errors included) with their
// length, and the route signature.

import type { ConnInfo } from "./transport.ts";

export type Route = (req: Request, info?: ConnInfo) => Response | Promise<Response>;

const encoder = new TextEncoder();

export function jsonResponse(status: number, body: unknown): Response {
  const bytes = encoder.encode(JSON.stringify(body) + "\n");
  return new Response(bytes, {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "content-length": String(bytes.length) },
  });
}
