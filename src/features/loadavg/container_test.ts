// loadavg_container_*: R and D threads from /proc/<tid>/stat of the tids the
// cgroup lists (v1 tasks, cgroup2 cgroup.threads); exited threads skipped,
// odd command names parsed, garbled lists fail.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { HostFs } from "../../host/fs.ts";
import { countTaskStates, loadavgContainer, MAX_TASKS } from "./container.ts";
import {
  context,
  FIXTURES,
  staticRegistry,
  v1Container,
  V2_ID,
  v2Container,
  valuesOf,
} from "../../../testing/containers.ts";

Deno.test("v1 tasks and v2 cgroup.threads: R and D counted, exited threads skipped", async () => {
  const samples = await loadavgContainer(context(`${FIXTURES}v1`), staticRegistry([v1Container()])).collect();
  assertEquals(
    valuesOf(samples, "coredns"),
    new Map([["loadavg_container_nr_running", 2], ["loadavg_container_nr_uninterruptible", 1]]),
  );
  assertEquals(samples[0].help, "nr_running of container");
  assertEquals(samples[1].help, "nr_uninterruptible of container");
  const v2 = await loadavgContainer(context(`${FIXTURES}v2`), staticRegistry([v2Container()])).collect();
  assertEquals(
    valuesOf(v2, V2_ID.slice(0, 12)),
    new Map([["loadavg_container_nr_running", 1], ["loadavg_container_nr_uninterruptible", 1]]),
  );
});

Deno.test("at most MAX_TASKS threads are read", () => {
  const tids = Array.from({ length: MAX_TASKS + 10 }, () => 1201); // 1201 is R
  assertEquals(countTaskStates(new HostFs(`${FIXTURES}v1`), tids).running, MAX_TASKS);
});

Deno.test("garbled tasks fails the collector; a deleted container is skipped", async () => {
  await assertRejects(
    () =>
      loadavgContainer(context(`${FIXTURES}garbled`), staticRegistry([v1Container(`${FIXTURES}garbled`, "")]))
        .collect(),
    /tasks: expected one id per line/,
  );
  assertEquals(
    await loadavgContainer(
      context(`${FIXTURES}v1`),
      staticRegistry([v1Container("/nonexistent/huatuo-ccoll")]),
    ).collect(),
    [],
  );
});
