// HTTP/1.1 on Deno.listen, for an agent that listens on every interface as
// root. Deno.serve has no connection cap, no header or idle timeout, and an
// EMFILE from its accept loop is an uncaught rejection that kills the process
// (measured: ~850 idle connections under `ulimit -n 1024`). Owning the accept
// loop gives what node_exporter and the kubelet get from Go's http.Server:
//
// - at most `maxConnections` sockets; at the cap the oldest connection that is
//   not serving a request is closed to make room (so `/metrics` and `/healthz`
//   keep answering under a flood of idle sockets), else the newcomer gets 503;
// - a request head must arrive within `headerTimeoutMs` (slowloris), a
//   keep-alive connection may idle `idleTimeoutMs` between requests, a request
//   body must arrive within `headerTimeoutMs` too, and every write must finish
//   within `writeTimeoutMs` (a client that stops reading);
// - heads above `maxHeaderBytes` get 431, bodies above `maxBodyBytes` get 413
//   before a byte of them is read;
// - accept errors (EMFILE, ENFILE, ENOBUFS) close an idle connection, back off
//   5 ms → 1 s and are logged once per streak; the server keeps serving.
//
// Handlers keep the web-standard shape `(Request, info) => Response`. A
// response with a content-length header is sent as is; any other body is sent
// chunked (HTTP/1.0: until close). req.signal aborts when the peer goes away,
// which is how a Server-Sent Events stream learns its client left.

import type { Logger } from "../log/logger.ts";

export interface ConnInfo {
  remoteAddr: Deno.NetAddr;
}

export type Handler = (req: Request, info: ConnInfo) => Response | Promise<Response>;

export interface TransportOptions {
  hostname: string;
  port: number;
  maxConnections: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  writeTimeoutMs: number;
  maxHeaderBytes: number;
  maxBodyBytes: number;
  log: Logger;
  /** Answer for a request that cannot reach the handler (bad head, too large...). */
  errorResponse?: (status: number, message: string) => Response;
}

export interface TransportStats {
  /** Sockets open now. */
  connections: number;
  accepted: number;
  /** Closed to make room at the cap, by header/idle/write timeout, or refused with 503. */
  evicted: number;
  timedOut: number;
  refused: number;
  acceptErrors: number;
  /** Requests answered with 4xx before the handler (bad head, 413, 431). */
  rejected: number;
}

export const DEFAULT_TRANSPORT = {
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  writeTimeoutMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 1024 * 1024,
} as const;

const MAX_HEADERS = 100;
const READ_CHUNK = 4096;
const CRLF2 = [13, 10, 13, 10];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const STATUS_TEXT: Record<number, string> = {
  100: "Continue",
  200: "OK",
  202: "Accepted",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  499: "Client Closed Request",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** A request that never reaches the handler: answered with `status` and the connection closed. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface RequestHead {
  method: string;
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  headers: [string, string][];
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Parses a request head (without the final CRLF CRLF). Pure; throws HttpError. */
export function parseHead(text: string): RequestHead {
  const lines = text.split("\r\n");
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0]);
  if (!m) {
    if (/ HTTP\/\d/.test(lines[0]) && !/ HTTP\/1\.[01]$/.test(lines[0])) {
      throw new HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served");
    }
    throw new HttpError(400, "malformed request line");
  }
  if (lines.length - 1 > MAX_HEADERS) throw new HttpError(431, `more than ${MAX_HEADERS} header fields`);
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    // Obsolete line folding and whitespace before the colon are request-smuggling vectors (RFC 9112 §5).
    if (!TOKEN.test(name)) throw new HttpError(400, `malformed header field on line ${i + 1}`);
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) throw new HttpError(400, `invalid characters in header ${name}`);
    headers.push([name.toLowerCase(), value]);
  }
  return { method: m[1], target: m[2], minor: Number(m[3]), headers };
}

function header(head: RequestHead, name: string): string | undefined {
  const found = head.headers.filter(([n]) => n === name);
  if (found.length > 1 && (name === "content-length" || name === "host")) {
    throw new HttpError(400, `duplicate ${name} header`);
  }
  return found[0]?.[1];
}

/** How the body is framed: a length, chunked, or none. Throws HttpError on anything ambiguous. */
export function bodyFraming(head: RequestHead, maxBodyBytes: number): { length: number } | { chunked: true } {
  const te = header(head, "transfer-encoding");
  const cl = header(head, "content-length");
  if (te !== undefined) {
    if (cl !== undefined) throw new HttpError(400, "both transfer-encoding and content-length");
    if (te.toLowerCase() !== "chunked") throw new HttpError(501, `transfer-encoding ${te} not supported`);
    return { chunked: true };
  }
  if (cl === undefined) return { length: 0 };
  if (!/^\d{1,15}$/.test(cl)) throw new HttpError(400, "malformed content-length");
  const length = Number(cl);
  if (length > maxBodyBytes) throw new HttpError(413, `request body larger than ${maxBodyBytes} bytes`);
  return { length };
}

function indexOfCrlf2(buf: Uint8Array, end: number, from: number): number {
  for (let i = Math.max(0, from); i + 3 < end; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

type ConnState = "idle" | "head" | "busy";

/**
 * One accepted socket: a byte buffer with at most one read in flight, so the
 * same read that waits for the next request also notices the peer leaving
 * while a response streams.
 */
class Connection {
  state: ConnState = "idle";
  closed = false;
  #buf = new Uint8Array(READ_CHUNK);
  #start = 0;
  #end = 0;
  #reading: Promise<boolean> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onGone: Array<() => void> = [];

  constructor(readonly conn: Deno.TcpConn, readonly id: number) {}

  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Closes the socket once; an in-flight read or write then fails. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearDeadline();
    try {
      this.conn.close();
    } catch {
      // already closed by the runtime
    }
    for (const fn of this.#onGone.splice(0)) fn();
  }

  /** Close the connection unless cleared before `ms` (header, body, idle and write deadlines). */
  deadline(ms: number, onExpire: () => void): void {
    this.clearDeadline();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      onExpire();
      this.close();
    }, ms);
  }

  clearDeadline(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Called when the peer closes or the socket fails while a response is in progress. */
  onGone(fn: () => void): void {
    this.#onGone.push(fn);
  }

  /** The response is done: nothing more to tell when the peer goes. */
  clearOnGone(): void {
    this.#onGone.length = 0;
  }

  /** Reads more bytes into the buffer; false at EOF or error. Shares one in-flight read. */
  fill(limit: number): Promise<boolean> {
    this.#reading ??= this.#read(limit).finally(() => this.#reading = undefined);
    return this.#reading;
  }

  async #read(limit: number): Promise<boolean> {
    if (this.closed) return false;
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buf.length - this.#end < READ_CHUNK) {
      const live = this.#end - this.#start;
      if (live + READ_CHUNK > limit + READ_CHUNK) return true; // caller sees it is over the limit
      const next = new Uint8Array(Math.max(this.#buf.length, live + READ_CHUNK * 2));
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#start = 0;
      this.#end = live;
    }
    let n: number | null;
    try {
      n = await this.conn.read(this.#buf.subarray(this.#end));
    } catch {
      n = null;
    }
    if (n === null) {
      this.close();
      return false;
    }
    this.#end += n;
    return true;
  }

  /** The request head if a whole one is buffered (consumed), else undefined. Throws 431 past the limit. */
  takeHead(maxHeaderBytes: number, scanFrom: number): string | undefined {
    const at = indexOfCrlf2(this.#buf.subarray(0, this.#end), this.#end, this.#start + scanFrom);
    if (at < 0) {
      if (this.buffered > maxHeaderBytes) {
        throw new HttpError(431, `request head larger than ${maxHeaderBytes} bytes`);
      }
      return undefined;
    }
    if (at - this.#start > maxHeaderBytes) {
      throw new HttpError(431, `request head larger than ${maxHeaderBytes} bytes`);
    }
    const text = decoder.decode(this.#buf.subarray(this.#start, at));
    this.#start = at + CRLF2.length;
    return text;
  }

  /** Takes up to `n` buffered bytes (copied). */
  take(n: number): Uint8Array {
    const k = Math.min(n, this.buffered);
    const out = this.#buf.slice(this.#start, this.#start + k);
    this.#start += k;
    return out;
  }

  /** Takes one CRLF-terminated line if buffered (without the CRLF). */
  takeLine(max: number): string | undefined {
    for (let i = this.#start; i + 1 < this.#end; i++) {
      if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) {
        const line = decoder.decode(this.#buf.subarray(this.#start, i));
        this.#start = i + 2;
        return line;
      }
      if (i - this.#start > max) throw new HttpError(400, "chunk line too long");
    }
    return undefined;
  }

  async write(data: Uint8Array, timeoutMs: number, onTimeout: () => void): Promise<void> {
    this.deadline(timeoutMs, onTimeout);
    try {
      let off = 0;
      while (off < data.length) off += await this.conn.write(data.subarray(off));
    } finally {
      this.clearDeadline();
    }
  }
}

/** An HTTP/1.1 server with bounded connections, heads, bodies and time. */
export class HttpTransport {
  readonly addr: Deno.NetAddr;
  readonly finished: Promise<void>;
  readonly #listener: Deno.TcpListener;
  readonly #opts: TransportOptions;
  readonly #handler: Handler;
  readonly #conns = new Map<number, Connection>();
  #nextId = 0;
  #closing = false;
  readonly #stats = { accepted: 0, evicted: 0, timedOut: 0, refused: 0, acceptErrors: 0, rejected: 0 };

  constructor(opts: TransportOptions, handler: Handler) {
    this.#opts = opts;
    this.#handler = handler;
    this.#listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
    this.addr = this.#listener.addr;
    this.finished = this.#acceptLoop();
  }

  get stats(): TransportStats {
    return { connections: this.#conns.size, ...this.#stats };
  }

  get maxConnections(): number {
    return this.#opts.maxConnections;
  }

  /**
   * Stops accepting, closes idle connections, lets requests in progress finish
   * for up to `graceMs`, then closes what is left.
   */
  async shutdown(graceMs = 1000): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      try {
        this.#listener.close();
      } catch {
        // already closed
      }
    }
    for (const c of this.#conns.values()) if (c.state !== "busy") c.close();
    const deadline = Date.now() + graceMs;
    while (this.#conns.size > 0 && Date.now() < deadline) await sleep(10);
    for (const c of this.#conns.values()) c.close();
    await this.finished;
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    while (!this.#closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (
          this.#closing || err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted
        ) {
          return;
        }
        this.#acceptFailed(err);
        // Out of descriptors: give one back so the connection waiting in the backlog can be taken.
        if (this.#evictOne()) await this.#released(100);
        backoff = Math.min(1000, backoff ? backoff * 2 : 5);
        await sleep(backoff);
        continue;
      }
      backoff = 0;
      // At the cap, make room before admitting, and wait for the room to be real: an evicted
      // socket's descriptor is released only when its pending read unwinds, so accepting on
      // at once would overshoot the cap (and hit EMFILE) in a flood. Not beyond 100 ms: #admit
      // refuses the newcomer then.
      if (this.#conns.size >= this.#opts.maxConnections && this.#evictOne()) await this.#released(100);
      this.#admit(conn);
    }
  }

  #lastAcceptLog = -Infinity;
  #acceptErrorsLogged = 0;

  /** Counted always, logged at most once a minute with the count since the last line. */
  #acceptFailed(err: unknown): void {
    this.#stats.acceptErrors++;
    const now = performance.now();
    if (now - this.#lastAcceptLog < 60_000) return;
    this.#lastAcceptLog = now;
    this.#opts.log.warn("http accept failing; closing idle connections and backing off", {
      error: err instanceof Error ? err.message : String(err),
      connections: this.#conns.size,
      failures_since_last_log: this.#stats.acceptErrors - this.#acceptErrorsLogged,
    });
    this.#acceptErrorsLogged = this.#stats.acceptErrors;
  }

  #waiters: Array<() => void> = [];

  /** Resolves when a connection's socket is released, or after `ms`. */
  #released(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const waiters = this.#waiters;
      function done() {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
    });
  }

  #admit(conn: Deno.TcpConn): void {
    this.#stats.accepted++;
    if (this.#conns.size >= this.#opts.maxConnections) {
      this.#stats.refused++;
      // Every connection is serving a request (e.g. watch streams): refuse the newcomer.
      void this.#refuse(conn);
      return;
    }
    try {
      conn.setNoDelay(true);
    } catch {
      // not fatal
    }
    const c = new Connection(conn, ++this.#nextId);
    this.#conns.set(c.id, c);
    void this.#serve(c).catch(() => {}).finally(() => {
      c.close();
      this.#conns.delete(c.id);
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  async #refuse(conn: Deno.TcpConn): Promise<void> {
    const res = this.#errorResponse(503, "too many connections");
    const body = new Uint8Array(await res.arrayBuffer());
    const head = `HTTP/1.1 503 Service Unavailable\r\ncontent-type: ${res.headers.get("content-type")}\r\n` +
      `content-length: ${body.length}\r\nconnection: close\r\nretry-after: 1\r\n\r\n`;
    const timer = setTimeout(() => conn.close(), 1000);
    try {
      await conn.write(concat(encoder.encode(head), body));
    } catch {
      // the peer is gone
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch {
        // closed by the timer
      }
    }
  }

  /**
   * Closes the oldest connection that is not serving a request; false when
   * there is none. It stays counted until its serve loop unwinds (when the
   * descriptor is really released).
   */
  #evictOne(): boolean {
    let unwinding = false;
    for (const c of this.#conns.values()) {
      if (c.closed) {
        unwinding = true;
      } else if (c.state !== "busy") {
        this.#stats.evicted++;
        c.close();
        return true;
      }
    }
    return unwinding;
  }

  #errorResponse(status: number, message: string): Response {
    return this.#opts.errorResponse?.(status, message) ??
      new Response(JSON.stringify({ error: message }) + "\n", {
        status,
        headers: { "content-type": "application/json; charset=utf-8" },
      });
  }

  async #serve(c: Connection): Promise<void> {
    const o = this.#opts;
    const timedOut = () => this.#stats.timedOut++;
    let first = true;
    while (!c.closed && !this.#closing) {
      // A fresh connection has headerTimeout to send its head; a kept-alive one may idle first.
      c.state = c.buffered > 0 ? "head" : "idle";
      c.deadline(first || c.buffered > 0 ? o.headerTimeoutMs : o.idleTimeoutMs, timedOut);
      first = false;
      let head: RequestHead;
      let framing: { length: number } | { chunked: true };
      let body: Uint8Array | undefined;
      try {
        let text: string | undefined;
        let scanned = 0;
        while ((text = c.takeHead(o.maxHeaderBytes, Math.max(0, scanned - 3))) === undefined) {
          scanned = c.buffered;
          if (!await c.fill(o.maxHeaderBytes)) return;
          if (c.state === "idle") {
            c.state = "head";
            c.deadline(o.headerTimeoutMs, timedOut);
          }
        }
        c.state = "busy";
        head = parseHead(text);
        framing = bodyFraming(head, o.maxBodyBytes);
        const expect = header(head, "expect");
        if (expect !== undefined && expect.toLowerCase() !== "100-continue") {
          throw new HttpError(417, `expectation ${expect} not supported`);
        }
        if (expect !== undefined && head.minor === 1 && ("chunked" in framing || framing.length > 0)) {
          await c.write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"), o.writeTimeoutMs, timedOut);
        }
        c.deadline(o.headerTimeoutMs, timedOut);
        body = "chunked" in framing
          ? await readChunked(c, o.maxBodyBytes)
          : await readLength(c, framing.length);
        if (body === undefined) return;
        c.clearDeadline();
      } catch (err) {
        if (!(err instanceof HttpError)) return;
        this.#stats.rejected++;
        c.state = "busy";
        await this.#respond(c, undefined, 1, this.#errorResponse(err.status, err.message), true);
        return;
      }
      const keepAlive = wantsKeepAlive(head);
      const res = await this.#handle(c, head, body);
      if (!await this.#respond(c, head.method, head.minor, res, !keepAlive || this.#closing)) return;
      if (!keepAlive) return;
    }
  }

  async #handle(c: Connection, head: RequestHead, body: Uint8Array | undefined): Promise<Response> {
    const abort = new AbortController();
    c.onGone(() => abort.abort());
    let req: Request;
    try {
      const host = header(head, "host") ?? `${this.addr.hostname}:${this.addr.port}`;
      const url = head.target.startsWith("/") ? new URL(head.target, `http://${sanitizeHost(host)}`) : null;
      if (!url) throw new HttpError(400, "request target must be an absolute path");
      const init: RequestInit = { method: head.method, headers: head.headers, signal: abort.signal };
      if (body && body.length > 0 && head.method !== "GET" && head.method !== "HEAD") {
        init.body = body as Uint8Array<ArrayBuffer>;
      }
      req = new Request(url, init);
    } catch (err) {
      this.#stats.rejected++;
      const msg = err instanceof HttpError ? err.message : `malformed request: ${(err as Error).message}`;
      return this.#errorResponse(400, msg);
    }
    // While the handler runs and the response streams, keep a read pending: EOF means the client left.
    void c.fill(this.#opts.maxHeaderBytes);
    try {
      return await this.#handler(req, { remoteAddr: c.conn.remoteAddr });
    } catch (err) {
      this.#opts.log.error("http handler failed", { path: req.url, error: String(err) });
      return this.#errorResponse(500, "internal error");
    }
  }

  /** Writes a response; false when the connection must not be reused. */
  async #respond(
    c: Connection,
    method: string | undefined,
    minor: number,
    res: Response,
    close: boolean,
  ): Promise<boolean> {
    const o = this.#opts;
    const timedOut = () => this.#stats.timedOut++;
    const length = res.headers.get("content-length");
    const noBody = method === "HEAD" || res.status === 204 || res.status === 304 || res.body === null;
    const chunked = !noBody && length === null && minor === 1;
    if (!noBody && length === null && minor === 0) close = true; // HTTP/1.0: the body ends at close
    let head = `HTTP/1.${minor} ${res.status} ${STATUS_TEXT[res.status] ?? "Status"}\r\n`;
    for (const [k, v] of res.headers) {
      if (k === "connection" || k === "transfer-encoding" || k === "keep-alive") continue;
      head += `${k}: ${v}\r\n`;
    }
    if (res.body === null && length === null) head += "content-length: 0\r\n";
    if (chunked) head += "transfer-encoding: chunked\r\n";
    head += close ? "connection: close\r\n" : minor === 0 ? "connection: keep-alive\r\n" : "";
    head += `date: ${new Date().toUTCString()}\r\n\r\n`;
    const reader = noBody ? undefined : res.body?.getReader();
    if (noBody) void res.body?.cancel().catch(() => {});
    // A stream that waits for data (SSE) must end when the peer goes, not at its next write.
    if (reader) c.onGone(() => void reader.cancel().catch(() => {}));
    try {
      await c.write(encoder.encode(head), o.writeTimeoutMs, timedOut);
      if (reader) {
        let sent = 0;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (c.closed) throw new Error("connection closed");
          if (!value || value.length === 0) continue;
          sent += value.length;
          const out = chunked
            ? concat(encoder.encode(value.length.toString(16) + "\r\n"), value, CRLF)
            : value;
          await c.write(out, o.writeTimeoutMs, timedOut);
        }
        if (chunked) await c.write(LAST_CHUNK, o.writeTimeoutMs, timedOut);
        if (length !== null && sent !== Number(length)) return false;
      }
    } catch {
      void reader?.cancel().catch(() => {});
      c.close();
      return false;
    } finally {
      c.clearOnGone();
    }
    return !close && !c.closed;
  }
}

const CRLF = new Uint8Array([13, 10]);
const LAST_CHUNK = encoder.encode("0\r\n\r\n");

function wantsKeepAlive(head: RequestHead): boolean {
  const conn = (header(head, "connection") ?? "").toLowerCase();
  if (head.minor === 0) return /(^|,)\s*keep-alive\s*($|,)/.test(conn);
  return !/(^|,)\s*close\s*($|,)/.test(conn);
}

/** Host header → URL authority; anything odd becomes "localhost" (the path is all the router reads). */
function sanitizeHost(host: string): string {
  return /^[A-Za-z0-9.:[\]-]{1,255}$/.test(host) ? host : "localhost";
}

async function readLength(c: Connection, length: number): Promise<Uint8Array | undefined> {
  if (length === 0) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let got = 0;
  while (got < length) {
    if (c.buffered === 0 && !await c.fill(length)) return undefined;
    const part = c.take(length - got);
    got += part.length;
    parts.push(part);
  }
  return parts.length === 1 ? parts[0] : concat(...parts);
}

async function readChunked(c: Connection, max: number): Promise<Uint8Array | undefined> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let line: string | undefined;
    while ((line = c.takeLine(1024)) === undefined) if (!await c.fill(max)) return undefined;
    const m = /^([0-9a-fA-F]{1,8})(;.*)?$/.exec(line);
    if (!m) throw new HttpError(400, "malformed chunk size");
    const size = parseInt(m[1], 16);
    if (total + size > max) throw new HttpError(413, `request body larger than ${max} bytes`);
    if (size === 0) {
      // Trailers are read and ignored, up to the blank line.
      for (;;) {
        while ((line = c.takeLine(1024)) === undefined) if (!await c.fill(max)) return undefined;
        if (line === "") return concat(...parts);
      }
    }
    const chunk = await readLength(c, size);
    if (!chunk) return undefined;
    parts.push(chunk);
    total += size;
    while ((line = c.takeLine(2)) === undefined) if (!await c.fill(max)) return undefined;
    if (line !== "") throw new HttpError(400, "malformed chunk");
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
