// HTTP API: /metrics, /healthz, /readyz, /version, tracer status and control,
// events watch, containers, flame graphs of AutoTracing captures. Every error is a JSON body with a 4xx/5xx status;
// a handler failure never takes the agent down. The socket side (connection
// cap, timeouts, body limits) is transport.ts.
//
// Exposure (the agent listens on every interface by default):
// - read-only routes are open to any peer;
// - routes that change state (tracer start/stop, on-demand AutoTracing
//   captures) need the bearer token when
//   one is configured, and answer only loopback peers when none is: a node's
//   tracers cannot be switched off from another host by default;
// - POST /v1/events/watch is open (the seed's curl works as written) unless a
//   token is configured, then it needs the token too.

import type { Logger } from "../log/logger.ts";
import { CONTENT_TYPE } from "../metrics/exposition.ts";
import type { Registry } from "../metrics/registry.ts";
import { TracerControlError, type TracerManager } from "../tracing/manager.ts";
import type { ListenAddr } from "./listen.ts";
import type { ScrapeResult } from "../metrics/registry.ts";
import { type ConnInfo, DEFAULT_TRANSPORT, HttpTransport } from "./transport.ts";
import type { ContainerRegistry } from "../pod/container.ts";
import { containersRoute } from "./containers.ts";
import { type DocumentFinder, flamegraphRoute } from "./flamegraph.ts";
import { jsonResponse, type Route } from "./json.ts";
import type { AutoTracingRegistry } from "../autotracing/registry.ts";
import { autotracingRoute } from "./autotracing.ts";
import { authorizeChange, checkToken } from "./auth.ts";

export { jsonResponse, type Route } from "./json.ts";
export { authorizeChange, checkToken, isLoopback, sameToken } from "./auth.ts";

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
  /** GET /v1/flamegraph/{tracer_id} looks documents up here (the local store); absent: every id is a 404. */
  documents?: DocumentFinder;
  /** POST /v1/autotracing/{name} (token-protected); absent when AutoTracing is not served. */
  autotracing?: AutoTracingRegistry;
}

const encoder = new TextEncoder();

/** The exposition of one scrape, encoded once and gzipped at most once, shared by concurrent scrapers. */
interface Exposition {
  plain: Uint8Array;
  gzip?: Promise<Uint8Array>;
}

const expositions = new WeakMap<ScrapeResult, Exposition>();

function expositionOf(result: ScrapeResult): Exposition {
  let e = expositions.get(result);
  if (!e) {
    e = { plain: encoder.encode(result.text) };
    expositions.set(result, e);
  }
  return e;
}

async function gzipped(e: Exposition): Promise<Uint8Array> {
  e.gzip ??= new Response(
    new Blob([e.plain as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new CompressionStream("gzip"),
    ),
  ).arrayBuffer().then((b) => new Uint8Array(b));
  return await e.gzip;
}

export function buildRoutes(deps: ServerDeps): Map<string, Map<string, Route>> {
  const routes = new Map<string, Map<string, Route>>();
  const add = (method: string, path: string, route: Route) => {
    if (!routes.has(path)) routes.set(path, new Map());
    routes.get(path)!.set(method, route);
  };
  add("GET", "/metrics", async (req) => {
    const e = expositionOf(await deps.registry.scrape());
    // Prometheus always asks for gzip; the exposition compresses ~6x.
    const gzip = acceptsGzip(req);
    const body = gzip ? await gzipped(e) : e.plain;
    const headers: Record<string, string> = {
      "content-type": CONTENT_TYPE,
      "content-length": String(body.length),
      vary: "accept-encoding",
    };
    if (gzip) headers["content-encoding"] = "gzip";
    return new Response(body as Uint8Array<ArrayBuffer>, { headers });
  });
  add("GET", "/healthz", () => jsonResponse(200, { status: "ok" }));
  add(
    "GET",
    "/readyz",
    () => deps.isReady() ? jsonResponse(200, { status: "ready" }) : jsonResponse(503, { status: "starting" }),
  );
  add("GET", "/version", () => jsonResponse(200, deps.version));
  add("GET", "/v1/tracers", () => jsonResponse(200, { tracers: deps.tracers?.statuses() ?? [] }));
  const watch = deps.watch;
  if (watch) {
    add(
      "POST",
      "/v1/events/watch",
      (req, info) => (deps.token ? checkToken(req, deps.token) : undefined) ?? watch(req, info),
    );
  }
  if (deps.containers) add("GET", "/containers/json", containersRoute(deps.containers));
  // One route per trigger this agent knows (BlackList-disabled ones answer 409); other names are a 404.
  const autotracing = deps.autotracing;
  for (const name of autotracing?.names() ?? []) {
    add(
      "POST",
      `/v1/autotracing/${name}`,
      autotracingRoute(name, { registry: autotracing!, token: deps.token, log: deps.log }),
    );
  }
  return routes;
}

const TRACER_PATH = /^\/v1\/tracers\/([A-Za-z0-9_.-]+)(?:\/(start|stop))?$/;

/** GET /v1/tracers/{name}; POST /v1/tracers/{name}/start and /stop (token-protected). */
async function tracerRoute(
  req: Request,
  info: ConnInfo | undefined,
  path: string,
  deps: ServerDeps,
): Promise<Response | undefined> {
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
  const denied = authorizeChange(req, info, deps.token);
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

export function createHandler(deps: ServerDeps): (req: Request, info?: ConnInfo) => Promise<Response> {
  const routes = buildRoutes(deps);
  return async (req, info) => {
    const url = new URL(req.url);
    const byMethod = routes.get(url.pathname);
    if (!byMethod) {
      try {
        const res = await tracerRoute(req, info, url.pathname, deps) ??
          await flamegraphRoute(req, url.pathname, deps.documents);
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
      return await route(req, info);
    } catch (err) {
      deps.log.error("http handler failed", { path: url.pathname, error: String(err) });
      return jsonResponse(500, { error: "internal error" });
    }
  };
}

export class ListenError extends Error {}

/** Connection and request limits of the API server ([APIServer] keys, seconds in the config). */
export interface ServerLimits {
  /** 0: derived from RLIMIT_NOFILE (see connectionCap). */
  maxConnections: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  writeTimeoutMs: number;
}

/** Descriptors kept free for BPF objects, perf buffers, files and outbound connections. */
export const FD_RESERVE = 256;
/** The automatic cap's ceiling: far above what Prometheus, watch clients and operators need. */
export const AUTO_MAX_CONNECTIONS = 1024;

/**
 * Connections allowed for a file-descriptor limit of `nofile` with `open`
 * descriptors in use: below the limit by FD_RESERVE, so accepting sockets can
 * never starve the rest of the agent of descriptors.
 */
export function connectionCap(configured: number, nofile: number, open: number): number {
  const room = Math.max(16, nofile - open - FD_RESERVE);
  return configured > 0 ? Math.min(configured, room) : Math.min(AUTO_MAX_CONNECTIONS, room);
}

/** Starts the server; throws ListenError when the address cannot be bound. */
export function startServer(
  addr: ListenAddr,
  deps: ServerDeps,
  limits: ServerLimits & { nofile: number; openFds: number },
): HttpTransport {
  const handler = createHandler(deps);
  const maxConnections = connectionCap(limits.maxConnections, limits.nofile, limits.openFds);
  try {
    const server = new HttpTransport({
      hostname: addr.hostname,
      port: addr.port,
      maxConnections,
      headerTimeoutMs: limits.headerTimeoutMs,
      idleTimeoutMs: limits.idleTimeoutMs,
      writeTimeoutMs: limits.writeTimeoutMs,
      maxHeaderBytes: DEFAULT_TRANSPORT.maxHeaderBytes,
      maxBodyBytes: DEFAULT_TRANSPORT.maxBodyBytes,
      log: deps.log,
      errorResponse: (status, message) => jsonResponse(status, { error: message }),
    }, handler);
    deps.log.info("http server listening", {
      addr: `${server.addr.hostname}:${server.addr.port}`,
      max_connections: maxConnections,
      nofile: limits.nofile,
    });
    return server;
  } catch (err) {
    const where = `${addr.hostname}:${addr.port}`;
    if (err instanceof Deno.errors.AddrInUse) {
      throw new ListenError(`listen ${where}: address already in use`);
    }
    throw new ListenError(`listen ${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
