// HTTP API on Deno.serve: /metrics, /healthz, /readyz, /version, tracer status
// and control, events watch. Every error is a JSON body with a 4xx/5xx status;
// a handler failure never takes the agent down.

import type { Logger } from "../log/logger.ts";
import { CONTENT_TYPE } from "../metrics/exposition.ts";
import type { Registry } from "../metrics/registry.ts";
import { TracerControlError, type TracerManager } from "../tracing/manager.ts";
import type { ListenAddr } from "./listen.ts";
import type { ContainerRegistry } from "../pod/container.ts";
import { containersRoute } from "./containers.ts";

export interface ServerDeps {
  registry: Registry;
  log: Logger;
  version: Record<string, string>;
  isReady: () => boolean;
  tracers?: TracerManager;
  /** POST /v1/events/watch (SSE); absent when events are not served. */
  watch?: Route;
  /** When non-empty, state-changing requests need "Authorization: Bearer <token>". */
  token?: string;
  /** GET /containers/json; absent when containers are not served. */
  containers?: ContainerRegistry;
}

export type Route = (req: Request) => Response | Promise<Response>;

export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

export function buildRoutes(deps: ServerDeps): Map<string, Map<string, Route>> {
  const routes = new Map<string, Map<string, Route>>();
  const add = (method: string, path: string, route: Route) => {
    if (!routes.has(path)) routes.set(path, new Map());
    routes.get(path)!.set(method, route);
  };
  add("GET", "/metrics", async (req) => {
    const { text } = await deps.registry.scrape();
    // Prometheus always asks for gzip; the exposition compresses ~6x.
    if (acceptsGzip(req)) {
      const body = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
      return new Response(body, {
        headers: { "content-type": CONTENT_TYPE, "content-encoding": "gzip", vary: "accept-encoding" },
      });
    }
    return new Response(text, { headers: { "content-type": CONTENT_TYPE, vary: "accept-encoding" } });
  });
  add("GET", "/healthz", () => jsonResponse(200, { status: "ok" }));
  add(
    "GET",
    "/readyz",
    () => deps.isReady() ? jsonResponse(200, { status: "ready" }) : jsonResponse(503, { status: "starting" }),
  );
  add("GET", "/version", () => jsonResponse(200, deps.version));
  add("GET", "/v1/tracers", () => jsonResponse(200, { tracers: deps.tracers?.statuses() ?? [] }));
  if (deps.watch) add("POST", "/v1/events/watch", deps.watch);
  if (deps.containers) add("GET", "/containers/json", containersRoute(deps.containers));
  return routes;
}

/** Constant-time comparison, so response timing does not reveal how much of a token matched. */
function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Undefined when the request may change state, else the 401 to answer with. */
export function checkToken(req: Request, token: string | undefined): Response | undefined {
  if (!token) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization") ?? "");
  if (m && sameToken(m[1].trim(), token)) return undefined;
  const res = jsonResponse(401, { error: "missing or wrong bearer token" });
  res.headers.set("www-authenticate", 'Bearer realm="huatuo-bamai"');
  return res;
}

const TRACER_PATH = /^\/v1\/tracers\/([A-Za-z0-9_.-]+)(?:\/(start|stop))?$/;

/** GET /v1/tracers/{name}; POST /v1/tracers/{name}/start and /stop (token-protected). */
async function tracerRoute(req: Request, path: string, deps: ServerDeps): Promise<Response | undefined> {
  const m = TRACER_PATH.exec(path);
  if (!m || !deps.tracers) return undefined;
  const [, name, action] = m;
  const want = action ? "POST" : "GET";
  if (req.method !== want && !(want === "GET" && req.method === "HEAD")) {
    const res = jsonResponse(405, { error: "method not allowed", method: req.method, allow: want });
    res.headers.set("allow", want);
    return res;
  }
  if (!action) {
    const status = deps.tracers.state(name);
    return status ? jsonResponse(200, status) : jsonResponse(404, { error: `no tracer named "${name}"` });
  }
  const denied = checkToken(req, deps.token);
  if (denied) return denied;
  try {
    const status = action === "start" ? await deps.tracers.start(name) : await deps.tracers.stop(name);
    deps.log.info(`tracer ${action} via API`, { tracer: name, state: status.state });
    return jsonResponse(200, status);
  } catch (err) {
    if (err instanceof TracerControlError) return jsonResponse(err.status, { error: err.message });
    throw err;
  }
}

export function acceptsGzip(req: Request): boolean {
  const accept = req.headers.get("accept-encoding");
  return accept !== null && /(^|,)\s*gzip\s*(;\s*q=(?!0(\.0*)?\s*($|,))[\d.]+)?\s*($|,)/i.test(accept);
}

export function createHandler(deps: ServerDeps): (req: Request) => Promise<Response> {
  const routes = buildRoutes(deps);
  return async (req) => {
    const url = new URL(req.url);
    const byMethod = routes.get(url.pathname);
    if (!byMethod) {
      try {
        const res = await tracerRoute(req, url.pathname, deps);
        if (res) return res;
      } catch (err) {
        deps.log.error("http handler failed", { path: url.pathname, error: String(err) });
        return jsonResponse(500, { error: "internal error" });
      }
      return jsonResponse(404, { error: "not found", path: url.pathname });
    }
    // HEAD is served by the GET handler; Deno drops the body.
    const route = byMethod.get(req.method === "HEAD" ? "GET" : req.method);
    if (!route) {
      const allow = [...byMethod.keys()].join(", ");
      const res = jsonResponse(405, { error: "method not allowed", method: req.method, allow });
      res.headers.set("allow", allow);
      return res;
    }
    try {
      return await route(req);
    } catch (err) {
      deps.log.error("http handler failed", { path: url.pathname, error: String(err) });
      return jsonResponse(500, { error: "internal error" });
    }
  };
}

export class ListenError extends Error {}

/** Starts the server; throws ListenError when the address cannot be bound. */
export function startServer(addr: ListenAddr, deps: ServerDeps): Deno.HttpServer<Deno.NetAddr> {
  const handler = createHandler(deps);
  try {
    return Deno.serve({
      hostname: addr.hostname,
      port: addr.port,
      onListen: ({ hostname, port }) =>
        deps.log.info("http server listening", { addr: `${hostname}:${port}` }),
      onError: (err) => {
        deps.log.error("http server error", { error: String(err) });
        return jsonResponse(500, { error: "internal error" });
      },
    }, handler);
  } catch (err) {
    const where = `${addr.hostname}:${addr.port}`;
    if (err instanceof Deno.errors.AddrInUse) {
      throw new ListenError(`listen ${where}: address already in use`);
    }
    throw new ListenError(`listen ${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
