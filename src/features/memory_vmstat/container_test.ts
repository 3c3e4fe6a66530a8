// memory_vmstat_container_*: the shipped configuration's filters give exactly
// the seed's series on a cgroup2 memory.stat; v1 total_* are excluded; no
// filter keeps every line; garbled files fail the collector.
import { assert, assertEquals, assertRejects } from "../../../testing/assert.ts";
import { loadConfig } from "../../config/load.ts";
import { memoryVmstatContainer } from "./container.ts";
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

const CONF = new URL("../../../huatuo-bamai.conf", import.meta.url).pathname;

Deno.test("shipped conf on the v2 fixture: the seed's memory_vmstat_container_* list, in bytes", async () => {
  const ctx = context(`${FIXTURES}v2`, await loadConfig(CONF));
  const samples = await memoryVmstatContainer(ctx, staticRegistry([v2Container()])).collect();
  const v = valuesOf(samples, V2_ID.slice(0, 12));
  // The seed's example set (its 5.1 内核全景观测 资源状态 block), from a cgroup2 memory.stat.
  const seed = [
    "active_anon",
    "active_file",
    "file_dirty",
    "file_writeback",
    "inactive_anon",
    "inactive_file",
    "pgdeactivate",
    "pgrefill",
    "pgscan_direct",
    "pgscan_kswapd",
    "pgsteal_direct",
    "pgsteal_kswapd",
    "shmem",
    "shmem_thp",
    "unevictable",
  ].map((k) => `memory_vmstat_container_${k}`);
  assertEquals([...v.keys()].sort(), seed);
  assertEquals(v.get("memory_vmstat_container_active_anon"), 14745600);
  assertEquals(v.get("memory_vmstat_container_active_file"), 23617536);
  assertEquals(
    samples[0].help,
    `cgroup memory.stat ${samples[0].name.slice("memory_vmstat_container_".length)}`,
  );
});

Deno.test("v1 fixture: total_* excluded by the shipped conf; no filter keeps every line", async () => {
  const reg = staticRegistry([v1Container()]);
  const shipped = valuesOf(
    await memoryVmstatContainer(context(`${FIXTURES}v1`, await loadConfig(CONF)), reg).collect(),
    "coredns",
  );
  assert(![...shipped.keys()].some((k) => k.includes("total")));
  assertEquals(shipped.get("memory_vmstat_container_dirty"), 4096);
  assertEquals(shipped.get("memory_vmstat_container_active_anon"), 1531904);
  const all = valuesOf(await memoryVmstatContainer(context(`${FIXTURES}v1`), reg).collect(), "coredns");
  assertEquals(all.size, 42);
  assertEquals(all.get("memory_vmstat_container_rss"), 4030464);
  assertEquals(all.get("memory_vmstat_container_cache"), 10104832);
  const excl = valuesOf(
    await memoryVmstatContainer(
      context(`${FIXTURES}v1`, withFilters({ ExcludedOnContainer: "^total_|hierarchical" })),
      reg,
    )
      .collect(),
    "coredns",
  );
  assertEquals(excl.size, 20);
});

Deno.test("garbled memory.stat fails; a deleted container and a cgroup without memory.stat give nothing", async () => {
  await assertRejects(
    () =>
      memoryVmstatContainer(
        context(`${FIXTURES}garbled`),
        staticRegistry([v1Container(`${FIXTURES}garbled`, "")]),
      ).collect(),
    /memory\.stat: line 2/,
  );
  const gone = v1Container("/nonexistent/huatuo-ccoll");
  // cgroup2 with the memory controller not enabled: the directory exists, memory.stat does not.
  const noMem = { ...v2Container(), cgroupPaths: { unified: `${FIXTURES}v2/sys/devices/system/cpu` } };
  assertEquals(
    await memoryVmstatContainer(context(`${FIXTURES}v1`), staticRegistry([gone, noMem])).collect(),
    [],
  );
});
