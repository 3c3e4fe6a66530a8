// LocalFileStore.find: documents of the indexed (AutoTracing) tracers by
// tracer_id, through the index, across rotation, and by one scan for ids an
// earlier run wrote.

import { assert, assertEquals } from "../../testing/assert.ts";
import { type EventDocument, newDocument } from "../core/document.ts";
import { type LocalFileOptions, LocalFileStore } from "./localfile.ts";

function doc(tracerName: string, seq: number, pad = 0): EventDocument {
  return newDocument({
    hostname: "h",
    region: "r",
    tracerName,
    tracerType: "auto",
    data: { seq, pad: "x".repeat(pad) },
    now: new Date(Date.UTC(2025, 5, 11, 8, 5, 16, 251)),
    offsetMinutes: 480,
  });
}

async function withStore(
  opts: Partial<LocalFileOptions>,
  fn: (dir: string, open: (more?: Partial<LocalFileOptions>) => LocalFileStore) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "huatuo-find-" });
  const stores: LocalFileStore[] = [];
  const open = (more: Partial<LocalFileOptions> = {}) => {
    const s = new LocalFileStore({
      path: dir,
      rotationSize: 1,
      maxRotation: 3,
      indexTracers: ["cpusys", "cpuidle"],
      ...opts,
      ...more,
    });
    stores.push(s);
    return s;
  };
  try {
    await fn(dir, open);
  } finally {
    for (const s of stores) s.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const seqOf = (d: EventDocument | undefined) => d?.tracer_data.seq;

Deno.test("find: indexed tracers' documents by id; other tracers' are not served", async () => {
  await withStore({}, async (_dir, open) => {
    const store = open();
    const a = doc("cpusys", 1);
    const b = doc("cpuidle", 2);
    const e = doc("dropwatch", 3);
    for (const d of [a, b, e]) assert(store.write(d));
    assertEquals(await store.find(a.tracer_id), a);
    assertEquals(seqOf(await store.find(b.tracer_id)), 2);
    assertEquals(await store.find(e.tracer_id), undefined);
    assertEquals(store.indexStats().size, 2);
  });
});

Deno.test("find: across rotation, until the file holding the document is dropped", async () => {
  const one = new TextEncoder().encode(JSON.stringify(doc("cpusys", 0, 200)) + "\n").length;
  // Two documents per file; <name>, .1, .2 kept.
  await withStore({ rotationBytes: 2 * one, maxRotation: 2 }, async (dir, open) => {
    const store = open();
    const docs = Array.from({ length: 8 }, (_, i) => doc("cpusys", i, 200));
    for (const d of docs) assert(store.write(d));
    // Files now: .2 = 2,3; .1 = 4,5; live = 6,7; 0 and 1 were dropped.
    assertEquals(Deno.readTextFileSync(`${dir}/cpusys.2`).split("\n").length - 1, 2);
    for (let i = 0; i < 8; i++) {
      assertEquals(seqOf(await store.find(docs[i].tracer_id)), i < 2 ? undefined : i);
    }
  });
});

Deno.test("find: an id from an earlier run is found by one scan, which also indexes the rest", async () => {
  await withStore({ rotationBytes: 600, maxRotation: 5 }, async (dir, open) => {
    const first = open();
    const docs = Array.from({ length: 10 }, (_, i) => doc(i % 2 ? "cpusys" : "cpuidle", i, 100));
    for (const d of docs) assert(first.write(d));
    first.close();
    const second = open();
    assertEquals(second.indexStats(), { size: 0, evictions: 0, complete: false });
    assertEquals(seqOf(await second.find(docs[3].tracer_id)), 3);
    assertEquals(second.indexStats(), { size: 10, evictions: 0, complete: true });
    for (const d of docs) assertEquals(await second.find(d.tracer_id), d);
    // Complete: an unknown id is answered from memory. A line slipped in behind the store's back proves it
    // (a scan would find it).
    const sneaky = doc("cpusys", 99);
    Deno.writeTextFileSync(`${dir}/cpusys`, JSON.stringify(sneaky) + "\n", { append: true });
    assertEquals(await second.find(sneaky.tracer_id), undefined);
    assertEquals(await second.find("0123456789abcdef0123456789abcdef"), undefined);
  });
});

Deno.test("find: ids pushed out of a full index are found again by a scan", async () => {
  await withStore({ indexCapacity: 3 }, async (_dir, open) => {
    const store = open();
    const docs = Array.from({ length: 5 }, (_, i) => doc("cpusys", i));
    for (const d of docs) store.write(d);
    assertEquals(store.indexStats(), { size: 3, evictions: 2, complete: false });
    assertEquals(seqOf(await store.find(docs[0].tracer_id)), 0);
    // The scan went through five lines into three slots: still not complete.
    assertEquals(store.indexStats().complete, false);
  });
});

Deno.test("find: a file changed behind the index is scanned again, not trusted", async () => {
  await withStore({}, async (dir, open) => {
    const store = open();
    const a = doc("cpusys", 1);
    const b = doc("cpusys", 2);
    store.write(a);
    store.write(b);
    store.close();
    // Someone rewrites the file: b first, then a; the index still has the old offsets.
    Deno.writeTextFileSync(`${dir}/cpusys`, JSON.stringify(b) + "\n" + JSON.stringify(a) + "\n");
    assertEquals(await store.find(a.tracer_id), a);
    assertEquals(await store.find(b.tracer_id), b);
    Deno.writeTextFileSync(`${dir}/cpusys`, "");
    assertEquals(await store.find(a.tracer_id), undefined);
  });
});

Deno.test("find: lines over the read limit are neither indexed nor read back", async () => {
  await withStore({ maxReadLine: 1000 }, async (_dir, open) => {
    const store = open();
    const big = doc("cpusys", 1, 2000);
    const small = doc("cpusys", 2);
    assert(store.write(big));
    assert(store.write(small));
    assertEquals(await store.find(big.tracer_id), undefined);
    assertEquals(await store.find(small.tracer_id), small);
  });
});

Deno.test("find: concurrent lookups of unknown ids share one scan", async () => {
  await withStore({}, async (_dir, open) => {
    const first = open();
    const docs = Array.from({ length: 4 }, (_, i) => doc("cpuidle", i));
    for (const d of docs) first.write(d);
    first.close();
    const store = open();
    const found = await Promise.all(docs.map((d) => store.find(d.tracer_id)));
    assertEquals(found.map(seqOf), [0, 1, 2, 3]);
    assertEquals(store.indexStats().complete, true);
  });
});

Deno.test("find: a disabled store, or one indexing no tracer, finds nothing", async () => {
  const off = new LocalFileStore({ path: "", rotationSize: 1, maxRotation: 1, indexTracers: ["cpusys"] });
  assertEquals(await off.find("x"), undefined);
  await withStore({ indexTracers: [] }, async (_dir, open) => {
    const store = open();
    const a = doc("cpusys", 1);
    store.write(a);
    assertEquals(await store.find(a.tracer_id), undefined);
  });
});

Deno.test("find: a FIFO among the files is skipped, not waited on", async () => {
  await withStore({}, async (dir, open) => {
    const first = open();
    const a = doc("cpusys", 1);
    first.write(a);
    first.close();
    const mk = await new Deno.Command("mkfifo", { args: [`${dir}/cpusys.2`] }).output();
    assert(mk.success, "mkfifo");
    const store = open();
    assertEquals(await store.find(a.tracer_id), a);
    // The FIFO could not be read: the scan does not vouch for every document.
    assertEquals(store.indexStats().complete, false);
  });
});
