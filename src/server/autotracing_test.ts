// POST /v1/autotracing/{name} through the real handler: 202 with the
// document's tracer_id, the body's 400s naming the field, 404/405/409/413,
// and the token / loopback rules of tracer control.

import { assertEquals, assertMatch } from "../../testing/assert.ts";
import { testTracerContext } from "../../testing/tracer.ts";
import { AutoTracingRegistry } from "../autotracing/registry.ts";
import { AutoTracer } from "../autotracing/tracer.ts";
import type { CaptureOptions, CaptureResult, Firing, Trigger } from "../autotracing/trigger.ts";
import type { EventInput } from "../events/sink.ts";
import { silentLogger } from "../log/logger.ts";
import { Registry } from "../metrics/registry.ts";
import { createHandler } from "./http.ts";
import { parseManualBody } from "./autotracing.ts";

class Snapshot implements Trigger {
  readonly name = "memburst";
  readonly intervalMs = 3_600_000;
  readonly cooldownMs = 0;
  readonly perContainer = false;
  release: (() => void) | undefined;
  poll(): Firing[] {
    return [];
  }
  capture(_f: Firing, opts: CaptureOptions): Promise<CaptureResult> {
    return new Promise((resolve) => {
      const done = () => resolve({ data: { top_memory_usage: [] }, samples: 0 });
      this.release = done;
      opts.signal.addEventListener("abort", done, { once: true });
    });
  }
  manualData(): Record<string, unknown> {
    return {};
  }
}

const peer = (hostname: string) => ({ remoteAddr: { transport: "tcp" as const, hostname, port: 40000 } });
const LOOPBACK = peer("127.0.0.1");
const post = (path: string, body?: string, headers: Record<string, string> = {}) =>
  new Request(`http://localhost${path}`, { method: "POST", body, headers });

async function setup(token?: string) {
  const trigger = new Snapshot();
  const events: EventInput[] = [];
  const tracer = new AutoTracer(trigger, { events: (e) => events.push(e) });
  const autotracing = new AutoTracingRegistry();
  autotracing.add(tracer);
  autotracing.disable("cpusys", "disabled by BlackList");
  await tracer.start(testTracerContext());
  const h = createHandler({
    registry: new Registry({}, silentLogger),
    log: silentLogger,
    version: {},
    isReady: () => true,
    token,
    autotracing,
  });
  return { h, trigger, tracer, events };
}

Deno.test("POST /v1/autotracing/{name}: 202 with the tracer_id of the manual document; 409 while it runs", async () => {
  const { h, trigger, tracer, events } = await setup();
  try {
    const res = await h(post("/v1/autotracing/memburst"), LOOPBACK);
    assertEquals(res.status, 202);
    const { tracer_id } = await res.json();
    assertMatch(tracer_id, /^[0-9a-f]{32}$/);
    const busy = await h(post("/v1/autotracing/memburst", "{}"), LOOPBACK);
    assertEquals([busy.status, (await busy.json()).error], [409, "memburst: a capture is already running"]);
    trigger.release!();
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(events.map((e) => [e.tracerType, e.tracerId]), [["manual", tracer_id]]);
    // Unknown trigger: 404; a blacklisted one: 409 saying so; GET: 405.
    const unknown = await h(post("/v1/autotracing/nope"), LOOPBACK);
    assertEquals(unknown.status, 404);
    await unknown.body?.cancel();
    const off = await h(post("/v1/autotracing/cpusys"), LOOPBACK);
    assertEquals([off.status, (await off.json()).error], [409, "cpusys is disabled by BlackList"]);
    const get = await h(new Request("http://localhost/v1/autotracing/memburst"), LOOPBACK);
    assertEquals([get.status, get.headers.get("allow")], [405, "POST"]);
    await get.body?.cancel();
  } finally {
    await tracer.stop();
  }
});

Deno.test("POST /v1/autotracing/{name}: a bad body is a 400 naming the field; over 4 KiB a 413", async () => {
  const { h, tracer, events } = await setup();
  try {
    const cases: [string, RegExp][] = [
      ["nope", /^body: not JSON/],
      ["[1]", /^body: expected a JSON object/],
      ['{"duration": "5"}', /^duration: expected seconds/],
      ['{"duration": 0}', /^duration: expected seconds/],
      ['{"duration": 601}', /^duration: expected seconds, a number > 0 and <= 600/],
      ['{"container_id": "xyz"}', /^container_id: expected a container id/],
      ['{"containerid": "ab"}', /^containerid: unknown field \(accepted: duration, container_id\)/],
      // Well-formed, but memburst is a host-wide snapshot.
      ['{"duration": 5}', /^duration: memburst takes a snapshot/],
      ['{"container_id": "ab12"}', /^container_id: memburst captures the whole host/],
    ];
    for (const [body, re] of cases) {
      const res = await h(post("/v1/autotracing/memburst", body), LOOPBACK);
      const json = await res.json();
      assertEquals(res.status, 400, `${body}: ${JSON.stringify(json)}`);
      assertMatch(json.error, re);
    }
    const big = await h(post("/v1/autotracing/memburst", `{"x": "${"a".repeat(5000)}"}`), LOOPBACK);
    assertEquals(big.status, 413);
    await big.body?.cancel();
    assertEquals(events.length, 0);
    assertEquals(tracer.stats().busy, false);
  } finally {
    await tracer.stop();
  }
});

Deno.test("POST /v1/autotracing/{name} is protected like tracer control: loopback only, or the token", async () => {
  const open = await setup();
  try {
    const remote = await open.h(post("/v1/autotracing/memburst"), peer("10.1.2.3"));
    assertEquals(remote.status, 403);
    assertMatch((await remote.json()).error, /need a bearer token/);
    assertEquals(open.tracer.stats().busy, false);
  } finally {
    await open.tracer.stop();
  }
  const guarded = await setup("s3cret");
  try {
    for (const who of [LOOPBACK, peer("10.1.2.3")]) {
      const res = await guarded.h(post("/v1/autotracing/memburst"), who);
      assertEquals(res.status, 401);
      await res.body?.cancel();
    }
    const ok = await guarded.h(
      post("/v1/autotracing/memburst", "", { authorization: "Bearer s3cret" }),
      peer("10.1.2.3"),
    );
    assertEquals(ok.status, 202);
    await ok.body?.cancel();
    guarded.trigger.release!();
  } finally {
    await guarded.tracer.stop();
  }
});

Deno.test("parseManualBody: empty means defaults; fields as given", () => {
  assertEquals(parseManualBody(""), {});
  assertEquals(parseManualBody("  \n"), {});
  assertEquals(parseManualBody('{"duration": 2.5, "container_id": "AB12"}'), {
    durationSec: 2.5,
    containerId: "AB12",
  });
});
