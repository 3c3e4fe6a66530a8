// BpfCpuProfiler: the pure pieces (map decoding, sample assembly, scope and
// perf_event_attr encoding), then on the real kernel (root): a frame-pointer
// C program's hot functions and a syscall loop's kernel path host-wide,
// nothing left in the kernel after a capture or an abort, and the container
// scope by cgroup2 id and by v1 cpu cgroup inode.

import { assert, assertEquals, assertRejects, assertThrows } from "../../testing/assert.ts";
import { randomHex, removeCgroupTree } from "../../testing/cgroup_tree.ts";
import {
  buildWorkload,
  startWorkload,
  stopWorkload,
  workloadSkipReason,
} from "../../testing/profile_workload.ts";
import { setLibbpfLogger } from "../../ffi/libbpf.ts";
import { findHierarchies } from "../pod/discovery.ts";
import {
  assembleSamples,
  BpfCpuProfiler,
  type CountEntry,
  type CpuProfile,
  decodeCounts,
  decodeStack,
  mapEntries,
  newProcesses,
  PROFILE_KEY,
  samplingAttr,
  scopeRodata,
} from "./cpu_profiler.ts";
import { UNKNOWN_FRAME } from "./symbolize.ts";

const OUT = new URL("../../_output/bpf", import.meta.url).pathname;

Deno.test("decodeCounts / decodeStack: profile_counts keys and values, stack values up to the first zero", () => {
  const n = 2;
  const keys = new Uint8Array(n * PROFILE_KEY.size);
  const kv = new DataView(keys.buffer);
  const values = new Uint8Array(n * 8);
  const vv = new DataView(values.buffer);
  const put = (i: number, tgid: number, k: number, u: number, comm: string, count: number) => {
    const o = i * PROFILE_KEY.size;
    kv.setUint32(o, tgid, true);
    kv.setInt32(o + 4, k, true);
    kv.setInt32(o + 8, u, true);
    keys.set(new TextEncoder().encode(comm), o + 12);
    vv.setBigUint64(i * 8, BigInt(count), true);
  };
  put(0, 4242, 7, -1, "kworker/0:1", 3);
  put(1, 17, -1, 9, "a-sixteen-chars!", 12); // no NUL: all 16 bytes
  assertEquals(decodeCounts(keys, values, n), [
    { tgid: 4242, kernelStackId: 7, userStackId: -1, comm: "kworker/0:1", count: 3 },
    { tgid: 17, kernelStackId: -1, userStackId: 9, comm: "a-sixteen-chars!", count: 12 },
  ]);
  const stack = new Uint8Array(5 * 8);
  const sv = new DataView(stack.buffer);
  sv.setBigUint64(0, 0xffffffff81000010n, true);
  sv.setBigUint64(8, 0xffffffff81000020n, true);
  sv.setBigUint64(24, 0xdeadn, true); // after the terminating zero: ignored
  assertEquals(decodeStack(stack), [0xffffffff81000010n, 0xffffffff81000020n]);
});

Deno.test("assembleSamples: root first (user, then kernel), same-named stacks merged, most samples first", () => {
  const e = (tgid: number, k: number, u: number, count: number, comm = "app"): CountEntry => ({
    tgid,
    kernelStackId: k,
    userStackId: u,
    comm,
    count,
  });
  const kernel = new Map([[1, ["write_null", "vfs_write", "do_syscall_64"]], [2, [
    "vfs_write",
    "do_syscall_64",
  ]]]);
  const user = new Map([["10:5", ["write", "main"]], ["10:6", ["hot_leaf", "main"]], ["10:7", [
    "hot_leaf",
    "main",
  ]]]);
  const samples = assembleSamples(
    [e(10, 1, 5, 2), e(10, -1, 6, 3), e(10, -1, 7, 4), e(11, 2, -1, 1, "kthread"), e(10, 3, 99, 1)],
    (id) => kernel.get(id),
    (tgid, id) => user.get(`${tgid}:${id}`),
  );
  assertEquals(samples, [
    // stacks 6 and 7 differ in addresses but name the same functions: one sample of 7
    { tgid: 10, process: "app", frames: ["main", "hot_leaf"], count: 7, kernelFrames: 0 },
    {
      tgid: 10,
      process: "app",
      frames: ["main", "write", "do_syscall_64", "vfs_write", "write_null"],
      count: 2,
      kernelFrames: 3,
    },
    { tgid: 11, process: "kthread", frames: ["do_syscall_64", "vfs_write"], count: 1, kernelFrames: 2 },
    { tgid: 10, process: "app", frames: [UNKNOWN_FRAME, UNKNOWN_FRAME], count: 1, kernelFrames: 1 },
  ]);
});

Deno.test("newProcesses: tgids with a user stack not seen yet, once each", () => {
  const keys = new Uint8Array(4 * PROFILE_KEY.size);
  const v = new DataView(keys.buffer);
  [[10, 1], [11, -1], [10, 2], [0, 3]].forEach(([tgid, user], i) => {
    v.setUint32(i * PROFILE_KEY.size, tgid, true);
    v.setInt32(i * PROFILE_KEY.size + 8, user, true);
  });
  assertEquals(newProcesses(keys, 4, new Map()), [10]); // 11: a kernel thread; 0: idle
  assertEquals(newProcesses(keys, 4, new Map([[10, []]])), []);
});

Deno.test("scopeRodata, mapEntries, samplingAttr: what the kernel is handed", () => {
  assertEquals(scopeRodata({ kind: "host" }), { target_cgroup2_id: 0n, target_cpu_cgroup_ino: 0n });
  assertEquals(scopeRodata({ kind: "container", cgroup2Id: 77n }), {
    target_cgroup2_id: 77n,
    target_cpu_cgroup_ino: 0n,
  });
  assertEquals(scopeRodata({ kind: "container", cpuCgroupInode: 5n, cgroup2Id: 6n }), {
    target_cgroup2_id: 6n,
    target_cpu_cgroup_ino: 5n,
  });
  assertThrows(() => scopeRodata({ kind: "container" }), RangeError);
  assertEquals(mapEntries(396, 8, 8192, 32768), 8192);
  assertEquals(mapEntries(1980, 8, 8192, 32768), 16384);
  assertEquals(mapEntries(1e6, 8, 8192, 32768), 32768);
  const attr = samplingAttr("cpu-clock", 99);
  const v = new DataView(attr.buffer);
  assertEquals([v.getUint32(0, true), v.getUint32(4, true), v.getBigUint64(8, true)], [1, 128, 0n]); // SOFTWARE, CPU_CLOCK
  assertEquals(v.getBigUint64(16, true), 99n); // sample_freq
  assertEquals(v.getBigUint64(40, true), 1n << 10n); // freq, nothing excluded
  assertEquals(new DataView(samplingAttr("cycles", 99).buffer).getUint32(0, true), 0); // HARDWARE
});

Deno.test("capture refuses bad requests before touching the kernel", async () => {
  const p = new BpfCpuProfiler({ bpfDir: "/nonexistent" });
  const host = { kind: "host" } as const;
  await assertRejects(() => p.capture({ durationMs: 100, frequencyHz: 0, scope: host }), RangeError);
  await assertRejects(() => p.capture({ durationMs: 100, frequencyHz: 99.5, scope: host }), RangeError);
  await assertRejects(() => p.capture({ durationMs: 0, scope: host }), RangeError);
  await assertRejects(() => p.capture({ durationMs: Infinity, scope: host }), RangeError);
  await assertRejects(() => p.capture({ durationMs: 100, scope: { kind: "container" } }), RangeError);
  await assertRejects(() => p.capture({ durationMs: 100, scope: host }), /not found|libbpf/);
  const aborted = AbortSignal.abort(new Error("shutting down"));
  await assertRejects(() => p.capture({ durationMs: 100, scope: host, signal: aborted }), /shutting down/);
});

// ---------------------------------------------------------------- real kernel

const kernelSkip = Deno.uid() !== 0 ? "needs root (BPF, perf events)" : workloadSkipReason() ?? (() => {
  try {
    Deno.statSync(`${OUT}/cpu_profile.o`);
    return undefined;
  } catch {
    return `${OUT}/cpu_profile.o is missing: run ./build.sh bpf first`;
  }
})();
if (kernelSkip) console.warn(`cpu_profiler_test: real-kernel tests ignored: ${kernelSkip}`);
else setLibbpfLogger(() => {});

/** Whether `frames` holds `want` as consecutive frames. */
function hasRun(frames: readonly string[], want: readonly string[]): boolean {
  for (let i = 0; i + want.length <= frames.length; i++) {
    if (want.every((w, j) => frames[i + j] === w)) return true;
  }
  return false;
}

/** Programs named cpu_profile_sample (bpftool shows 15 characters) held by this process. */
async function ourProfilePrograms(): Promise<number> {
  const out = await new Deno.Command("bpftool", { args: ["prog", "show", "-j"], stdout: "piped" }).output();
  const progs = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    name?: string;
    pids?: { pid: number }[];
  }[];
  return progs.filter((p) => p.name?.startsWith("cpu_profile") && p.pids?.some((x) => x.pid === Deno.pid))
    .length;
}

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

function samplesOf(p: CpuProfile, tgid: number) {
  return p.samples.filter((s) => s.tgid === tgid);
}

Deno.test({
  name:
    "capture host-wide: user frames of a frame-pointer program in call order, a syscall loop's kernel path",
  ignore: kernelSkip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-prof-" });
    const bin = await buildWorkload(dir);
    const spin = startWorkload(bin, "spin", { seconds: 30 });
    const sys = startWorkload(bin, "sys", { seconds: 30 });
    const fdsBefore = openFds();
    try {
      await new Promise((r) => setTimeout(r, 200));
      const profiler = new BpfCpuProfiler({ bpfDir: OUT });
      const p = await profiler.capture({ durationMs: 2000, scope: { kind: "host" } });
      const cpus = p.stats.cpus.length;
      console.log(
        `  ${p.total} samples (${p.lost} lost) on ${cpus} CPUs in ${
          Math.round(p.durationMs)
        } ms at ${p.frequencyHz} Hz` +
          ` (${p.stats.clock}); ${p.samples.length} stacks; load ${p.stats.loadMs.toFixed(1)} ms,` +
          ` attach ${p.stats.attachMs.toFixed(1)} ms, read ${p.stats.readMs.toFixed(1)} ms,` +
          ` symbolize ${p.stats.symbolizeMs.toFixed(1)} ms`,
      );
      assertEquals(p.frequencyHz, 99);
      assert(p.durationMs >= 2000 && p.durationMs < 3000, `durationMs ${p.durationMs}`);
      // Two busy processes on all CPUs: close to 99 samples per CPU-second.
      const expected = 2 * 99 * cpus;
      assert(
        p.total > expected * 0.6 && p.total < expected * 1.2,
        `${p.total} samples, ~${expected} expected`,
      );
      assertEquals(p.total, p.samples.reduce((n, s) => n + s.count, 0));
      // A stack whose bucket of the stack map another stack took is lost: ~k²/2n of k stacks in n
      // buckets (a few here, by chance more).
      assert(p.lost <= Math.max(5, p.total * 0.05), `${p.lost} lost`);
      assert(p.samples.every((s) => s.tgid !== 0), "no idle samples by default");

      const spinning = samplesOf(p, spin.pid);
      const hot = spinning.filter((s) => hasRun(s.frames, ["main", "hot_middle", "hot_leaf"]));
      const spinTotal = spinning.reduce((n, s) => n + s.count, 0);
      const hotTotal = hot.reduce((n, s) => n + s.count, 0);
      assert(spinning.every((s) => s.process === "work"), "process name is the comm");
      assert(hotTotal > spinTotal * 0.8, `main;hot_middle;hot_leaf in ${hotTotal} of ${spinTotal} samples`);
      console.log(`  spin: ${hotTotal}/${spinTotal} samples in main → hot_middle → hot_leaf`);
      console.log(`    e.g. ${hot[0].frames.join(";")}`);

      const syscalls = samplesOf(p, sys.pid).filter((s) => s.kernelFrames > 0);
      const kernelFrames = new Set(syscalls.flatMap((s) => s.frames.slice(s.frames.length - s.kernelFrames)));
      assert(kernelFrames.has("do_syscall_64"), `kernel frames of the syscall loop: ${[...kernelFrames]}`);
      assert(
        [...kernelFrames].some((f) => /^(__x64_sys_|__arm64_sys_|ksys_write|vfs_write)/.test(f)),
        `no syscall implementation among ${[...kernelFrames]}`,
      );
      const kernelPath = syscalls.sort((a, b) => b.kernelFrames - a.kernelFrames)[0];
      console.log(`  sys: ${syscalls.length} stacks with kernel frames, e.g. ${kernelPath.frames.join(";")}`);

      // Nothing left behind: no program, no perf or map fd.
      assertEquals(await ourProfilePrograms(), 0);
      assertEquals(openFds(), fdsBefore);
    } finally {
      await stopWorkload(spin);
      await stopWorkload(sys);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "capture: a process that exits mid-capture keeps its user frames (maps kept while it ran)",
  ignore: kernelSkip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-prof-" });
    const bin = await buildWorkload(dir);
    const brief = startWorkload(bin, "spin", { seconds: 2 }); // alarm(2) ends it
    try {
      const p = await new BpfCpuProfiler({ bpfDir: OUT }).capture({
        durationMs: 3500,
        scope: { kind: "host" },
      });
      assert(!(await brief.status).success, "ended by SIGALRM before the capture did");
      const mine = samplesOf(p, brief.pid);
      const named = mine.filter((s) => hasRun(s.frames, ["main", "hot_middle", "hot_leaf"]));
      const n = (xs: typeof mine) => xs.reduce((k, s) => k + s.count, 0);
      console.log(`  exited process: ${n(named)} of ${n(mine)} samples in main → hot_middle → hot_leaf`);
      assert(n(mine) > 20 && n(named) > n(mine) * 0.8, `${n(named)} of ${n(mine)}`);
    } finally {
      await stopWorkload(brief);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "capture: an abort mid-capture rejects with its reason and releases everything; includeIdle samples every tick",
  ignore: kernelSkip !== undefined,
  async fn() {
    const fdsBefore = openFds();
    const profiler = new BpfCpuProfiler({ bpfDir: OUT, includeIdle: true });
    const ac = new AbortController();
    const t0 = performance.now();
    const capture = profiler.capture({ durationMs: 10_000, scope: { kind: "host" }, signal: ac.signal });
    setTimeout(() => ac.abort(new Error("agent stopping")), 300);
    await assertRejects(() => capture, /agent stopping/);
    assert(performance.now() - t0 < 2000, "ended early");
    assertEquals(await ourProfilePrograms(), 0);
    assertEquals(openFds(), fdsBefore);

    // With the idle task every tick of every CPU is a sample, busy or not (a shared host may leave no idle time).
    const p = await profiler.capture({ durationMs: 1000, scope: { kind: "host" } });
    const ticks = (p.durationMs / 1000) * p.frequencyHz * p.stats.cpus.length;
    const idle = p.samples.filter((s) => s.tgid === 0);
    console.log(
      `  includeIdle: ${p.total} samples of ~${Math.round(ticks)} ticks, ${idle.length} idle stacks`,
    );
    assert(p.total > ticks * 0.8 && p.total < ticks * 1.2, `${p.total} samples for ~${ticks} ticks`);
    assert(
      idle.every((s) => s.kernelFrames === s.frames.length && /^swapper/.test(s.process)),
      "idle: swapper/N, kernel only",
    );
  },
});

const hierarchies = kernelSkip ? [] : await findHierarchies("/sys/fs/cgroup");
const unified = hierarchies.find((h) => h.name === "unified");
const cpuV1 = hierarchies.find((h) => h.controllers.includes("cpu"));

Deno.test({
  name: "capture container scope: only the tasks of the cgroup2 cgroup, of the v1 cpu cgroup, of both",
  ignore: kernelSkip !== undefined || !unified || !cpuV1,
  async fn() {
    const name = `huatuo-it-prof-${randomHex(8)}`;
    const v2 = `${unified!.path}/${name}`;
    const v1 = `${cpuV1!.path}/${name}`;
    const dir = await Deno.makeTempDir({ prefix: "huatuo-prof-" });
    const bin = await buildWorkload(dir);
    const inside = startWorkload(bin, "spin", { seconds: 30 });
    const outside = startWorkload(bin, "spin", { seconds: 30 });
    try {
      await Deno.mkdir(v2);
      await Deno.mkdir(v1);
      await Deno.writeTextFile(`${v2}/cgroup.procs`, `${inside.pid}\n`);
      await Deno.writeTextFile(`${v1}/cgroup.procs`, `${inside.pid}\n`);
      const cgroup2Id = BigInt((await Deno.stat(v2)).ino!);
      const cpuCgroupInode = BigInt((await Deno.stat(v1)).ino!);
      const profiler = new BpfCpuProfiler({ bpfDir: OUT });
      const scopes = {
        cgroup2: { kind: "container", cgroup2Id },
        "v1 cpu": { kind: "container", cpuCgroupInode },
        both: { kind: "container", cgroup2Id, cpuCgroupInode },
      } as const;
      for (const [label, scope] of Object.entries(scopes)) {
        const p = await profiler.capture({ durationMs: 1000, scope });
        const tgids = new Set(p.samples.map((s) => s.tgid));
        console.log(`  ${label}: ${p.total} samples, processes ${[...tgids].join(",")}`);
        assertEquals([...tgids], [inside.pid], `${label}: only pid ${inside.pid} (outside: ${outside.pid})`);
        // ~99 when it has a CPU to itself; the host's other work may halve that.
        assert(p.total > 10, `${label}: ${p.total} samples of a busy process in 1 s`);
        assert(p.samples.some((s) => hasRun(s.frames, ["main", "hot_middle", "hot_leaf"])));
      }
      // A cgroup nobody is in: an empty profile.
      const none = await profiler.capture({
        durationMs: 300,
        scope: { kind: "container", cgroup2Id: 1n << 40n },
      });
      assertEquals([none.total, none.samples.length], [0, 0]);
    } finally {
      await stopWorkload(inside);
      await stopWorkload(outside);
      await removeCgroupTree(v2);
      await removeCgroupTree(v1);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
