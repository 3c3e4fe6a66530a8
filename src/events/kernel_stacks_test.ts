// The scene gatherers: the cpu stack record decoder and text, the /proc task
// walk on a fake tree (format, caps), and on the real kernel the perf_event
// sampler of hungtask.o catching a busy task on its CPU (root).
import { silentLogger } from "../log/logger.ts";
import { BpfRuntime, BpfTracer } from "../bpf/tracer.ts";
import { kernelSymbols } from "../bpf/ksyms.ts";
import { ShortRecordError } from "../bpf/record.ts";
import { HostFs } from "../host/fs.ts";
import { assert, assertEquals, assertMatch, assertThrows } from "../../testing/assert.ts";
import {
  blockedTasksStacks,
  CPU_STACK_RECORD,
  cpuStackRecord,
  CpuStackSampler,
  formatBlockedTask,
  formatCpuStacks,
  formatProcStack,
  parseTaskStat,
} from "./kernel_stacks.ts";

const OUT = new URL("../../_output/bpf", import.meta.url).pathname;

function putRecord(
  v: DataView,
  o: number,
  r: { req: bigint; cpu: number; pid: number; tgid: number; len: number; comm: string; stack: bigint[] },
): void {
  v.setBigUint64(o, r.req, true);
  v.setUint32(o + 8, r.cpu, true);
  v.setUint32(o + 12, r.pid, true);
  v.setUint32(o + 16, r.tgid, true);
  v.setInt32(o + 20, r.len, true);
  new Uint8Array(v.buffer, o + 24, 16).set(new TextEncoder().encode(r.comm).subarray(0, 15));
  r.stack.forEach((a, i) => v.setBigUint64(o + 40 + i * 8, a, true));
}

Deno.test("cpuStackRecord decodes struct cpu_stack_event; formatCpuStacks writes the kernel's backtrace style", () => {
  assertEquals(CPU_STACK_RECORD.size, 424);
  const buf = new ArrayBuffer(16 + CPU_STACK_RECORD.size);
  const v = new DataView(buf);
  putRecord(v, 16, {
    req: 7n,
    cpu: 1,
    pid: 4242,
    tgid: 4240,
    len: 24, // three frames; a stale fourth slot must be ignored
    comm: "kworker/1:1H-kblockd",
    stack: [0xffffffff81000010n, 0xffffffff81000120n, 0xffffffff81000200n, 0xdeadn],
  });
  const r = cpuStackRecord(v, 16, CPU_STACK_RECORD.size);
  assertEquals(r, {
    req: 7n,
    cpu: 1,
    pid: 4242,
    tgid: 4240,
    comm: "kworker/1:1H-kb",
    stack: [0xffffffff81000010n, 0xffffffff81000120n, 0xffffffff81000200n],
    error: 0,
  });
  // The ring's length counts: a short record is rejected even inside a large buffer.
  assertThrows(() => cpuStackRecord(v, 16, CPU_STACK_RECORD.size - 1), ShortRecordError);
  assertThrows(() => cpuStackRecord(v, 17, CPU_STACK_RECORD.size), RangeError);

  const user = { ...r, cpu: 0, pid: 99, comm: "spin", stack: [] };
  const failed = { ...r, cpu: 2, stack: [], error: -14 };
  const text = formatCpuStacks([failed, r, user], {
    at: new Date(2025, 5, 10, 14, 30, 22),
    cpus: [0, 1, 2, 3],
    formatStack: (a) => a.map((x) => `f_${x.toString(16).slice(-3)}+0x0/0x10`).join("\n"),
    notes: ["cpu 4: perf_event_open failed: EMFILE"],
  });
  assertEquals(
    text,
    [
      "2025-06-10 14:30:22 Backtrace of all active CPUs (cpu-clock sample)",
      "Backtrace for cpu 0",
      "CPU: 0 PID: 99 Comm: spin",
      " in user mode",
      "Backtrace for cpu 1",
      "CPU: 1 PID: 4242 Comm: kworker/1:1H-kb",
      "Call Trace:",
      " f_010+0x0/0x10",
      " f_120+0x0/0x10",
      " f_200+0x0/0x10",
      "Backtrace for cpu 2",
      "CPU: 2 PID: 4242 Comm: kworker/1:1H-kb",
      " kernel stack unavailable (bpf_get_stack error -14)",
      "Backtrace for cpu 3",
      " no sample: the CPU took no timer interrupt (interrupts disabled?)",
      "cpu 4: perf_event_open failed: EMFILE",
    ].join("\n"),
  );
});

Deno.test("parseTaskStat: comm with spaces and parentheses; garbage is undefined", () => {
  assertEquals(parseTaskStat("1234 (sh) D 1 1234 1234 0 -1 4194560 95 0 0 0"), {
    tid: 1234,
    comm: "sh",
    state: "D",
  });
  assertEquals(parseTaskStat("77 (a (b) c) ) S 1 2 3"), { tid: 77, comm: "a (b) c) ", state: "S" });
  assertEquals(parseTaskStat(""), undefined);
  assertEquals(parseTaskStat("x (y) D 1"), undefined);
  assertEquals(parseTaskStat("12 (y)"), undefined);
  assertEquals(
    formatProcStack("[<0>] percpu_rwsem_wait+0x10b/0x130\n[<0>] __percpu_down_read+0x5a/0x70\n\n"),
    " percpu_rwsem_wait+0x10b/0x130\n __percpu_down_read+0x5a/0x70",
  );
  assertEquals(
    formatBlockedTask({ comm: "sh", tid: 5, tgid: 4 }, " f+0x1/0x2"),
    "task:sh state:D pid:5 tgid:4\n f+0x1/0x2",
  );
});

/** A fake /proc: tasks[tgid] = [[tid, comm, state, stack?]...]. */
function fakeProc(tasks: Record<number, [number, string, string, string?][]>): string {
  const root = Deno.makeTempDirSync({ prefix: "huatuo-it-kstacks-" });
  Deno.mkdirSync(`${root}/proc/self`, { recursive: true }); // non-numeric entries are ignored
  for (const [tgid, list] of Object.entries(tasks)) {
    for (const [tid, comm, state, stack] of list) {
      const dir = `${root}/proc/${tgid}/task/${tid}`;
      Deno.mkdirSync(dir, { recursive: true });
      Deno.writeTextFileSync(`${dir}/stat`, `${tid} (${comm}) ${state} 1 ${tgid} ${tgid} 0 -1 0\n`);
      if (stack !== undefined) Deno.writeTextFileSync(`${dir}/stack`, stack);
    }
  }
  return root;
}

Deno.test("blockedTasksStacks: every D-state thread of every process, in pid order, with its stack", async () => {
  const root = fakeProc({
    10: [[10, "init", "S", ""]],
    300: [[300, "java", "S", ""], [
      301,
      "java io",
      "D",
      "[<0>] io_schedule+0x12/0x40\n[<0>] folio_wait_bit+0x1/0x2\n",
    ]],
    20: [[20, "dd", "D", "[<0>] percpu_rwsem_wait+0x10b/0x130\n"]],
    40: [[40, "nostack", "D"]],
    50: [[50, "zombie", "Z", ""]],
  });
  try {
    const b = await blockedTasksStacks(new HostFs(root));
    assertEquals(b.found, 3);
    assertEquals(b.scanned, 6);
    assertEquals(b.truncated, false);
    assertEquals(
      b.text,
      [
        "task:dd state:D pid:20 tgid:20\n percpu_rwsem_wait+0x10b/0x130",
        "task:nostack state:D pid:40 tgid:40\n (stack unavailable)",
        "task:java io state:D pid:301 tgid:300\n io_schedule+0x12/0x40\n folio_wait_bit+0x1/0x2",
      ].join("\n\n"),
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("blockedTasksStacks: capped in tasks, bytes and threads examined, and says so", async () => {
  const tasks: Record<number, [number, string, string, string?][]> = {};
  for (let p = 100; p < 160; p++) tasks[p] = [[p, `w${p}`, "D", "[<0>] schedule+0x1/0x2\n".repeat(10)]];
  const root = fakeProc(tasks);
  try {
    const fs = new HostFs(root);
    const byTasks = await blockedTasksStacks(fs, { maxTasks: 5, concurrency: 4 });
    assertEquals(byTasks.found, 60);
    assert(byTasks.truncated);
    assertEquals(byTasks.text.match(/^task:/gm)?.length, 5);
    assertMatch(byTasks.text, /\(truncated: 60 D-state tasks found, 60 threads examined\)$/);
    assert(byTasks.text.startsWith("task:w100 state:D pid:100 tgid:100\n schedule+0x1/0x2"));

    const byBytes = await blockedTasksStacks(fs, { maxBytes: 1000 });
    assert(byBytes.truncated);
    const shown = byBytes.text.match(/^task:/gm)?.length ?? 0;
    assert(shown >= 1 && shown < 60, `${shown} tasks shown`);
    const body = byBytes.text.slice(0, byBytes.text.lastIndexOf("\n\n(truncated"));
    assert(new TextEncoder().encode(body).length <= 1000, "text within maxBytes");

    const byScan = await blockedTasksStacks(fs, { maxScan: 10, concurrency: 1 });
    assertEquals(byScan.scanned, 10);
    assertEquals(byScan.found, 10);
    assert(byScan.truncated);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

const skip = Deno.uid() !== 0 ? "needs root" : (() => {
  try {
    Deno.statSync(`${OUT}/hungtask.o`);
    return undefined;
  } catch {
    return "run ./build.sh bpf first";
  }
})();
if (skip) console.warn(`kernel_stacks_test: real-kernel sampler test skipped (${skip})`);

Deno.test({
  name: "CpuStackSampler: one backtrace per online CPU; a CPU-bound task is caught on its CPU (hungtask.o)",
  ignore: skip !== undefined,
  async fn() {
    const tracer: BpfTracer = new BpfTracer({
      name: "hungtask",
      object: "hungtask.o",
      buffers: [{ map: "hungtask_cpu_stacks", onRecord: (v, o, l) => sampler.onRecord(v, o, l) }],
    }, new BpfRuntime(OUT));
    const sampler = new CpuStackSampler({
      program: () => tracer.object.program("hungtask_cpu_stack"),
      requestMap: () => tracer.object.map("hungtask_cpustack_req"),
    });
    const online = Deno.readTextFileSync("/sys/devices/system/cpu/online").trim();
    const cpus = online.split(",").flatMap((r) => {
      const [a, b] = r.split("-").map(Number);
      return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
    });
    const busyCpu = cpus[cpus.length - 1];
    // Reading /dev/zero in big blocks keeps the task in the kernel (clear_user) most of the time.
    const dd = new Deno.Command("taskset", {
      args: ["-c", String(busyCpu), "dd", "if=/dev/zero", "of=/dev/null", "bs=4M"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await tracer.start({ log: silentLogger, signal: new AbortController().signal, fail: () => {} });
    try {
      await new Promise((r) => setTimeout(r, 200));
      let text = "";
      let caught = false;
      const t0 = performance.now();
      for (let i = 0; i < 5 && !caught; i++) {
        text = await sampler.sample();
        caught = new RegExp(`^CPU: ${busyCpu} PID: ${dd.pid} Comm: dd$`, "m").test(text);
      }
      const ms = performance.now() - t0;
      assertMatch(
        text,
        /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Backtrace of all active CPUs \(cpu-clock sample\)\n/,
      );
      for (const cpu of cpus) {
        assertMatch(text, new RegExp(`^Backtrace for cpu ${cpu}\nCPU: ${cpu} PID: \\d+ Comm: `, "m"));
      }
      assert(!text.includes("no sample"), text);
      assert(caught, `dd (pid ${dd.pid}) on cpu ${busyCpu} not seen in 5 samples:\n${text}`);
      // Kernel frames are symbolised as the kernel prints them.
      if (kernelSymbols().size > 0) {
        assertMatch(text, /^Call Trace:\n [a-z_][\w.]*\+0x[0-9a-f]+\/0x[0-9a-f]+/m);
      }
      console.log(`  ${cpus.length} CPUs sampled; ${Math.round(ms)} ms for up to 5 samples`);
      // Requests are serialized and each gets its own answers.
      const [a, b] = await Promise.all([sampler.sample(), sampler.sample()]);
      for (const t of [a, b]) assertEquals(t.match(/^Backtrace for cpu /gm)?.length, cpus.length);
      assertEquals(tracer.readers.get("hungtask_cpu_stacks")?.lost, 0);
    } finally {
      tracer.stop();
      dd.kill("SIGKILL");
      await dd.status;
    }
    // The tracer is gone: the text says why instead of throwing.
    assertMatch(await sampler.sample(), /all-CPU backtrace unavailable: .*not running/);
  },
});
