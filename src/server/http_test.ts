import { silentLogger } from "../log/logger.ts";
import { Registry } from "../metrics/registry.ts";
import { gauge } from "../core/sample.ts";
import { assertEquals, assertMatch } from "../../testing/assert.ts";
import { createHandler } from "./http.ts";
import { parseListenAddr } from "./listen.ts";
import { TracerManager } from "../tracing/manager.ts";

function handler(ready = true) {
  const registry = new Registry({ host: "h", region: "r" }, silentLogger);
  registry.register({ name: "loadavg", collect: () => Promise.resolve([gauge("loadavg_load1", "l", 1.5)]) });
  return createHandler({ registry, log: silentLogger, version: { version: "1.2.3" }, isReady: () => ready });
}

const get = (path: string, method = "GET") => new Request(`http://localhost${path}`, { method });

Deno.test("GET /metrics serves text 0.0.4", async () => {
  const res = await handler()(get("/metrics"));
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assertMatch(await res.text(), /huatuo_bamai_loadavg_load1\{host="h",region="r"\} 1.5/);
});

Deno.test("health, readiness, version", async () => {
  const h = handler(false);
  assertEquals((await h(get("/healthz"))).status, 200);
  assertEquals((await h(get("/readyz"))).status, 503);
  assertEquals((await handler(true)(get("/readyz"))).status, 200);
  assertEquals(await (await h(get("/version"))).json(), { version: "1.2.3" });
});

Deno.test("unknown path → JSON 404, wrong method → JSON 405", async () => {
  const nf = await handler()(get("/nope"));
  assertEquals(nf.status, 404);
  assertEquals(nf.headers.get("content-type"), "application/json; charset=utf-8");
  assertEquals(await nf.json(), { error: "not found", path: "/nope" });
  const na = await handler()(get("/metrics", "POST"));
  assertEquals(na.status, 405);
  assertEquals((await na.json()).error, "method not allowed");
  assertEquals(na.headers.get("allow"), "GET");
});

Deno.test("listen addresses", () => {
  assertEquals(parseListenAddr(":19704"), { hostname: "0.0.0.0", port: 19704 });
  assertEquals(parseListenAddr("127.0.0.1:80"), { hostname: "127.0.0.1", port: 80 });
  assertEquals(parseListenAddr("[::1]:9"), { hostname: "::1", port: 9 });
  for (const bad of ["19704", ":99999", "host:", "a:b:c"]) {
    let threw = false;
    try {
      parseListenAddr(bad);
    } catch {
      threw = true;
    }
    assertEquals(threw, true, bad);
  }
});

Deno.test("GET /v1/tracers lists tracer states", async () => {
  const { TracerManager, UnsupportedError } = await import("../tracing/manager.ts");
  const tracers = new TracerManager(silentLogger);
  tracers.add({ name: "runqlat", start: () => Promise.resolve(), stop: () => {} });
  tracers.add({
    name: "softlockup",
    start: () => Promise.reject(new UnsupportedError("no hook")),
    stop: () => {},
  });
  await tracers.startAll();
  const registry = new Registry({}, silentLogger);
  const h = createHandler({ registry, log: silentLogger, version: {}, isReady: () => true, tracers });
  const body = await (await h(get("/v1/tracers"))).json();
  assertEquals(
    body.tracers.map((t: { name: string; state: string; reason?: string }) => [t.name, t.state, t.reason]),
    [["runqlat", "running", undefined], ["softlockup", "unsupported", "no hook"]],
  );
  await tracers.stopAll();
});

Deno.test("GET /metrics is gzip-compressed when the client accepts it", async () => {
  const plain = await (await handler()(get("/metrics"))).text();
  const res = await handler()(
    new Request("http://localhost/metrics", { headers: { "accept-encoding": "gzip, deflate" } }),
  );
  assertEquals(res.headers.get("content-encoding"), "gzip");
  const unzipped = await new Response(res.body!.pipeThrough(new DecompressionStream("gzip"))).text();
  // Durations differ between scrapes; compare everything else.
  const strip = (t: string) => t.replace(/(scrape_collector_duration_seconds\{[^}]*\}) \S+/g, "$1");
  assertEquals(strip(unzipped), strip(plain));
  const refused = await handler()(
    new Request("http://localhost/metrics", { headers: { "accept-encoding": "gzip;q=0" } }),
  );
  assertEquals(refused.headers.get("content-encoding"), null);
});

function controlHandler(token?: string) {
  const registry = new Registry({ host: "h", region: "r" }, silentLogger);
  const tracers = new TracerManager(silentLogger);
  const runs = { starts: 0, stops: 0 };
  tracers.add({
    name: "oom",
    start: () => {
      runs.starts++;
      return Promise.resolve();
    },
    stop: () => {
      runs.stops++;
    },
  });
  tracers.add({ name: "ras", start: () => Promise.resolve(), stop: () => {} }, {}, "disabled by BlackList");
  const handle = createHandler({
    registry,
    log: silentLogger,
    version: {},
    isReady: () => true,
    tracers,
    token,
  });
  // Requests come from loopback unless a test says otherwise.
  const h = (req: Request, from = LOOPBACK) => handle(req, from);
  return { h, tracers, runs };
}

const peer = (hostname: string) => ({ remoteAddr: { transport: "tcp" as const, hostname, port: 40000 } });
const LOOPBACK = peer("127.0.0.1");

const post = (path: string, headers: Record<string, string> = {}) =>
  new Request(`http://localhost${path}`, { method: "POST", headers });

Deno.test("tracer control: stop and start one tracer by name; status by name", async () => {
  const { h, tracers, runs } = controlHandler();
  await tracers.startAll();
  assertEquals((await (await h(get("/v1/tracers/oom"))).json()).state, "running");
  const stopped = await h(post("/v1/tracers/oom/stop"));
  assertEquals(stopped.status, 200);
  assertEquals((await stopped.json()).state, "stopped");
  assertEquals(runs.stops, 1);
  const started = await h(post("/v1/tracers/oom/start"));
  assertEquals((await started.json()).state, "running");
  assertEquals(runs.starts, 2);
  // Starting a running tracer changes nothing.
  assertEquals((await (await h(post("/v1/tracers/oom/start"))).json()).state, "running");
  assertEquals(runs.starts, 2);
});

Deno.test("tracer control: unknown tracer 404, BlackList-disabled 409, GET on an action 405", async () => {
  const { h } = controlHandler();
  const nf = await h(post("/v1/tracers/nope/start"));
  assertEquals(nf.status, 404);
  assertMatch((await nf.json()).error, /no tracer named "nope"/);
  const dis = await h(post("/v1/tracers/ras/start"));
  assertEquals(dis.status, 409);
  assertMatch((await dis.json()).error, /disabled by BlackList/);
  const wrong = await h(get("/v1/tracers/oom/stop"));
  assertEquals(wrong.status, 405);
  assertEquals(wrong.headers.get("allow"), "POST");
});

Deno.test("tracer control: with a token, start/stop need Authorization: Bearer <token>; reads do not", async () => {
  const { h, tracers } = controlHandler("s3cret");
  await tracers.startAll();
  const none = await h(post("/v1/tracers/oom/stop"));
  assertEquals(none.status, 401);
  assertEquals(none.headers.get("www-authenticate"), 'Bearer realm="huatuo-bamai"');
  assertEquals((await h(post("/v1/tracers/oom/stop", { authorization: "Bearer s3cre" }))).status, 401);
  assertEquals(tracers.state("oom")?.state, "running");
  assertEquals((await h(get("/v1/tracers/oom"))).status, 200);
  const ok = await h(post("/v1/tracers/oom/stop", { authorization: "Bearer s3cret" }));
  assertEquals(ok.status, 200);
  assertEquals(tracers.state("oom")?.state, "stopped");
});

Deno.test("tracer control without a token: loopback peers only; other hosts get a JSON 403", async () => {
  const { h, tracers } = controlHandler();
  await tracers.startAll();
  for (const remote of ["10.1.2.3", "::ffff:192.168.0.9", "fe80::1", "128.0.0.1"]) {
    const res = await h(post("/v1/tracers/oom/stop"), peer(remote));
    assertEquals(res.status, 403, remote);
    assertMatch((await res.json()).error, /need a bearer token; set \[APIServer\] Token/);
  }
  assertEquals(tracers.state("oom")?.state, "running");
  // Reads stay open to everyone.
  assertEquals((await h(get("/v1/tracers/oom"), peer("10.1.2.3"))).status, 200);
  for (const local of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) {
    assertEquals((await h(post("/v1/tracers/oom/stop"), peer(local))).status, 200, local);
  }
});

Deno.test("tracer control with a token: any host with the token; watch needs it too", async () => {
  const { h, tracers } = controlHandler("s3cret");
  await tracers.startAll();
  assertEquals((await h(post("/v1/tracers/oom/stop"), peer("10.1.2.3"))).status, 401);
  assertEquals((await h(post("/v1/tracers/oom/stop"), LOOPBACK)).status, 401);
  const auth = { authorization: "Bearer s3cret" };
  assertEquals((await h(post("/v1/tracers/oom/stop", auth), peer("10.1.2.3"))).status, 200);
  const registry = new Registry({}, silentLogger);
  const watch = () => Promise.resolve(new Response("stream"));
  const deps = { registry, log: silentLogger, version: {}, isReady: () => true, watch };
  const open = createHandler(deps);
  assertEquals((await open(post("/v1/events/watch"), peer("10.1.2.3"))).status, 200);
  const guarded = createHandler({ ...deps, token: "s3cret" });
  assertEquals((await guarded(post("/v1/events/watch"), peer("10.1.2.3"))).status, 401);
  assertEquals((await guarded(post("/v1/events/watch", auth), peer("10.1.2.3"))).status, 200);
});

Deno.test("sameToken compares whole tokens only", async () => {
  const { sameToken } = await import("./http.ts");
  assertEquals(sameToken("abc", "abc"), true);
  for (const [a, b] of [["abc", "abd"], ["ab", "abc"], ["abcabc", "abc"], ["", "abc"], ["abc", ""]]) {
    assertEquals(sameToken(a, b), false, `${a} vs ${b}`);
  }
});

Deno.test("connectionCap: below the descriptor limit by the reserve, capped at 1024 when automatic", async () => {
  const { connectionCap } = await import("./http.ts");
  assertEquals(connectionCap(0, 1024, 40), 728);
  assertEquals(connectionCap(0, 1 << 20, 40), 1024);
  assertEquals(connectionCap(5000, 1 << 20, 40), 5000);
  assertEquals(connectionCap(5000, 1024, 40), 728);
  assertEquals(connectionCap(0, 200, 40), 16);
});

Deno.test("concurrent scrapes share one collection", async () => {
  let collections = 0;
  const registry = new Registry({}, silentLogger);
  registry.register({
    name: "slow",
    collect: async () => {
      collections++;
      await new Promise((r) => setTimeout(r, 50));
      return [gauge("slow_value", "v", collections)];
    },
  });
  const h = createHandler({ registry, log: silentLogger, version: {}, isReady: () => true });
  const bodies = await Promise.all(
    Array.from({ length: 20 }, () => h(get("/metrics")).then((r) => r.text())),
  );
  assertEquals(collections, 1);
  assertEquals(new Set(bodies).size, 1);
  await h(get("/metrics"));
  assertEquals(collections, 2);
});
