import { assertEquals } from "../../testing/assert.ts";
import type { EventDocument } from "../core/document.ts";
import { EventHub } from "./hub.ts";
import { eventsCollector } from "./metrics.ts";

const doc = (tracer: string) => ({ tracer_name: tracer, tracer_data: {} }) as unknown as EventDocument;

Deno.test("events_total: every enabled tracer starts at 0, so the first event is an increase", async () => {
  const hub = new EventHub();
  const c = eventsCollector(hub, ["oom", "hungtask"]);
  const totals = async () =>
    (await c.collect()).filter((s) => s.name === "events_total").map((s) => [s.labels?.tracer, s.value]);
  assertEquals(await totals(), [["hungtask", 0], ["oom", 0]]);
  hub.publish(doc("oom"));
  hub.publish(doc("dropwatch")); // not listed: still counted once it happens
  assertEquals(await totals(), [["dropwatch", 1], ["hungtask", 0], ["oom", 1]]);
});
