import { EventHub } from "./hub.ts";
import type { EventDocument } from "../core/document.ts";
import { assert, assertEquals, assertStrictEquals } from "../../testing/assert.ts";

function doc(tracer: string, extra: Partial<EventDocument> = {}): EventDocument {
  return {
    hostname: "node-1",
    region: "cn-beijing",
    uploaded_time: "2026-05-18T18:23:45.123456789+08:00",
    time: "2026-05-18 18:23:45.123 +0800",
    tracer_name: tracer,
    tracer_id: "abc123",
    tracer_time: "2026-05-18 18:23:45.123 +0800",
    tracer_type: "auto",
    tracer_data: {},
    ...extra,
  };
}

Deno.test("hub: publish assigns monotonic sequence numbers and fans out to all subscribers", async () => {
  const hub = new EventHub();
  const a = hub.subscribe();
  const b = hub.subscribe();
  const e1 = hub.publish(doc("oom"));
  const e2 = hub.publish(doc("hungtask"));
  assertEquals([e1.seq, e2.seq], [1, 2]);
  assert(e1.id !== e2.id);
  assertStrictEquals((await a.next())?.seq, 1);
  assertStrictEquals((await a.next())?.seq, 2);
  assertStrictEquals((await b.next())?.doc.tracer_name, "oom");
  assertStrictEquals(hub.lastSeq, 2);
  assertEquals(hub.stats(), {
    published: 2,
    delivered: 3,
    droppedClients: 0,
    filterBudgetCutOffs: 0,
    replayed: 0,
    subscribers: 2,
    byTracer: new Map([["oom", 1], ["hungtask", 1]]),
  });
});

Deno.test("hub: a waiting next() is resolved by publish, and by close with null", async () => {
  const hub = new EventHub();
  const sub = hub.subscribe();
  const p = sub.next();
  hub.publish(doc("oom"));
  assertStrictEquals((await p)?.seq, 1);
  const q = sub.next();
  sub.close();
  assertStrictEquals(await q, null);
  assertStrictEquals(sub.closeReason, "closed");
  assertStrictEquals(hub.stats().subscribers, 0);
});

Deno.test("hub: filter applies to live events", async () => {
  const hub = new EventHub();
  const sub = hub.subscribe({ filter: (d) => d.tracer_name === "oom" });
  hub.publish(doc("softlockup"));
  hub.publish(doc("oom"));
  assertStrictEquals((await sub.next())?.seq, 2);
  assertStrictEquals(sub.pending, 0);
});

Deno.test("hub: a full subscriber is cut off and counted without affecting others", async () => {
  const hub = new EventHub({ queueSize: 4 });
  const slow = hub.subscribe();
  const fast = hub.subscribe();
  let closedWith = "";
  slow.onClose((r) => closedWith = r);
  const seen: number[] = [];
  for (let i = 0; i < 10; i++) {
    hub.publish(doc("oom"));
    const ev = await fast.next();
    if (ev) seen.push(ev.seq);
  }
  assertEquals(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assertStrictEquals(closedWith, "slow");
  assertStrictEquals(slow.closeReason, "slow");
  assertStrictEquals(await slow.next(), null);
  assertStrictEquals(hub.stats().droppedClients, 1);
  assertStrictEquals(hub.stats().subscribers, 1);
});

Deno.test("hub: subscribe with lastEventId replays missed events then continues live", async () => {
  const hub = new EventHub({ replaySize: 3 });
  for (let i = 0; i < 5; i++) hub.publish(doc(i % 2 ? "oom" : "ras"));
  // window keeps seq 3..5; resume after 3 → 4, 5, then live 6
  const sub = hub.subscribe({ lastEventId: 3 });
  hub.publish(doc("oom"));
  const got: number[] = [];
  for (let i = 0; i < 3; i++) got.push((await sub.next())!.seq);
  assertEquals(got, [4, 5, 6]);
  assertStrictEquals(hub.stats().replayed, 2);

  // older than the window: replay what is retained; filter applies to replay too
  const old = hub.subscribe({ lastEventId: 0, filter: (d) => d.tracer_name === "oom" });
  assertEquals([(await old.next())!.seq, (await old.next())!.seq], [4, 6]);

  // at or beyond the head: nothing to replay
  const head = hub.subscribe({ lastEventId: 99 });
  assertStrictEquals(head.pending, 0);
});

Deno.test("hub: replay backlog larger than the live queue does not cut the subscriber off", async () => {
  const hub = new EventHub({ queueSize: 2, replaySize: 10 });
  for (let i = 0; i < 10; i++) hub.publish(doc("oom"));
  const sub = hub.subscribe({ lastEventId: 0 });
  hub.publish(doc("oom"));
  assertStrictEquals(sub.closeReason, undefined);
  const got: number[] = [];
  for (let i = 0; i < 11; i++) got.push((await sub.next())!.seq);
  assertEquals(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
});

Deno.test("hub: stats count published events by tracer", () => {
  const hub = new EventHub();
  const base = {
    hostname: "h",
    region: "r",
    uploaded_time: "",
    time: "",
    tracer_id: "x",
    tracer_time: "",
    tracer_type: "auto" as const,
    tracer_data: {},
  };
  hub.publish({ ...base, tracer_name: "oom" });
  hub.publish({ ...base, tracer_name: "dropwatch" });
  hub.publish({ ...base, tracer_name: "oom" });
  assertEquals([...hub.stats().byTracer], [["oom", 2], ["dropwatch", 1]]);
});

Deno.test("hub: takeAvailable drains replay then live events without waiting, up to max", async () => {
  const hub = new EventHub();
  hub.publish(doc("oom"));
  hub.publish(doc("oom"));
  const sub = hub.subscribe({ lastEventId: 1 });
  hub.publish(doc("ras"));
  hub.publish(doc("ras"));
  assertEquals(sub.takeAvailable(2).map((e) => e.seq), [2, 3]);
  assertEquals(sub.takeAvailable(10).map((e) => e.seq), [4]);
  assertEquals(sub.takeAvailable(10), []);
  hub.publish(doc("oom"));
  assertStrictEquals((await sub.next())?.seq, 5);
  assertEquals(hub.stats().delivered, 4);
  assertEquals(hub.stats().replayed, 1);
});
