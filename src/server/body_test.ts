import { assert, assertEquals, assertRejects, assertStrictEquals } from "../../testing/assert.ts";
import { BodyTooLargeError, readBody, readBodyText } from "./body.ts";

const URL_ = "http://localhost/x";

/** A body stream of `chunks` chunks of `size` bytes that records how many were pulled and whether it was cancelled. */
function counted(chunks: number, size: number) {
  const state = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (state.pulled === chunks) return c.close();
      state.pulled++;
      c.enqueue(new Uint8Array(size).fill(0x61));
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

Deno.test("body: a body within the limit is returned whole, as bytes or text", async () => {
  const text = '{"filters": {"tracer_name": "^hungtask$"}} ✓';
  assertEquals(await readBodyText(new Request(URL_, { method: "POST", body: text }), 1024), text);
  const { stream } = counted(4, 1000);
  const bytes = await readBody(new Request(URL_, { method: "POST", body: stream }), 4000);
  assertStrictEquals(bytes.byteLength, 4000);
  assertStrictEquals(await readBodyText(new Request(URL_), 10), "");
  assertStrictEquals(await readBodyText(new Request(URL_, { method: "POST", body: "" }), 0), "");
});

Deno.test("body: exactly the limit passes; one byte more is BodyTooLargeError carrying the limit", async () => {
  assertStrictEquals(
    (await readBody(new Request(URL_, { method: "POST", body: "x".repeat(64) }), 64)).length,
    64,
  );
  const err = await readBody(new Request(URL_, { method: "POST", body: "x".repeat(65) }), 64).catch((e) => e);
  assert(err instanceof BodyTooLargeError, String(err));
  assertStrictEquals(err.limit, 64);
  assertStrictEquals(err.message, "request body larger than 64 bytes");
});

Deno.test("body: a stream is cancelled as soon as it passes the limit, not read to its end", async () => {
  const { stream, state } = counted(1000, 1024);
  await assertRejects(
    () => readBody(new Request(URL_, { method: "POST", body: stream }), 4096),
    BodyTooLargeError,
  );
  assertStrictEquals(state.pulled, 5, "the fifth 1 KiB chunk passes a 4 KiB limit");
  assert(state.cancelled, "the rest of the stream was cancelled");
});

Deno.test("body: a Content-Length above the limit is refused before reading anything", async () => {
  const { stream, state } = counted(1000, 1024);
  const req = new Request(URL_, { method: "POST", body: stream, headers: { "content-length": "1024000" } });
  await assertRejects(() => readBody(req, 65536), BodyTooLargeError);
  assertStrictEquals(state.pulled, 0);
  // A Content-Length within the limit is not trusted: the stream is still counted.
  const { stream: s2 } = counted(100, 1024);
  const lying = new Request(URL_, { method: "POST", body: s2, headers: { "content-length": "10" } });
  await assertRejects(() => readBody(lying, 65536), BodyTooLargeError);
});
