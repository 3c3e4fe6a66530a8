// Per-container BPF series in the real agent (root): a kubepods-style test
// container (cgroups in the real v1 cpu/cpuacct/memory/pids/blkio and cgroup2
// hierarchies under /huatuo-it-bpfc, a live `sleep` in it) that the agent
// scans (HUATUO_BAMAI_CGROUP_ROOT); processes started inside it make
//   - run-queue waits (busy loops and sleepers pinned to CPU 0) →
//     runqlat_container_latency{zone};
//   - O_DIRECT writes to a loop device → iolatency_container_blkdisk_{q2c,d2c}
//     {disk=<its major:minor>, zone};
//   - page cache over a 64 MiB memory.limit_in_bytes →
//     memory_reclaim_container_directstall;
// each with the container's labels. Deleting the container drops its series
// within one registry refresh (10 s), and the agent deletes its keys from the
// three BPF maps.

import { assert, assertEquals } from "../testing/assert.ts";
import { CGROUP_MOUNT, CgroupTestTree, randomHex, removeCgroupTree } from "../testing/cgroup_tree.ts";
import { isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import {
  type Cleanup,
  diskIos,
  loopDevice,
  PYTHON,
  run,
  sleep,
  spawnBackground,
  withCleanup,
  writeInCgroup,
} from "./load.ts";
import { type ParsedSeries, parseExposition } from "./prom.ts";

const skip = isRoot() ? undefined : "needs root (cgroups, BPF, loop devices)";
if (skip) console.warn(`integration/containers_bpf_test.ts skipped: ${skip}`);

const BLKIO = `${CGROUP_MOUNT}/blkio`;

/** `cmd args` run by a shell that first joins every cgroup dir in `dirs` (children inherit them). */
function inContainer(dirs: string[], cmd: string, args: string[]): [string, string[]] {
  const join = dirs.map((d) => `echo $$ > '${d}/cgroup.procs' || exit 97`).join("; ");
  return ["sh", ["-c", `${join}; exec "$0" "$@"`, cmd, ...args]];
}

async function series(
  agent: RunningAgent,
  name: string,
  labels: Record<string, string>,
): Promise<ParsedSeries[]> {
  const all = parseExposition(await scrape(agent));
  return [...all.values()].filter((s) =>
    s.name === `huatuo_bamai_${name}` && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
}

function byZone(ss: ParsedSeries[]): number[] {
  const out: number[] = [];
  for (const s of ss) out[Number(s.labels.zone)] = s.value;
  return out;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + (b ?? 0), 0);

/** Ids of the BPF maps a process holds (fdinfo `map_id`), by map name (bpftool). */
async function heldMaps(pid: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fdinfo`)) {
    let id: number;
    try {
      const m = /^map_id:\s+(\d+)$/m.exec(Deno.readTextFileSync(`/proc/${pid}/fdinfo/${e.name}`));
      if (!m) continue;
      id = Number(m[1]);
    } catch {
      continue;
    }
    const info = JSON.parse((await run("bpftool", ["map", "show", "id", String(id), "-j"])).stdout);
    out.set(info.name, id);
  }
  return out;
}

/** The cgroup ids (first u64 of the key) present in a map, via bpftool's raw hex dump. */
async function mapCgroupIds(id: number): Promise<Set<bigint>> {
  const rows: { key: unknown }[] = JSON.parse(
    (await run("bpftool", ["map", "dump", "id", String(id), "-j"])).stdout,
  );
  const ids = new Set<bigint>();
  for (const r of rows) {
    if (!Array.isArray(r.key)) continue;
    const bytes = r.key.slice(0, 8).map((h) => Number.parseInt(String(h), 16));
    ids.add(new DataView(new Uint8Array(bytes).buffer).getBigUint64(0, true));
  }
  return ids;
}

/** Busy loops and 2 ms sleepers pinned to CPU 0 inside the container. */
function containerRunqueueLoad(c: Cleanup, dirs: string[], hogs = 6, sleepers = 3): void {
  for (let i = 0; i < hogs; i++) {
    spawnBackground(
      c,
      `hog ${i}`,
      ...inContainer(dirs, "taskset", ["-c", "0", "sh", "-c", "while :; do :; done"]),
    );
  }
  for (let i = 0; i < sleepers; i++) {
    spawnBackground(
      c,
      `sleeper ${i}`,
      ...inContainer(dirs, "taskset", [
        "-c",
        "0",
        PYTHON,
        "-c",
        "import time\nwhile True: time.sleep(0.002)",
      ]),
    );
  }
}

/** `jobs` parallel dd oflag=direct writers inside the container, to disjoint ranges of `dev`. */
async function containerDirectWrites(dirs: string[], dev: string, jobs = 16, mib = 64): Promise<void> {
  await Promise.all(
    Array.from({ length: jobs }, (_, i) =>
      run(
        ...inContainer(dirs, "dd", [
          "if=/dev/zero",
          `of=${dev}`,
          "bs=1M",
          `count=${mib}`,
          `seek=${i * mib}`,
          "oflag=direct",
          "status=none",
        ]),
      )),
  );
}

Deno.test({
  name: "agent: runqlat/iolatency/memory_reclaim container series from the BPF maps; gone with the container",
  ignore: skip !== undefined,
  async fn(t) {
    const tree = await CgroupTestTree.create("bpfc");
    const blkioRoot = `${BLKIO}${tree.root}`;
    await removeCgroupTree(blkioRoot);
    let agent: RunningAgent | undefined;
    try {
      const podUid = crypto.randomUUID();
      const id = randomHex(64);
      const rel = `/kubepods/burstable/pod${podUid}/${id}`;
      const ct = await tree.add({ id, podUid, qos: "burstable", runtime: "", rel });
      // The test tree has no blkio hierarchy; iolatency keys on it.
      const blkioDir = `${blkioRoot}${rel}`;
      await Deno.mkdir(blkioDir, { recursive: true });
      await Deno.writeTextFile(`${blkioDir}/cgroup.procs`, `${ct.pid}\n`);
      const dirs = [...Object.values(ct.dirs), blkioDir];
      const memDir = ct.dirs["memory"];
      await Deno.writeTextFile(`${memDir}/memory.limit_in_bytes`, `${64 * 1024 * 1024}\n`);
      const ids = {
        cpu: BigInt(Deno.statSync(ct.dirs["cpu"] ?? ct.dirs["cpu,cpuacct"]).ino!),
        memory: BigInt(Deno.statSync(memDir).ino!),
        blkio: BigInt(Deno.statSync(blkioDir).ino!),
      };

      Deno.env.set("HUATUO_BAMAI_CGROUP_ROOT", tree.root);
      try {
        agent = await startAgent({ args: ["--region", "it", "--disable-storage", "--disable-kubelet"] });
      } finally {
        Deno.env.delete("HUATUO_BAMAI_CGROUP_ROOT");
      }
      const a = agent;
      const labels = {
        container_host: "",
        container_hostnamespace: "",
        container_level: "burstable",
        container_name: id.slice(0, 12),
        container_type: "",
      };

      await t.step("runqlat: busy loops + sleepers on CPU 0 in the container → its zones", async () => {
        await withCleanup(async (c) => {
          containerRunqueueLoad(c, dirs);
          await sleep(3000);
        });
        const ss = await series(a, "runqlat_container_latency", labels);
        const z = byZone(ss);
        console.log(`  runqlat_container_latency zones: ${z.join(" ")}`);
        assertEquals(ss.length, 4, "four zones");
        for (const s of ss) {
          assertEquals(s.labels, { ...labels, host: s.labels.host, region: "it", zone: s.labels.zone });
        }
        assert(z[0] > 0, "zone 0 (<10 ms) counted");
        assert(z[1] + z[2] + z[3] > 0, `waits >= 10 ms behind 6 hogs counted: ${z}`);
        // Host cgroups (every other key of the map) are not containers: no series of theirs.
        const all = await series(a, "runqlat_container_latency", {});
        assertEquals(new Set(all.map((s) => s.labels.container_name)), new Set([labels.container_name]));
      });

      await t.step("iolatency: O_DIRECT writers in the container → q2c/d2c for the loop disk", async () => {
        await withCleanup(async (c) => {
          const loop = await loopDevice(c, 2 * 1024 ** 3);
          const io0 = diskIos(loop.name);
          let q2c: number[] = [], d2c: number[] = [];
          // Only requests >= 20 ms count: a few rounds make some slow enough.
          for (let round = 1; round <= 4; round++) {
            await containerDirectWrites(dirs, loop.dev);
            q2c = byZone(
              await series(a, "iolatency_container_blkdisk_q2c", { ...labels, disk: loop.majMin }),
            );
            d2c = byZone(
              await series(a, "iolatency_container_blkdisk_d2c", { ...labels, disk: loop.majMin }),
            );
            console.log(`  round ${round}: q2c ${q2c.join(" ")}; d2c ${d2c.join(" ")}`);
            if (sum(q2c) > 0 && sum(d2c) > 0) break;
          }
          const writes = diskIos(loop.name).writes - io0.writes;
          assertEquals(q2c.length, 6, "six q2c zones");
          assert(sum(q2c) > 0, `q2c counted for ${loop.majMin}`);
          assert(sum(d2c) > 0, `d2c counted for ${loop.majMin}`);
          assert(sum(q2c) <= writes, `q2c ${sum(q2c)} <= completed writes ${writes}`);
        });
      });

      await t.step("memory_reclaim: page cache over memory.limit_in_bytes → directstall", async () => {
        await withCleanup(async (c) => {
          const fail0 = Number(Deno.readTextFileSync(`${memDir}/memory.failcnt`));
          await writeInCgroup(c, { path: memDir, ino: Number(ids.memory) }, 200);
          const fail1 = Number(Deno.readTextFileSync(`${memDir}/memory.failcnt`));
          const ss = await series(a, "memory_reclaim_container_directstall", labels);
          console.log(`  directstall ${ss[0]?.value}; memory.failcnt +${fail1 - fail0}`);
          assertEquals(ss.length, 1);
          assert(ss[0].value > 0, "direct reclaims counted");
          assert(
            ss[0].value <= fail1,
            `at most one reclaim per failed charge (${fail1} since the cgroup was made)`,
          );
        });
      });

      await t.step("deleting the container drops its series and its map keys", async () => {
        const maps = await heldMaps(a.child.pid);
        const keyed = [
          ["runqlat_cgroup", ids.cpu],
          ["memcg_reclaim", ids.memory],
          ["iolat_cgroup", ids.blkio],
        ] as const;
        for (const [name, cg] of keyed) {
          assert(maps.has(name), `agent holds ${name}`);
          assert((await mapCgroupIds(maps.get(name)!)).has(cg), `${name} has the container's key ${cg}`);
        }
        await tree.remove(id);
        await removeCgroupTree(blkioRoot);
        const t0 = Date.now();
        const names = [
          "runqlat_container_latency",
          "iolatency_container_blkdisk_q2c",
          "memory_reclaim_container_directstall",
        ];
        let left = names.length;
        while (Date.now() - t0 < 15_000) {
          left = 0;
          for (const n of names) {
            left += (await series(a, n, { container_name: labels.container_name })).length;
          }
          if (left === 0) break;
          await sleep(500);
        }
        console.log(`  series gone ${Date.now() - t0} ms after the removal`);
        assertEquals(left, 0, "container series left after one refresh");
        for (const [name, cg] of keyed) {
          assert(!(await mapCgroupIds(maps.get(name)!)).has(cg), `${name} key ${cg} deleted`);
        }
      });
      assertEquals((await agent.stop()).code, 0);
    } finally {
      await agent?.stop("SIGKILL");
      await tree.cleanup();
      await removeCgroupTree(blkioRoot);
    }
  },
});
