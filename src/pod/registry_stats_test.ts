import { assertEquals } from "../../testing/assert.ts";
import { containerRegistryCollector } from "./registry_stats.ts";
import type { Container } from "./container.ts";

Deno.test("containers collector reports the count and the last scan's cost", async () => {
  const c = { id: "a".repeat(64) } as Container;
  const samples = await containerRegistryCollector({
    list: () => [c, c],
    lastRefresh: { ms: 12.5, dirs: 40, containers: 2 },
  }).collect();
  assertEquals(
    samples.map((s) => [s.name, s.value]),
    [["containers", 2], ["containers_refresh_duration_seconds", 0.0125], [
      "containers_refresh_cgroup_dirs",
      40,
    ]],
  );
});
