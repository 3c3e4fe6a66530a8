// GET /v1/flamegraph/{tracer_id} through createHandler, against a temporary
// local store holding the synthetic cpusys document of fixtures/flamegraph/.

import { assert, assertEquals, assertMatch } from "../../testing/assert.ts";
import { type Json, validate } from "../../testing/json_schema.ts";
import { elementsNamed, parseXml } from "../../testing/xml.ts";
import type { EventDocument } from "../core/document.ts";
import { silentLogger } from "../log/logger.ts";
import { Registry } from "../metrics/registry.ts";
import { foldedTotal } from "../profile/flamegraph.ts";
import type { FlameFrame } from "../profile/profile.ts";
import { LocalFileStore } from "../storage/localfile.ts";
import { createHandler } from "./http.ts";
import { type DocumentFinder, parseFlamegraphQuery } from "./flamegraph.ts";

const FIXTURE = new URL("../../fixtures/flamegraph/synthetic-cpusys-document.json", import.meta.url);
const SYNTHETIC = JSON.parse(await Deno.readTextFile(FIXTURE)) as EventDocument;
const SPEEDSCOPE_SCHEMA = JSON.parse(
  await Deno.readTextFile(new URL("../../fixtures/speedscope/file-format-schema.json", import.meta.url)),
) as Json;
const ROOT_VALUE = (SYNTHETIC.tracer_data.flamedata as FlameFrame[])[0].value;

const variant = (id: string, data: Record<string, unknown>): EventDocument => ({
  ...SYNTHETIC,
  tracer_id: id,
  tracer_data: data,
});

/** A handler over a fresh store in a temp dir holding the synthetic document and a few broken ones. */
async function withServer(
  fn: (h: (path: string, method?: string) => Promise<Response>, dir: string) => Promise<void>,
  documents?: (store: LocalFileStore) => DocumentFinder | undefined,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "huatuo-flame-route-" });
  const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 2, indexTracers: ["cpusys"] });
  try {
    for (
      const d of [
        SYNTHETIC,
        variant("nodata", { now_sys: 50 }),
        variant("badframes", { flamedata: [{ level: 3, value: 1, self: 1, label: "x" }] }),
        { ...SYNTHETIC, tracer_name: "dropwatch", tracer_id: "eventdoc" },
      ]
    ) assert(store.write(d));
    const handler = createHandler({
      registry: new Registry({}, silentLogger),
      log: silentLogger,
      version: {},
      isReady: () => true,
      documents: documents ? documents(store) : store,
    });
    await fn((path, method = "GET") => handler(new Request(`http://localhost${path}`, { method })), dir);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const ID = SYNTHETIC.tracer_id;

Deno.test("flamegraph route: the default is an SVG image of the stored flamedata", async () => {
  await withServer(async (get) => {
    const res = await get(`/v1/flamegraph/${ID}`);
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "image/svg+xml; charset=utf-8");
    assertMatch(res.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assertEquals(res.headers.get("x-content-type-options"), "nosniff");
    const svg = await res.text();
    assertEquals(Number(res.headers.get("content-length")), new TextEncoder().encode(svg).length);
    const root = parseXml(svg);
    const titles = elementsNamed(root, "title").map((t) => t.text);
    assertEquals(titles[0], "cpusys 2025-06-11 16:05:16.251 +0800");
    assert(titles.some((t) => t.startsWith("do_syscall_64 (")), "a kernel frame has a hover title");
    assertMatch(svg, new RegExp(`${ROOT_VALUE.toLocaleString("en-US")} samples`));
    assertMatch(svg, /tracer_id 5f1e0c7a9b3d4e21a8c6f0b2d4e6a8c0 · synthetic-host/);
    // One <g> per frame of the flamedata (all of them are wide enough to draw).
    assertEquals(elementsNamed(root, "g").length, (SYNTHETIC.tracer_data.flamedata as unknown[]).length);
    assertEquals((await get(`/v1/flamegraph/${ID}?format=svg`)).status, 200);
  });
});

Deno.test("flamegraph route: ?format=folded, counts adding up to the root", async () => {
  await withServer(async (get) => {
    const res = await get(`/v1/flamegraph/${ID}?format=folded`);
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "text/plain; charset=utf-8");
    const folded = await res.text();
    assertEquals(foldedTotal(folded), ROOT_VALUE);
    assertMatch(
      folded,
      /^java;start_thread;thread_native_entry;GCTaskThread::run;madvise;.*;zap_page_range 90$/m,
    );
  });
});

Deno.test("flamegraph route: ?format=speedscope validates against speedscope's schema", async () => {
  await withServer(async (get) => {
    const res = await get(`/v1/flamegraph/${ID}?format=speedscope`);
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
    const file = await res.json();
    assertEquals(validate(SPEEDSCOPE_SCHEMA, file), []);
    assertEquals(file.profiles[0].endValue, ROOT_VALUE);
    assertMatch(file.exporter, /^huatuo-bamai /);
  });
});

Deno.test("flamegraph route: 404 for unknown ids and documents without flamedata, 422 for broken flamedata", async () => {
  await withServer(async (get) => {
    const cases: [string, number, RegExp][] = [
      ["/v1/flamegraph/0123456789abcdef0123456789abcdef", 404, /no AutoTracing document with tracer_id/],
      ["/v1/flamegraph/nodata", 404, /has no tracer_data\.flamedata/],
      ["/v1/flamegraph/badframes", 422, /malformed flamedata: frame 0: the root must be at level 0/],
      // Event tracers' documents are not looked up.
      ["/v1/flamegraph/eventdoc", 404, /no AutoTracing document/],
      [`/v1/flamegraph/${ID}?format=png`, 400, /format must be one of svg, folded, speedscope/],
      [`/v1/flamegraph/${ID}?fmt=svg`, 400, /unknown query parameter "fmt"/],
      [`/v1/flamegraph/${ID}?format=svg&format=folded`, 400, /given twice/],
      ["/v1/flamegraph/bad%2Fid", 404, /not found/],
      ["/v1/flamegraph/", 404, /not found/],
    ];
    for (const [path, status, re] of cases) {
      const res = await get(path);
      assertEquals(res.status, status, path);
      assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8", path);
      assertMatch((await res.json()).error, re, path);
    }
    const post = await get(`/v1/flamegraph/${ID}`, "POST");
    assertEquals([post.status, post.headers.get("allow")], [405, "GET"]);
    await post.body?.cancel();
    const head = await get(`/v1/flamegraph/${ID}`, "HEAD");
    assertEquals(head.status, 200);
    await head.body?.cancel();
  });
});

Deno.test("flamegraph route: a restarted agent finds an earlier run's capture (one scan)", async () => {
  await withServer(async (_get, dir) => {
    const restarted = new LocalFileStore({
      path: dir,
      rotationSize: 1,
      maxRotation: 2,
      indexTracers: ["cpusys"],
    });
    const h = createHandler({
      registry: new Registry({}, silentLogger),
      log: silentLogger,
      version: {},
      isReady: () => true,
      documents: restarted,
    });
    const res = await h(new Request(`http://localhost/v1/flamegraph/${ID}?format=folded`));
    assertEquals(res.status, 200);
    assertEquals(foldedTotal(await res.text()), ROOT_VALUE);
    assertEquals(restarted.indexStats().complete, true);
    restarted.close();
  });
});

Deno.test("flamegraph route: without a document store every id is a 404", async () => {
  await withServer(async (get) => {
    const res = await get(`/v1/flamegraph/${ID}`);
    assertEquals(res.status, 404);
    await res.body?.cancel();
  }, () => undefined);
});

Deno.test("parseFlamegraphQuery", () => {
  assertEquals(parseFlamegraphQuery(new URLSearchParams("")), { format: "svg" });
  assertEquals(parseFlamegraphQuery(new URLSearchParams("format=speedscope")), { format: "speedscope" });
  assert("error" in parseFlamegraphQuery(new URLSearchParams("format=")));
});
