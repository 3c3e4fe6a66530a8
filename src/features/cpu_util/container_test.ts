// cpu_util_container_*: units and the first-scrape rule on the v1 and v2
// fixture hosts, windows of at least 5 s on a writable copy, cores from
// quota / cpuset / host CPUs, the seed's label set, garbled and vanished cgroups.
import { assert, assertEquals, assertRejects } from "../../../testing/assert.ts";
import { SourceError } from "../../host/fs.ts";
import { containerCpuUtil, cpuUtilContainer, parseCpuacctStat } from "./container.ts";
import {
  context,
  copyFixture,
  FIXTURES,
  staticRegistry,
  v1Container,
  V2_ID,
  v2Container,
  valuesOf,
} from "../../../testing/containers.ts";

const close = (a: number | undefined, b: number) =>
  assert(a !== undefined && Math.abs(a - b) < 1e-9, `${a} != ${b}`);

Deno.test("containerCpuUtil: percent of the container's cores; no time passed → undefined", () => {
  const u = containerCpuUtil({ user: 1e9, system: 0 }, { user: 2e9, system: 0.5e9 }, 1e9, 2)!;
  assertEquals(u, { usr: 50, sys: 25, total: 75 });
  assertEquals(containerCpuUtil({ user: 0, system: 0 }, { user: 1, system: 1 }, 0, 2), undefined);
  // A counter that went backwards (cgroup recreated under the same id) is not negative use.
  assertEquals(containerCpuUtil({ user: 5e9, system: 5e9 }, { user: 1e9, system: 1e9 }, 1e9, 1)!.total, 0);
});

Deno.test("parseCpuacctStat: USER_HZ ticks → ns; a missing line is garbled", () => {
  assertEquals(parseCpuacctStat("user 4000\nsystem 1000\n", "x"), { user: 40e9, system: 10e9 });
  let err: unknown;
  try {
    parseCpuacctStat("user 1\n", "x");
  } catch (e) {
    err = e;
  }
  assert(err instanceof SourceError);
});

Deno.test("v1 fixture: first scrape is the average since the container's first process started", async () => {
  const c = v1Container();
  const samples = await cpuUtilContainer(context(`${FIXTURES}v1`), staticRegistry([c])).collect();
  const v = valuesOf(samples, "coredns");
  // 40 s user + 10 s system over 1000.5 s on a 2-CPU quota.
  assertEquals(v.get("cpu_util_container_cores"), 2);
  close(v.get("cpu_util_container_usr"), 40 / (1000.5 * 2) * 100);
  close(v.get("cpu_util_container_sys"), 10 / (1000.5 * 2) * 100);
  close(v.get("cpu_util_container_total"), 50 / (1000.5 * 2) * 100);
  for (const s of samples) {
    assertEquals(s.type, "gauge");
    assertEquals(s.labels, {
      container_host: "coredns-855c4dd65d-8v5kg",
      container_hostnamespace: "kube-system",
      container_level: "burstable",
      container_name: "coredns",
      container_type: "normal",
    });
  }
  assertEquals(samples.find((s) => s.name === "cpu_util_container_usr")?.help, "cpu usr for the containers");
  assertEquals(
    samples.find((s) => s.name === "cpu_util_container_cores")?.help,
    "cpu core number for the containers",
  );
});

Deno.test("v2 fixture: cpu.stat usec, cores = min(cpu.max, cpuset); labels from the path without a kubelet", async () => {
  const samples = await cpuUtilContainer(context(`${FIXTURES}v2`), staticRegistry([v2Container()])).collect();
  const name = V2_ID.slice(0, 12);
  const v = valuesOf(samples, name);
  assertEquals(v.get("cpu_util_container_cores"), 1.5);
  close(v.get("cpu_util_container_usr"), 30 / (100 * 1.5) * 100);
  close(v.get("cpu_util_container_sys"), 20 / (100 * 1.5) * 100);
  assertEquals(samples[0].labels, {
    container_host: "",
    container_hostnamespace: "",
    container_level: "burstable",
    container_name: name,
    container_type: "",
  });
});

Deno.test("windows of at least 5 s: every scrape within one gets the same value; cores from quota / cpuset / host", async () => {
  const root = await copyFixture("v1");
  try {
    const c = v1Container(root);
    const stat = `${c.cgroupPaths.cpuacct}/cpuacct.stat`;
    let now = 1000;
    const col = cpuUtilContainer(context(root), staticRegistry([c]), () => now);
    const first = valuesOf(await col.collect(), "coredns").get("cpu_util_container_total");
    // 1 s later (a second scraper, or the same one): still the first window, whatever the counters did.
    await Deno.writeTextFile(stat, "user 4100\nsystem 1050\n");
    now += 1000;
    let v = valuesOf(await col.collect(), "coredns");
    close(v.get("cpu_util_container_total"), first!);
    // 5 s after the first reading: a new window, 5 s of user and 2.5 s of system time on 2 CPUs.
    await Deno.writeTextFile(stat, "user 4500\nsystem 1250\n");
    now += 4000;
    v = valuesOf(await col.collect(), "coredns");
    close(v.get("cpu_util_container_usr"), 50);
    close(v.get("cpu_util_container_sys"), 25);
    close(v.get("cpu_util_container_total"), 75);
    // A scraper 20 ms later, and one 4.9 s later, see the same window whatever the counters did since.
    await Deno.writeTextFile(stat, "user 5500\nsystem 1250\n");
    for (const dt of [20, 4880]) {
      now += dt;
      v = valuesOf(await col.collect(), "coredns");
      close(v.get("cpu_util_container_usr"), 50);
      close(v.get("cpu_util_container_total"), 75);
    }
    // The next window starts at the scrape that found the last one 5 s old: 10 s of user time over 5 s.
    now += 100;
    v = valuesOf(await col.collect(), "coredns");
    close(v.get("cpu_util_container_usr"), 100);
    close(v.get("cpu_util_container_sys"), 0);

    await Deno.writeTextFile(`${c.cgroupPaths.cpu}/cpu.cfs_quota_us`, "-1\n");
    v = valuesOf(await col.collect(), "coredns");
    assertEquals(v.get("cpu_util_container_cores"), 2, "cores are read once per registry refresh");
    v = valuesOf(await cpuUtilContainer(context(root), staticRegistry([{ ...c }])).collect(), "coredns");
    assertEquals(v.get("cpu_util_container_cores"), 6); // the next refresh's object; host: 0-5
    const cpuset = `${root}/sys/fs/cgroup/cpuset/x`;
    await Deno.mkdir(cpuset, { recursive: true });
    await Deno.writeTextFile(`${cpuset}/cpuset.effective_cpus`, "0-2,5\n");
    v = valuesOf(
      await cpuUtilContainer(
        context(root),
        staticRegistry([{ ...c, cgroupPaths: { ...c.cgroupPaths, cpuset } }]),
      ).collect(),
      "coredns",
    );
    assertEquals(v.get("cpu_util_container_cores"), 4);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("no process to date the start: the first scrape has cores only", async () => {
  const samples = await cpuUtilContainer(
    context(`${FIXTURES}v1`),
    staticRegistry([{ ...v1Container(), initPid: 0 }]),
  )
    .collect();
  assertEquals(samples.map((s) => s.name), ["cpu_util_container_cores"]);
});

Deno.test("a deleted container is skipped silently; a garbled one fails the collector naming the file", async () => {
  const gone = { ...v1Container("/nonexistent/huatuo-ccoll"), id: "f".repeat(64), pod: undefined };
  const samples = await cpuUtilContainer(context(`${FIXTURES}v1`), staticRegistry([gone, v1Container()]))
    .collect();
  assertEquals(new Set(samples.map((s) => s.labels?.container_name)), new Set(["coredns"]));
  await assertRejects(
    () =>
      cpuUtilContainer(context(`${FIXTURES}garbled`), staticRegistry([v1Container(`${FIXTURES}garbled`, "")]))
        .collect(),
    /cpuacct\.stat: no user\/system lines/,
  );
});
