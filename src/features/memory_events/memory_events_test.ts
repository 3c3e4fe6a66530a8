// memory_events_container_*: cgroup2 memory.events as they are, the v1
// mapping (failcnt → max, oom_control oom_kill → oom_kill), the
// MemoryEvents filters, garbled files.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { memoryEventsContainer, v1MemoryEvents } from "./memory_events.ts";
import {
  context,
  FIXTURES,
  staticRegistry,
  v1Container,
  V2_ID,
  v2Container,
  valuesOf,
  withFilters,
} from "../../../testing/containers.ts";

Deno.test("v2 memory.events and the v1 mapping, no filter", async () => {
  const samples = await memoryEventsContainer(
    context(`${FIXTURES}v1`),
    staticRegistry([v1Container(), v2Container()]),
  )
    .collect();
  assertEquals(
    valuesOf(samples, V2_ID.slice(0, 12)),
    new Map([
      ["memory_events_container_low", 0],
      ["memory_events_container_high", 5],
      ["memory_events_container_max", 3],
      ["memory_events_container_oom", 1],
      ["memory_events_container_oom_kill", 1],
      ["memory_events_container_oom_group_kill", 0],
      ["memory_events_container_sock_fail", 0],
    ]),
  );
  assertEquals(
    valuesOf(samples, "coredns"),
    new Map([["memory_events_container_max", 12], ["memory_events_container_oom_kill", 2]]),
  );
  assertEquals(samples.find((s) => s.name === "memory_events_container_oom")?.help, "memory events oom");
});

Deno.test("Included / Excluded filter the event names", async () => {
  const reg = staticRegistry([v2Container()]);
  const inc = await memoryEventsContainer(context(`${FIXTURES}v2`, withFilters({}, { Included: "oom" })), reg)
    .collect();
  assertEquals(inc.map((s) => s.name).sort(), [
    "memory_events_container_oom",
    "memory_events_container_oom_group_kill",
    "memory_events_container_oom_kill",
  ]);
  const both = await memoryEventsContainer(
    context(`${FIXTURES}v2`, withFilters({}, { Included: "oom", Excluded: "group" })),
    reg,
  ).collect();
  assertEquals(both.length, 2);
  // The seed's default Included (watermark_inc|watermark_dec) matches no upstream-kernel event.
  const seedDefault = await memoryEventsContainer(
    context(`${FIXTURES}v2`, withFilters({}, { Included: "watermark_inc|watermark_dec" })),
    reg,
  ).collect();
  assertEquals(seedDefault, []);
});

Deno.test("v1: oom_control without oom_kill (before 4.13) gives max only; garbled failcnt fails", async () => {
  assertEquals(v1MemoryEvents("4\n", "oom_kill_disable 0\nunder_oom 0\n", "d"), new Map([["max", 4]]));
  await assertRejects(
    () =>
      memoryEventsContainer(
        context(`${FIXTURES}garbled`),
        staticRegistry([v1Container(`${FIXTURES}garbled`, "")]),
      ).collect(),
    /memory\.failcnt: expected an integer/,
  );
});
