// memory_reclaim_events: the record decoder, and real memory cgroup limit
// reclaim (cgroup v1) of a process reading and writing far more file data than
// its cgroup may cache; a host process reclaiming the same cgroup is not reported.
import { silentLogger } from "../../log/logger.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import { assert, assertEquals, assertThrows } from "../../../testing/assert.ts";
import type { EventInput } from "../../events/sink.ts";
import {
  memoryReclaimEventsTracer,
  RECLAIM_RECORD,
  reclaimRecord,
  reclaimTracerData,
} from "./memory_reclaim_events.ts";
import { exists } from "../../../testing/fs.ts";
import { ShortRecordError } from "../../bpf/record.ts";

const OUT = new URL("../../../_output/bpf", import.meta.url).pathname;
const MEMCG = "/sys/fs/cgroup/memory";
const CG = `${MEMCG}/huatuo-it-reclaim`;
const PYTHON = exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

const skip = Deno.uid() !== 0
  ? "needs root"
  : !exists(`${OUT}/memory_reclaim_events.o`)
  ? "run ./build.sh bpf first"
  : !exists(`${MEMCG}/memory.limit_in_bytes`)
  ? `no cgroup v1 memory controller at ${MEMCG}`
  : undefined;
if (skip) console.warn(`memory_reclaim_events_test: real-kernel test skipped (${skip})`);

Deno.test("reclaimRecord decodes struct reclaim_event and reclaimTracerData uses the seed's names", () => {
  const buf = new ArrayBuffer(16 + RECLAIM_RECORD.size);
  const v = new DataView(buf);
  const o = 16;
  v.setUint32(o, 1896137, true);
  v.setUint32(o + 4, 1896140, true);
  new Uint8Array(buf).set(new TextEncoder().encode("java"), o + 8);
  v.setBigUint64(o + 24, 1412702917n, true);
  v.setBigUint64(o + 32, 17756n, true);
  v.setBigUint64(o + 40, 5_000_000_000n, true);
  v.setBigUint64(o + 48, 4_100_000_000n, true);
  v.setUint32(o + 56, 12, true);
  v.setUint32(o + 60, 2, true);
  const r = reclaimRecord(v, o, RECLAIM_RECORD.size);
  assertEquals(r, {
    pid: 1896137,
    tid: 1896140,
    comm: "java",
    deltatime: 1412702917n,
    memcgId: 17756n,
    now: 5_000_000_000n,
    windowStart: 4_100_000_000n,
    count: 12,
    kind: "memcg",
  });
  assertEquals(reclaimTracerData(r), { pid: 1896137, comm: "java", deltatime: 1412702917, memcg_id: 17756 });
  v.setUint32(o + 60, 1, true);
  assertEquals(reclaimRecord(v, o, RECLAIM_RECORD.size).kind, "direct");
  // A full 16-byte comm (no NUL) is kept whole.
  new Uint8Array(buf).set(new TextEncoder().encode("abcdefghijklmnop"), o + 8);
  assertEquals(reclaimRecord(v, o, RECLAIM_RECORD.size).comm, "abcdefghijklmnop");
  // The ring's length counts: a short record is rejected even inside a large buffer.
  assertThrows(() => reclaimRecord(v, o, RECLAIM_RECORD.size - 1), ShortRecordError);
  assertThrows(() => reclaimRecord(v, o + 1, RECLAIM_RECORD.size), RangeError);
});

// Writes 256 MiB to a disk file, drops it from the page cache, reads it twice:
// in a 32 MiB memory cgroup every page it caches is charged over the limit.
const FILE_CHURN = `
import os, sys
p = sys.argv[1]
buf = b"\\1" * (1 << 20)
with open(p, "wb") as f:
    for i in range(256):
        f.write(buf)
    f.flush()
    os.fsync(f.fileno())
    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
for _ in range(2):
    with open(p, "rb") as f:
        while f.read(1 << 20):
            pass
`;

// Empties the memory cgroup argv[1] (memory cgroup reclaim in this process); prints how long it took (ns).
const FORCE_EMPTY = `
import sys, time
t0 = time.monotonic_ns()
with open(sys.argv[1] + "/memory.force_empty", "w") as f:
    f.write("0")
print(time.monotonic_ns() - t0)
`;
import { testTracerContext } from "../../../testing/tracer.ts";
import { removeCgroupTree } from "../../../testing/cgroup_tree.ts";

const usage = () => Number(Deno.readTextFileSync(`${CG}/memory.usage_in_bytes`).trim());

Deno.test({
  name:
    "memory cgroup limit reclaim of a container process becomes memory_reclaim_events; a host process's does not",
  ignore: skip !== undefined,
  async fn() {
    const threshold = 1_000_000; // 1 ms: a process churning 768 MiB through a 32 MiB cgroup stalls longer
    const got: EventInput[] = [];
    const tracer = memoryReclaimEventsTracer({
      bpf: new BpfRuntime(OUT),
      log: silentLogger,
      config: { EventTracing: { MemoryReclaim: { BlockedThreshold: threshold } } },
      events: (ev) => got.push(ev),
    });
    const ac = new AbortController();
    const data = await Deno.makeTempFile({ dir: "/var/tmp", prefix: "huatuo-it-reclaim-" });
    await removeCgroupTree(CG); // a leftover of an interrupted run
    Deno.mkdirSync(CG);
    try {
      await tracer.start(testTracerContext(ac.signal));
      Deno.writeTextFileSync(`${CG}/memory.limit_in_bytes`, String(32 << 20));
      const ino = Deno.statSync(CG).ino;
      assert(ino !== null && ino > 0, "cgroup dir inode");

      const child = new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${CG}/cgroup.procs && exec ${PYTHON} -c '${FILE_CHURN}' ${data}`],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const out = await child.output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      const pid = child.pid;
      const failcnt = Number(Deno.readTextFileSync(`${CG}/memory.failcnt`).trim());
      assert(failcnt > 0, "the cgroup hit its limit");

      const mine = () => got.filter((e) => e.tracerName === "memory_reclaim_events" && e.data.pid === pid);
      const deadline = Date.now() + 2000;
      while (mine().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const evs = mine();
      assert(evs.length >= 1, `no event for pid ${pid}; got ${JSON.stringify(got.map((e) => e.data))}`);
      for (const { data: d } of evs) {
        assertEquals(Object.keys(d).sort(), ["comm", "deltatime", "memcg_id", "pid"]);
        assertEquals(d.comm, "python3");
        assertEquals(d.memcg_id, ino);
        assert(typeof d.deltatime === "number" && d.deltatime >= threshold, `deltatime ${d.deltatime}`);
        assert(d.deltatime < 10e9, `deltatime ${d.deltatime} is not a sum over ~1 s windows`);
      }

      // A host process (root memory cgroup) reclaiming the same cgroup: writing memory.force_empty makes
      // the writer run memory cgroup reclaim until the cgroup's page cache is gone. The writer is a child
      // moved into the root memory cgroup (this test itself may run in a cgroup of its own).
      // The 32 MiB limit leaves too little cache for force_empty to outlast the threshold reliably:
      // lift it and cache the whole 256 MiB file in the cgroup first (no limit reclaim on the way).
      Deno.writeTextFileSync(`${CG}/memory.limit_in_bytes`, String(1 << 30));
      const cache = await new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${CG}/cgroup.procs && exec cat ${data} > /dev/null`],
        stdin: "null",
        stderr: "piped",
      }).output();
      assertEquals(cache.code, 0, new TextDecoder().decode(cache.stderr));
      const before = usage();
      assert(before > 128 << 20, `cgroup caches ${before} bytes of the 256 MiB file`);
      const host = new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${MEMCG}/cgroup.procs && exec ${PYTHON} -c '${FORCE_EMPTY}' ${CG}`],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const hostOut = await host.output();
      assertEquals(hostOut.code, 0, new TextDecoder().decode(hostOut.stderr));
      const tookNs = Number(new TextDecoder().decode(hostOut.stdout).trim());
      const after = usage();
      console.log(`  force_empty by a root-cgroup process: ${before - after} bytes in ${tookNs} ns`);
      assert(before - after > 8 << 20, `force_empty reclaimed ${before - after} bytes`);
      assert(tookNs >= threshold, `force_empty took ${tookNs} ns: too short to tell the filter works`);
      await new Promise((r) => setTimeout(r, 100)); // the ring is read every 10 ms
      const hostEvents = got.filter((e) => e.data.pid === host.pid);
      assertEquals(hostEvents, [], `a root memory cgroup process reclaimed for ${tookNs} ns`);
      assertEquals(tracer.readers.get("memory_reclaim_events")?.lost ?? 0, 0);
    } finally {
      ac.abort();
      tracer.stop();
      await removeCgroupTree(CG);
      await Deno.remove(data).catch(() => {});
    }
  },
});
