// cpu_stat_container_*: v1 ns counters as they are, cgroup2 usec → ns, absent
// counters left out, garbled files fail the collector.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { cpuStatContainer, parseCpuBandwidthStat } from "./cpu_stat.ts";
import {
  context,
  FIXTURES,
  staticRegistry,
  v1Container,
  V2_ID,
  v2Container,
  valuesOf,
} from "../../../testing/containers.ts";

Deno.test("v1 and v2 fixtures: throttling and bursts, times in ns", async () => {
  const ctx = context(`${FIXTURES}v1`);
  const samples = await cpuStatContainer(ctx, staticRegistry([v1Container(), v2Container()])).collect();
  assertEquals(
    valuesOf(samples, "coredns"),
    new Map([
      ["cpu_stat_container_nr_throttled", 37],
      ["cpu_stat_container_throttled_time", 912345678],
      ["cpu_stat_container_nr_bursts", 3],
      ["cpu_stat_container_burst_time", 45000000],
    ]),
  );
  assertEquals(
    valuesOf(samples, V2_ID.slice(0, 12)),
    new Map([
      ["cpu_stat_container_nr_throttled", 40],
      ["cpu_stat_container_throttled_time", 1.5e9],
      ["cpu_stat_container_nr_bursts", 2],
      ["cpu_stat_container_burst_time", 3e7],
    ]),
  );
  const help = new Map(samples.map((s) => [s.name, s.help]));
  assertEquals(help.get("cpu_stat_container_nr_throttled"), "throttle nr for the containers");
  assertEquals(help.get("cpu_stat_container_throttled_time"), "throttle time for the containers");
  assertEquals(help.get("cpu_stat_container_nr_bursts"), "burst nr for the containers");
  assertEquals(help.get("cpu_stat_container_burst_time"), "burst time for the containers");
});

Deno.test("counters the kernel lacks are absent, not 0", () => {
  // cgroup2 without the cpu controller enabled; v1 before 5.14 (no bursts).
  assertEquals(
    parseCpuBandwidthStat("usage_usec 5\nuser_usec 3\nsystem_usec 2\n", "x", true),
    { nr_throttled: undefined, throttled_time: undefined, nr_bursts: undefined, burst_time: undefined },
  );
  assertEquals(
    parseCpuBandwidthStat("nr_periods 1\nnr_throttled 2\nthrottled_time 3\n", "x", false),
    { nr_throttled: 2, throttled_time: 3, nr_bursts: undefined, burst_time: undefined },
  );
});

Deno.test("garbled cpu.stat fails the collector; a deleted container is skipped", async () => {
  await assertRejects(
    () =>
      cpuStatContainer(context(`${FIXTURES}garbled`), staticRegistry([v1Container(`${FIXTURES}garbled`, "")]))
        .collect(),
    /cpu\.stat: line 2/,
  );
  const gone = v1Container("/nonexistent/huatuo-ccoll");
  assertEquals(await cpuStatContainer(context(`${FIXTURES}v1`), staticRegistry([gone])).collect(), []);
});
