// Merging a feature's container part into its host collector.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { gauge } from "../../core/sample.ts";
import type { Collector } from "../../core/collector.ts";
import { mergeCollectors } from "./container_part.ts";

const part = (name: string, fail = false): Collector => ({
  name,
  collect: () => fail ? Promise.reject(new Error("boom")) : Promise.resolve([gauge(`${name}_x`, "h", 1)]),
});

Deno.test("mergeCollectors: both parts' samples under the host's name", async () => {
  const merged = mergeCollectors(part("a"), part("a_container"));
  assertEquals(merged.name, "a");
  assertEquals((await merged.collect()).map((s) => s.name), ["a_x", "a_container_x"]);
});

Deno.test("mergeCollectors: a failing part fails the collector and is named", async () => {
  const bad = { name: "c", collect: () => Promise.reject(new Error("cgroup garbled")) };
  await assertRejects(() => mergeCollectors(part("a"), bad).collect(), /containers: cgroup garbled/);
  await assertRejects(
    () => mergeCollectors(part("a", true), bad).collect(),
    /boom; containers: cgroup garbled/,
  );
});
