// The API server of a running agent: its routes' dependencies and the
// connection limits from [APIServer] and the open-files limit.

import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { type ServerDeps, startServer } from "../server/http.ts";
import { parseListenAddr } from "../server/listen.ts";
import type { HttpTransport } from "../server/transport.ts";
import { type NofileLimit, raiseNofileLimit } from "../../ffi/libc.ts";

/** Starts listening on [APIServer] TCPAddr; throws ListenError when it cannot. */
export function startApiServer(config: Config, deps: ServerDeps): HttpTransport {
  const api = config.APIServer;
  return startServer(parseListenAddr(api.TCPAddr), deps, {
    maxConnections: api.MaxConnections,
    headerTimeoutMs: api.ReadHeaderTimeout * 1000,
    idleTimeoutMs: api.IdleTimeout * 1000,
    writeTimeoutMs: api.WriteTimeout * 1000,
    ...descriptorBudget(deps.log),
  });
}

/** The open-files limit (raised to the hard limit) and descriptors in use, for the connection cap. */
function descriptorBudget(log: Logger): { nofile: number; openFds: number } {
  let limit: NofileLimit = { soft: 1024, hard: 1024 };
  try {
    limit = raiseNofileLimit();
  } catch (err) {
    log.warn("cannot read or raise RLIMIT_NOFILE; assuming 1024", { error: String(err) });
  }
  let openFds = 64;
  try {
    openFds = [...Deno.readDirSync("/proc/self/fd")].length;
  } catch {
    // no procfs: keep the estimate
  }
  return { nofile: limit.soft, openFds };
}
