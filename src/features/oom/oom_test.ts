// The oom tracer: the record decoder, and a real memory cgroup OOM kill seen
// through tp_btf/mark_victim (root, cgroup v1 memory controller).
import { silentLogger } from "../../log/logger.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import { assert, assertEquals, assertThrows } from "../../../testing/assert.ts";
import type { EventInput } from "../../events/sink.ts";
import { OOM_RECORD, oomContainerFields, oomRecord, oomTracer, oomTracerData } from "./oom.ts";
import { exists } from "../../../testing/fs.ts";
import { ShortRecordError } from "../../bpf/record.ts";
import { testTracerContext } from "../../../testing/tracer.ts";
import { removeCgroupTree } from "../../../testing/cgroup_tree.ts";

const OUT = new URL("../../../_output/bpf", import.meta.url).pathname;
const MEMCG = "/sys/fs/cgroup/memory";
const CG = `${MEMCG}/huatuo-it-oom`;

const skip = Deno.uid() !== 0
  ? "needs root"
  : !exists(`${OUT}/oom.o`)
  ? "run ./build.sh bpf first"
  : !exists(`${MEMCG}/memory.limit_in_bytes`)
  ? `no cgroup v1 memory controller at ${MEMCG}`
  : undefined;
if (skip) console.warn(`oom_test: real-kernel test skipped (${skip})`);

function putComm(u8: Uint8Array, off: number, s: string): void {
  u8.set(new TextEncoder().encode(s).subarray(0, 15), off);
}

Deno.test("oomRecord decodes struct oom_event and oomTracerData uses the seed's names", () => {
  const buf = new ArrayBuffer(8 + OOM_RECORD.size);
  const v = new DataView(buf);
  const u8 = new Uint8Array(buf);
  const o = 8;
  v.setUint32(o, 4242, true);
  v.setUint32(o + 4, 777, true);
  putComm(u8, o + 8, "java");
  putComm(u8, o + 24, "a-very-long-command-name"); // 15 bytes + NUL at most in the kernel
  v.setBigUint64(o + 40, 12345n, true);
  v.setBigUint64(o + 48, 678n, true);
  v.setBigUint64(o + 56, 0xff4b8d8be3818000n, true);
  v.setBigUint64(o + 64, 0xff4b8d8be3819000n, true);
  v.setBigUint64(o + 72, 100n, true);
  v.setBigUint64(o + 80, 50n, true);
  v.setBigUint64(o + 88, 7n, true);
  v.setBigUint64(o + 96, 3n, true);
  v.setBigUint64(o + 104, 999n, true);
  v.setUint32(o + 112, 1000, true);
  v.setInt16(o + 116, -500, true);
  const r = oomRecord(v, o, OOM_RECORD.size);
  assertEquals(r, {
    victimPid: 4242,
    triggerPid: 777,
    victimComm: "java",
    triggerComm: "a-very-long-com",
    victimMemcgId: 12345n,
    triggerMemcgId: 678n,
    victimMemcgCss: 0xff4b8d8be3818000n,
    triggerMemcgCss: 0xff4b8d8be3819000n,
    totalVm: 100n,
    anonRss: 50n,
    fileRss: 7n,
    shmemRss: 3n,
    ts: 999n,
    uid: 1000,
    oomScoreAdj: -500,
  });
  assertEquals(oomTracerData(r), {
    victim_pid: 4242,
    victim_process_name: "java",
    victim_memcg_css: "0xff4b8d8be3818000",
    victim_memcg_id: 12345,
    trigger_pid: 777,
    trigger_process_name: "a-very-long-com",
    trigger_memcg_css: "0xff4b8d8be3819000",
    trigger_memcg_id: 678,
  });
  // The ring's length is what counts: a short record is rejected even inside a large buffer.
  assertThrows(() => oomRecord(v, o, OOM_RECORD.size - 1), ShortRecordError);
  assertThrows(() => oomRecord(v, o + 1, OOM_RECORD.size), RangeError);
});

Deno.test({
  name: "a memory cgroup OOM kill becomes one oom event naming victim, trigger and memcg",
  ignore: skip !== undefined,
  async fn() {
    const got: { at: number; ev: EventInput }[] = [];
    const tracer = oomTracer({
      bpf: new BpfRuntime(OUT),
      log: silentLogger,
      events: (ev) => got.push({ at: performance.now(), ev }),
    });
    const ac = new AbortController();
    let child: Deno.ChildProcess | undefined;
    await removeCgroupTree(CG); // a leftover of an interrupted run
    Deno.mkdirSync(CG);
    try {
      await tracer.start(testTracerContext(ac.signal));
      Deno.writeTextFileSync(`${CG}/memory.limit_in_bytes`, String(32 << 20));
      if (exists(`${CG}/memory.memsw.limit_in_bytes`)) {
        Deno.writeTextFileSync(`${CG}/memory.memsw.limit_in_bytes`, String(32 << 20));
      }
      const ino = Deno.statSync(CG).ino;
      assert(ino !== null && ino > 0, "cgroup dir inode");

      // tail buffers /dev/zero forever looking for a newline: it grows until the memcg OOM kills it.
      child = new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${CG}/cgroup.procs && exec tail /dev/zero`],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const pid = child.pid;
      const status = await Promise.race([
        child.status,
        new Promise<never>((_, rej) =>
          setTimeout(() => rej(new Error("not OOM-killed within 20 s")), 20_000)
        ),
      ]);
      const killedAt = performance.now();
      assertEquals(status.signal, "SIGKILL", `exit status ${JSON.stringify(status)}`);

      const mine = () => got.filter((g) => g.ev.tracerName === "oom" && g.ev.data.victim_pid === pid);
      const deadline = killedAt + 3000;
      while (mine().length === 0 && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      await new Promise((r) => setTimeout(r, 50)); // a duplicate would have arrived by now
      const evs = mine();
      assertEquals(evs.length, 1, `oom events for pid ${pid}: ${JSON.stringify(got.map((g) => g.ev.data))}`);
      const { at, ev } = evs[0];
      const d = ev.data;
      assertEquals(d.victim_process_name, "tail");
      assertEquals(d.victim_memcg_id, ino);
      // Single-process cgroup: the task whose allocation hit the limit is the victim itself.
      assertEquals(d.trigger_pid, pid);
      assertEquals(d.trigger_process_name, "tail");
      assertEquals(d.trigger_memcg_id, ino);
      assert(typeof d.victim_memcg_css === "string" && /^0x[0-9a-f]{16}$/.test(d.victim_memcg_css));
      assert(d.victim_memcg_css !== "0x0000000000000000", "victim css pointer filled");
      assertEquals(d.trigger_memcg_css, d.victim_memcg_css);
      assert(at - killedAt < 1000, `event ${Math.round(at - killedAt)} ms after the kill was observed`);
    } finally {
      if (child) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
        await child.status;
      }
      ac.abort();
      tracer.stop();
      await removeCgroupTree(CG);
    }
  },
});

Deno.test("oomContainerFields: victim and trigger containers by memory cgroup id; host cgroups add nothing", () => {
  const victim = {
    id: "v".repeat(64),
    podUid: "",
    qosFromPath: "",
    runtime: "docker",
    cgroupPaths: {},
    cgroupId: 0,
    memcgId: 11,
    cpuCgroupId: 0,
    blkioCgroupId: 0,
    initPid: 0,
    netnsInode: 0,
    pod: { name: "java", pod: "shop-1", namespace: "prod", qos: "burstable", type: "normal" },
  };
  const reg = {
    list: () => [victim],
    byId: () => undefined,
    byCgroupId: (id: number | bigint) => (Number(id) === 11 ? victim : undefined),
    byNetns: () => undefined,
  };
  const r = { victimMemcgId: 11n, triggerMemcgId: 99n } as Parameters<typeof oomContainerFields>[0];
  assertEquals(oomContainerFields(r, reg), {
    victim_container_id: victim.id,
    victim_container_hostname: "shop-1",
  });
  assertEquals(oomContainerFields(r, undefined), {});
});
