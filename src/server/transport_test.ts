import { silentLogger } from "../log/logger.ts";
import { assertEquals, assertMatch } from "../../testing/assert.ts";
import {
  bodyFraming,
  type Handler,
  HttpError,
  HttpTransport,
  parseHead,
  type TransportOptions,
} from "./transport.ts";

/** The HttpError `fn` throws (fails when it throws anything else or nothing). */
function httpError(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HttpError) return err;
    throw err;
  }
  throw new Error("expected an HttpError");
}

function start(handler: Handler, opts: Partial<TransportOptions> = {}): HttpTransport {
  return new HttpTransport({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: 64,
    headerTimeoutMs: 2000,
    idleTimeoutMs: 2000,
    writeTimeoutMs: 2000,
    maxHeaderBytes: 4096,
    maxBodyBytes: 1024,
    log: silentLogger,
    ...opts,
  }, handler);
}

const hello: Handler = (req) => new Response(`hello ${new URL(req.url).pathname}`);

async function connect(s: HttpTransport): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port: s.addr.port });
}

async function send(conn: Deno.Conn, text: string | Uint8Array): Promise<void> {
  const data = typeof text === "string" ? new TextEncoder().encode(text) : text;
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Reads until the peer closes (or `until` matches what was read). */
async function readText(conn: Deno.Conn, until?: RegExp, ms = 3000): Promise<string> {
  const buf = new Uint8Array(65536);
  let out = "";
  const timer = setTimeout(() => conn.close(), ms);
  try {
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      out += new TextDecoder().decode(buf.subarray(0, n));
      if (until?.test(out)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

/** True when the server closes the connection within `ms`. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(1024);
  let closedByPeer = false;
  const timer = setTimeout(() => conn.close(), ms);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        closedByPeer = true;
        break;
      }
    }
  } catch {
    // closed by our timer
  } finally {
    clearTimeout(timer);
  }
  if (closedByPeer) conn.close();
  return closedByPeer;
}

Deno.test("parseHead: request line, fields, and the malformed", () => {
  const h = parseHead("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip ");
  assertEquals(h, {
    method: "GET",
    target: "/metrics?x=1",
    minor: 1,
    headers: [["host", "a"], ["accept-encoding", "gzip"]],
  });
  for (
    const [head, status] of [
      ["GET /", 400],
      ["GET / HTTP/2.0", 505],
      ["GET / HTTP/1.1\r\n folded: x", 400],
      ["GET / HTTP/1.1\r\nbad name: x", 400],
      ["GET / HTTP/1.1\r\nx: a\u0001b", 400],
      ["GET / HTTP/1.1" + "\r\nx: y".repeat(101), 431],
    ] as const
  ) {
    assertEquals(httpError(() => parseHead(head)).status, status, head);
  }
});

Deno.test("bodyFraming: lengths, chunked, and smuggling shapes", () => {
  const head = (...fields: [string, string][]) => ({
    method: "POST",
    target: "/",
    minor: 1,
    headers: fields,
  });
  assertEquals(bodyFraming(head(), 10), { length: 0 });
  assertEquals(bodyFraming(head(["content-length", "10"]), 10), { length: 10 });
  assertEquals(bodyFraming(head(["transfer-encoding", "chunked"]), 10), { chunked: true });
  const status = (h: ReturnType<typeof head>) => httpError(() => bodyFraming(h, 10)).status;
  assertEquals(status(head(["content-length", "11"])), 413);
  assertEquals(status(head(["content-length", "-1"])), 400);
  assertEquals(status(head(["content-length", "1"], ["content-length", "2"])), 400);
  assertEquals(status(head(["content-length", "1"], ["transfer-encoding", "chunked"])), 400);
  assertEquals(status(head(["transfer-encoding", "gzip"])), 501);
});

Deno.test("keep-alive: two requests on one connection, pipelined too", async () => {
  const s = start(hello);
  const conn = await connect(s);
  await send(
    conn,
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const text = await readText(conn);
  conn.close();
  await s.shutdown();
  assertMatch(
    text,
    /^HTTP\/1\.1 200 OK\r\n[\s\S]*transfer-encoding: chunked[\s\S]*hello \/a[\s\S]*HTTP\/1\.1 200 OK/,
  );
  assertMatch(text, /hello \/b\r\n0\r\n\r\n$/);
  assertEquals(s.stats.accepted, 1);
});

Deno.test("content-length responses are sent as is; HEAD gets no body; HTTP/1.0 ends at close", async () => {
  const s = start(() => new Response("12345", { headers: { "content-length": "5" } }));
  let conn = await connect(s);
  await send(
    conn,
    "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const text = await readText(conn);
  conn.close();
  assertMatch(
    text,
    /^HTTP\/1\.1 200 OK\r\ncontent-length: 5\r\n[^]*?\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n12345$/,
  );
  const s10 = start(hello);
  conn = await connect(s10);
  await send(conn, "GET /old HTTP/1.0\r\n\r\n");
  const old = await readText(conn);
  conn.close();
  await s.shutdown();
  await s10.shutdown();
  assertMatch(old, /^HTTP\/1\.0 200 OK\r\n[^]*connection: close\r\n[^]*\r\n\r\nhello \/old$/);
});

Deno.test("a slow request head is cut at the header timeout; an idle keep-alive at the idle timeout", async () => {
  const s = start(hello, { headerTimeoutMs: 200, idleTimeoutMs: 400 });
  const slow = await connect(s);
  await send(slow, "GET / HTTP/1.1\r\nHost:");
  const t0 = performance.now();
  assertEquals(await closedWithin(slow, 2000), true);
  const headerMs = performance.now() - t0;
  const idle = await connect(s);
  await send(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await readText(idle, /hello \/\r\n0\r\n\r\n$/);
  const t1 = performance.now();
  assertEquals(await closedWithin(idle, 3000), true);
  const idleMs = performance.now() - t1;
  await s.shutdown();
  assertEquals(headerMs >= 150 && headerMs < 1500, true, `header timeout after ${headerMs} ms`);
  assertEquals(idleMs >= 300 && idleMs < 2000, true, `idle timeout after ${idleMs} ms`);
  assertEquals(s.stats.timedOut, 2);
});

Deno.test("at the connection cap the oldest idle connection makes room; all busy → 503", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  const s = start(async (req) => {
    if (new URL(req.url).pathname === "/hold") await gate;
    return new Response("ok");
  }, { maxConnections: 3 });
  const idle = await Promise.all([connect(s), connect(s), connect(s)]);
  await new Promise((r) => setTimeout(r, 50));
  const fresh = await connect(s);
  await send(fresh, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  assertMatch(await readText(fresh), /^HTTP\/1\.1 200 OK[^]*ok/);
  fresh.close();
  assertEquals(await closedWithin(idle[0], 1000), true, "oldest idle connection closed");
  // Now fill every slot with a request in progress.
  const held = await Promise.all([connect(s), connect(s), connect(s)]);
  for (const c of held) await send(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  await new Promise((r) => setTimeout(r, 100));
  const refused = await connect(s);
  const text = await readText(refused);
  refused.close();
  release();
  for (const c of held) await readText(c, /ok\r\n0\r\n\r\n$/);
  for (const c of [...idle.slice(1), ...held]) c.close();
  await s.shutdown();
  assertMatch(text, /^HTTP\/1\.1 503 Service Unavailable[^]*too many connections/);
  assertEquals(s.stats.refused >= 1, true);
});

Deno.test("bodies: 413 before reading an oversized one (100-continue), chunked decoded and bounded, 431", async () => {
  const s = start(async (req) => new Response(`got ${(await req.arrayBuffer()).byteLength}`));
  let conn = await connect(s);
  await send(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n");
  assertMatch(await readText(conn), /^HTTP\/1\.1 413 [^]*request body larger than 1024 bytes/);
  conn.close();
  conn = await connect(s);
  await send(conn, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  await send(conn, "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
  assertMatch(await readText(conn), /got 11/);
  conn.close();
  conn = await connect(s);
  await send(conn, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  await send(conn, ("200\r\n" + "x".repeat(512) + "\r\n").repeat(3));
  assertMatch(await readText(conn), /^HTTP\/1\.1 413 /);
  conn.close();
  conn = await connect(s);
  await send(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "y".repeat(8000) + "\r\n\r\n");
  assertMatch(await readText(conn), /^HTTP\/1\.1 431 /);
  conn.close();
  await s.shutdown();
  assertEquals(s.stats.rejected, 3);
});

Deno.test("req.signal aborts when the client leaves a streaming response", async () => {
  let aborted: () => void = () => {};
  const gone = new Promise<void>((r) => aborted = r);
  let timer: ReturnType<typeof setInterval> | undefined;
  const s = start((req) => {
    req.signal.addEventListener("abort", () => {
      clearInterval(timer);
      aborted();
    });
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        timer = setInterval(() => c.enqueue(new TextEncoder().encode(": ping\n")), 20);
      },
      cancel() {
        clearInterval(timer);
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  const conn = await connect(s);
  await send(conn, "POST /watch HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  assertMatch(await readText(conn, /: ping/), /text\/event-stream/);
  conn.close();
  await gone;
  await s.shutdown();
});

Deno.test("a client that stops reading is dropped at the write timeout", async () => {
  const chunk = new Uint8Array(1 << 20);
  let cancelled = false;
  const s = start(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          c.enqueue(chunk);
        },
        cancel() {
          cancelled = true;
        },
      }),
    ), { writeTimeoutMs: 300 });
  const conn = await connect(s);
  await send(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  // Never read: the socket buffers fill and the server's write stalls.
  const t0 = performance.now();
  while (s.stats.timedOut === 0 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
  conn.close();
  await s.shutdown();
  assertEquals(s.stats.timedOut, 1);
  assertEquals(cancelled, true);
});

Deno.test("shutdown closes idle connections and waits for requests in progress", async () => {
  const s = start(async () => {
    await new Promise((r) => setTimeout(r, 200));
    return new Response("late");
  });
  const idle = await connect(s);
  const busy = await connect(s);
  await send(busy, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await new Promise((r) => setTimeout(r, 50));
  const reply = readText(busy);
  await s.shutdown(2000);
  assertMatch(await reply, /connection: close[^]*late/);
  assertEquals(await closedWithin(idle, 500), true);
  busy.close();
});
