// On the real kernel (root, v1 cpu / cpuacct / memory hierarchies and the
// cgroup2 mount): a kubepods-style container cgroup with a CPU-capped busy
// loop and a memory writer in it, built into a Container by hand, scraped
// through the metrics Registry: CPU use, cores, throttling, running tasks and
// memory.stat arrive with exactly the seed's labels; once the cgroup is
// removed its series are gone on the next scrape and every collector succeeds.
import { assert, assertEquals } from "../../../testing/assert.ts";
import { defaultConfig } from "../../config/schema.ts";
import { silentLogger } from "../../log/logger.ts";
import { Registry } from "../../metrics/registry.ts";
import type { Container } from "../../pod/container.ts";
import { FEATURES } from "../index.ts";
import { context, staticRegistry } from "../../../testing/containers.ts";
import { exists } from "../../../testing/fs.ts";

const ROOT = "/sys/fs/cgroup";
const TOP = "huatuo-it-ccoll";
const UID = "0c5e2a1b-7d3f-4e9a-8b6c-1f2e3d4c5b6a";
const ID = "c011ec7000000000000000000000000000000000000000000000000000000001";
const REL = `${TOP}/kubepods/burstable/pod${UID}/${ID}`;
const HIERARCHIES = ["cpu", "cpuacct", "memory", "unified"] as const;

function skipReason(): string | undefined {
  if (Deno.uid() !== 0) return "needs root";
  const missing = HIERARCHIES.filter((h) => !exists(`${ROOT}/${h}/cgroup.procs`));
  return missing.length ? `no cgroup hierarchy ${missing.join(", ")} under ${ROOT}` : undefined;
}

/** Deepest first, so each rmdir finds its children gone. */
function removeTree(): void {
  const levels = REL.split("/");
  for (const h of HIERARCHIES) {
    for (let n = levels.length; n > 0; n--) {
      try {
        Deno.removeSync(`${ROOT}/${h}/${levels.slice(0, n).join("/")}`);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }
}

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

Deno.test({
  name: "real cgroups: busy loop and memory writer → container series with the seed's labels; removed → gone",
  async fn() {
    const skip = skipReason();
    if (skip) {
      console.warn(`real_cgroup_test skipped: ${skip}`);
      return;
    }
    removeTree(); // leftovers of an interrupted run
    const dirs = Object.fromEntries(HIERARCHIES.map((h) => [h, `${ROOT}/${h}/${REL}`])) as Record<
      typeof HIERARCHIES[number],
      string
    >;
    for (const d of Object.values(dirs)) Deno.mkdirSync(d, { recursive: true });
    // Half a CPU: the loop gets throttled and cores is the quota.
    Deno.writeTextFileSync(`${dirs.cpu}/cpu.cfs_period_us`, "100000");
    Deno.writeTextFileSync(`${dirs.cpu}/cpu.cfs_quota_us`, "50000");
    const tmp = Deno.makeTempDirSync({ prefix: "huatuo-it-ccoll-" });
    // Each workload joins every hierarchy itself, then execs: all its pages and CPU are charged to the container.
    const join = Object.values(dirs).map((d) => `echo $$ > ${d}/cgroup.procs`).join(" && ");
    const children: Deno.ChildProcess[] = [];
    const spawn = (script: string) =>
      children.push(
        new Deno.Command("sh", { args: ["-c", `${join} && exec ${script}`], stdout: "null" }).spawn(),
      );
    try {
      spawn("sh -c 'while :; do :; done'");
      const writer = "const a = new Uint8Array(48 << 20).fill(7);" +
        `Deno.writeFileSync("${tmp}/data", new Uint8Array(24 << 20).fill(a[0]));` +
        `Deno.writeTextFileSync("${tmp}/ready", "");` +
        "setInterval(() => a[1]++, 1000);";
      spawn(`${Deno.execPath()} eval '${writer}'`);
      const deadline = Date.now() + 20_000;
      while (!exists(`${tmp}/ready`)) {
        assert(Date.now() < deadline, "memory writer never got ready");
        await new Promise((r) => setTimeout(r, 50));
      }

      const pids = Deno.readTextFileSync(`${dirs.memory}/cgroup.procs`).trim().split("\n").map(Number);
      const initPid = Math.min(...pids);
      const container: Container = {
        id: ID,
        podUid: UID,
        qosFromPath: "burstable",
        runtime: "",
        cgroupPaths: { cpu: dirs.cpu, cpuacct: dirs.cpuacct, memory: dirs.memory, unified: dirs.unified },
        cgroupId: Deno.statSync(dirs.unified).ino!,
        memcgId: Deno.statSync(dirs.memory).ino!,
        cpuCgroupId: Deno.statSync(dirs.cpu).ino!,
        blkioCgroupId: 0,
        initPid,
        netnsInode: Deno.statSync(`/proc/${initPid}/ns/net`).ino!,
        pod: {
          name: "ccoll-app",
          pod: "ccoll-pod-1",
          namespace: "huatuo-it",
          qos: "burstable",
          type: "normal",
        },
      };
      const containers = staticRegistry([container]);
      const registry = new Registry({ host: "it-host", region: "it" }, silentLogger);
      const ctx = context("", defaultConfig()); // no filters: every memory.stat line
      for (const f of FEATURES) if (f.container) registry.register(f.container(ctx, containers));

      await registry.scrape();
      await new Promise((r) => setTimeout(r, 1500));
      const scrape = await registry.scrape();
      for (const r of scrape.results) assertEquals(r.error, undefined, `${r.name}: ${r.error}`);
      const series = parseExposition(scrape.text).filter((s) => s.labels.container_name === "ccoll-app");
      const v = new Map(series.map((s) => [s.name.replace(/^huatuo_bamai_/, ""), s.value]));
      for (const s of series) {
        assertEquals(s.labels, {
          container_host: "ccoll-pod-1",
          container_hostnamespace: "huatuo-it",
          container_level: "burstable",
          container_name: "ccoll-app",
          container_type: "normal",
          host: "it-host",
          region: "it",
        });
      }
      const get = (k: string) => {
        const x = v.get(k);
        assert(x !== undefined, `no ${k}; got ${[...v.keys()].join(", ")}`);
        return x;
      };
      console.log(
        `cores=${get("cpu_util_container_cores")} usr=${get("cpu_util_container_usr").toFixed(1)}% ` +
          `sys=${get("cpu_util_container_sys").toFixed(1)}% nr_throttled=${
            get("cpu_stat_container_nr_throttled")
          } ` +
          `running=${get("loadavg_container_nr_running")} rss=${get("memory_vmstat_container_rss")} ` +
          `cache=${get("memory_vmstat_container_cache")}`,
      );
      assertEquals(get("cpu_util_container_cores"), 0.5);
      assert(get("cpu_util_container_usr") > 0, "no user CPU for the busy loop");
      // One capped loop uses about all of its half CPU.
      assert(get("cpu_util_container_total") > 40 && get("cpu_util_container_total") < 150);
      assert(get("cpu_stat_container_nr_throttled") > 0 && get("cpu_stat_container_throttled_time") > 0);
      assert(get("loadavg_container_nr_running") >= 1);
      assert(get("memory_vmstat_container_rss") >= 40 << 20, "anon pages of the writer");
      assert(get("memory_vmstat_container_cache") >= 20 << 20, "page cache of the written file");
      // v1 memory events: failcnt and oom_control exist.
      assertEquals(get("memory_events_container_max"), 0);
      assertEquals(get("memory_events_container_oom_kill"), 0);

      // The same container seen through cgroup2 only (a pure v2 host): cpu.stat usage and cgroup.threads.
      const v2only = staticRegistry([{
        ...container,
        id: "f".repeat(64),
        cgroupPaths: { unified: dirs.unified },
      }]);
      const util = FEATURES.find((f) => f.name === "cpu_util")!.container!(ctx, v2only);
      const load = FEATURES.find((f) => f.name === "loadavg")!.container!(ctx, v2only);
      await util.collect();
      await new Promise((r) => setTimeout(r, 1000));
      const v2 = new Map([...await util.collect(), ...await load.collect()].map((s) => [s.name, s.value]));
      console.log(`v2: ${JSON.stringify(Object.fromEntries(v2))}`);
      assert(v2.get("cpu_util_container_usr")! > 0 && v2.get("loadavg_container_nr_running")! >= 1);

      // Delete the container: workloads exit, cgroups removed; the registry still lists it.
      for (const c of children) c.kill("SIGKILL");
      for (const c of children) await c.status;
      children.length = 0;
      removeTree();
      const after = await registry.scrape();
      for (const r of after.results) assertEquals(r.error, undefined, `${r.name}: ${r.error}`);
      assertEquals(parseExposition(after.text).filter((s) => "container_name" in s.labels), []);
    } finally {
      for (const c of children) {
        c.kill("SIGKILL");
        await c.status;
      }
      removeTree();
      Deno.removeSync(tmp, { recursive: true });
    }
  },
});
