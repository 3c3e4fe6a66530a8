// Real-kernel tests for ffi/libbpf.ts. They need root, libbpf.so.1 and the
// test objects from `./build.sh bpf` (_output/bpf/test/*.o); without them
// every test is ignored with the reason printed once.
import { assert, assertEquals, assertMatch, assertStrictEquals, assertThrows } from "../testing/assert.ts";
import {
  BPF_NOEXIST,
  BpfError,
  BpfObject,
  bpfStatsEnabled,
  closeAll,
  type LibbpfLogLevel,
  libbpfUnavailableMessage,
  numPossibleCpus,
  setLibbpfLogger,
} from "./libbpf.ts";

const OUT = new URL("../_output/bpf/test/", import.meta.url).pathname;
const MINIMAL = `${OUT}minimal.o`;
const BROKEN = `${OUT}broken.o`;
const MINIMAL_PROGS = ["hb_min_getppid", "hb_min_raw_ent", "hb_min_switch", "hb_min_perf"];

// Slots of minimal.bpf.c's `counters` map.
const C_GETPPID = 0;
const C_RAW_ENTER = 1;
const C_SWITCH = 2;
const C_PERF = 3;

function skipReason(): string | undefined {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "not root: loading BPF programs needs CAP_BPF/CAP_PERFMON (run as root)";
  for (const f of [MINIMAL, BROKEN]) {
    try {
      Deno.statSync(f);
    } catch {
      return `${f} is missing: run ./build.sh bpf first`;
    }
  }
  return undefined;
}

const skip = skipReason();
if (skip) console.log(`ffi/libbpf_test.ts: skipping real-kernel tests: ${skip}`);

function bpfTest(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, ignore: skip !== undefined, fn });
}

// Quiet by default; tests that care collect the lines themselves.
if (!skip) setLibbpfLogger(() => {});

let libcTest: Deno.DynamicLibrary<typeof LIBC_TEST>["symbols"] | undefined;
const LIBC_TEST = {
  getppid: { parameters: [], result: "i32" },
  syscall: { parameters: ["i64", "buffer", "i32", "i32", "i32", "u64"], result: "i64" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

function libc(): Deno.DynamicLibrary<typeof LIBC_TEST>["symbols"] {
  libcTest ??= Deno.dlopen("libc.so.6", LIBC_TEST).symbols;
  return libcTest;
}

function getppidTimes(n: number): void {
  const f = libc().getppid;
  for (let i = 0; i < n; i++) f();
}

function u32(v: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new Uint32Array([v]).buffer);
}

function readU64(bytes: Uint8Array, off = 0): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(off, true);
}

function counter(obj: BpfObject, slot: number): bigint {
  const v = new Uint8Array(8);
  assert(obj.map("counters").lookup(u32(slot), v));
  return readU64(v);
}

function openMinimal(): BpfObject {
  const obj = BpfObject.openFile(MINIMAL);
  obj.setRodata({ target_tgid: Deno.pid, magic: 0x1234_5678_9abc_def0n });
  return obj;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

interface ProgEntry {
  id: number;
  name?: string;
}

async function listPrograms(): Promise<ProgEntry[]> {
  const out = await new Deno.Command("bpftool", {
    args: ["prog", "list", "-j"],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  assert(out.success, `bpftool prog list failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as ProgEntry[];
}

async function ourPrograms(ids?: number[]): Promise<ProgEntry[]> {
  return (await listPrograms()).filter((p) =>
    MINIMAL_PROGS.includes(p.name ?? "") || (ids !== undefined && ids.includes(p.id))
  );
}

// The kernel frees programs after the last reference goes (partly via RCU), so poll.
async function waitNoPrograms(ids?: number[]): Promise<void> {
  let left: ProgEntry[] = [];
  for (let i = 0; i < 100; i++) {
    left = await ourPrograms(ids);
    if (left.length === 0) return;
    await sleep(50);
  }
  throw new Error(`programs still loaded: ${JSON.stringify(left)}`);
}

bpfTest("minimal.o: setRodata, load, attachAll; counters match getppid calls exactly", async () => {
  const obj = openMinimal();
  try {
    assertEquals(obj.programs.map((p) => p.name), MINIMAL_PROGS);
    assertEquals(obj.program("hb_min_raw_ent").section, "raw_tp/sys_enter");
    obj.load();
    for (const p of obj.programs) assert(p.fd > 0, `${p.name} has no fd`);
    const links = obj.attachAll();
    assertEquals(links.length, 3, "tp, raw_tp and tp_btf attach; perf_event is skipped");

    const N = 1000;
    assertStrictEquals(counter(obj, C_GETPPID), 0n);
    getppidTimes(N);
    assertStrictEquals(counter(obj, C_GETPPID), BigInt(N));
    assert(counter(obj, C_RAW_ENTER) >= BigInt(N), "raw_tp/sys_enter saw our syscalls");

    const percpu = obj.map("percpu_hits");
    const vals = new Uint8Array(percpu.perCpuValueSize);
    assert(percpu.lookup(u32(0), vals));
    const dv = new DataView(vals.buffer);
    let sum = 0;
    for (let cpu = 0; cpu < numPossibleCpus(); cpu++) sum += dv.getUint32(cpu * 8, true);
    assertStrictEquals(sum, N);

    const m = new Uint8Array(8);
    assert(obj.map("magic_by_tgid").lookup(u32(Deno.pid), m), "hash map has our tgid");
    assertStrictEquals(readU64(m), 0x1234_5678_9abc_def0n);
    assertStrictEquals(obj.map("magic_by_tgid").lookup(u32(1), m), false);

    await sleep(20);
    assert(counter(obj, C_SWITCH) > 0n, "tp_btf/sched_switch ran");
  } finally {
    obj.close();
  }
});

bpfTest("lookupBatch reads all 10k hash entries and matches get_next_key iteration", () => {
  const obj = BpfObject.openFile(MINIMAL);
  try {
    obj.load();
    const bulk = obj.map("bulk");
    const value = new Uint8Array(16);
    const vdv = new DataView(value.buffer);
    for (let i = 0; i < 10_000; i++) {
      vdv.setBigUint64(0, BigInt(i), true);
      vdv.setBigUint64(8, BigInt(i) * 3n, true);
      bulk.update(u32(i), value, BPF_NOEXIST);
    }
    for (const opts of [{}, { chunk: 7 }, { batch: false }]) {
      const { keys, values, count } = bulk.lookupBatch(opts);
      assertStrictEquals(count, 10_000, JSON.stringify(opts));
      const kdv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
      const vv = new DataView(values.buffer, values.byteOffset, values.byteLength);
      const seen = new Set<number>();
      for (let i = 0; i < count; i++) {
        const k = kdv.getUint32(i * 4, true);
        seen.add(k);
        assertStrictEquals(vv.getBigUint64(i * 16, true), BigInt(k));
        assertStrictEquals(vv.getBigUint64(i * 16 + 8, true), BigInt(k) * 3n);
      }
      assertStrictEquals(seen.size, 10_000);
    }
    const iterated = new Set<number>();
    for (const k of bulk.keys()) iterated.add(new DataView(k.buffer).getUint32(0, true));
    assertStrictEquals(iterated.size, 10_000);
    for (let i = 0; i < 10_000; i++) assert(iterated.has(i));

    // Buffers are reused between calls.
    const a = bulk.lookupBatch();
    const b = bulk.lookupBatch();
    assertStrictEquals(a.keys.buffer, b.keys.buffer);

    assert(bulk.delete(u32(5)));
    assertStrictEquals(bulk.delete(u32(5)), false);
    assertStrictEquals(bulk.lookupBatch().count, 9_999);

    // Array maps batch too: every slot is an entry.
    assertStrictEquals(obj.map("counters").lookupBatch().count, 4);
  } finally {
    obj.close();
  }
});

bpfTest("per-CPU maps: value buffers are possible CPUs × round_up(value_size, 8)", () => {
  const possible = Deno.readTextFileSync("/sys/devices/system/cpu/possible").trim().split(",")
    .map((r) => r.split("-").map(Number))
    .reduce((n, [lo, hi]) => n + (hi ?? lo) - lo + 1, 0);
  assertStrictEquals(numPossibleCpus(), possible);
  const obj = BpfObject.openFile(MINIMAL);
  try {
    obj.load();
    const percpu = obj.map("percpu_hits");
    assert(percpu.isPerCpu);
    assertStrictEquals(percpu.valueSize, 4);
    assertStrictEquals(percpu.perCpuValueSize, possible * 8);
    assertStrictEquals(obj.map("counters").isPerCpu, false);
    assertThrows(
      () => percpu.lookup(u32(0), new Uint8Array(4)),
      /percpu_hits.*value buffer is 4 bytes, needs \d+ \(per-CPU/,
    );
    assertThrows(
      () => percpu.lookup(new Uint8Array(2), new Uint8Array(possible * 8)),
      /key buffer is 2 bytes/,
    );

    // Write a distinct value per CPU and read it back, in lookup and batch form.
    const vals = new Uint8Array(percpu.perCpuValueSize);
    const dv = new DataView(vals.buffer);
    for (let cpu = 0; cpu < possible; cpu++) dv.setUint32(cpu * 8, 100 + cpu, true);
    percpu.update(u32(0), vals);
    const back = new Uint8Array(percpu.perCpuValueSize);
    assert(percpu.lookup(u32(0), back));
    assertEquals(back, vals);
    const batch = percpu.lookupBatch();
    assertStrictEquals(batch.count, 1);
    assertEquals(batch.values, vals);
  } finally {
    obj.close();
  }
});

bpfTest("setRodata: unknown names, bad sizes and late calls are clear errors", () => {
  const obj = BpfObject.openFile(MINIMAL);
  try {
    assertThrows(
      () => obj.setRodata({ no_such_var: 1 }),
      /minimal\.o: set rodata: unknown variable 'no_such_var' \(\.rodata has: target_tgid, magic\)/,
    );
    assertThrows(
      () => obj.setRodata({ target_tgid: 2 ** 32 }),
      /'target_tgid': 4294967296 does not fit in 4 bytes/,
    );
    assertThrows(() => obj.setRodata({ magic: new Uint8Array(4) }), /'magic': size is 8 bytes, got 4/);
    assertThrows(() => obj.setRodata({ magic: 1.5 }), /'magic': 1.5 is not an integer/);
    obj.setRodata({ target_tgid: true, magic: new Uint8Array(8).fill(0xff) });
    obj.load();
    assertThrows(() => obj.setRodata({ magic: 1 }), /set rodata: object is loaded, needs opened/);
    assertThrows(
      () => obj.map("nope"),
      /minimal\.o: no map nope: maps: percpu_hits, magic_by_tgid, counters, bulk, minimal\.rodata/,
    );
    assertThrows(() => obj.program("nope"), /no program nope: programs: hb_min_getppid, /);
  } finally {
    obj.close();
  }
});

bpfTest("broken.o: load fails with the verifier's words, program name and whole log", () => {
  const seen: [LibbpfLogLevel, string][] = [];
  setLibbpfLogger((level, msg) => seen.push([level, msg]));
  const obj = BpfObject.openFile(BROKEN);
  try {
    let err: unknown;
    try {
      obj.load();
    } catch (e) {
      err = e;
    }
    assert(err instanceof BpfError, `expected BpfError, got ${err}`);
    assertMatch(
      err.message,
      /^broken\.o: load program hb_broken_prog: EACCES \(Permission denied\): .*invalid mem access 'map_value_or_null'/,
    );
    assertStrictEquals(err.program, "hb_broken_prog");
    assertStrictEquals(err.errno, 13);
    // The log is ~80 KB, far past the first format buffer: it must arrive whole.
    const vlog = err.verifierLog;
    assertMatch(vlog[vlog.length - 1], /^processed \d+ insns/);
    assert(vlog.some((l) => /^0: R1=ctx/.test(l)), "the verifier log starts at insn 0");
    assert(vlog.join("\n").length > 16_384, "long verifier log kept whole");
    assert(
      seen.some(([lvl, m]) => lvl === "warn" && m.includes("-- END PROG LOAD LOG --")),
      "logger saw the log",
    );
    assertStrictEquals(obj.state, "failed");
    assertThrows(() => obj.attachAll(), /object is failed, needs loaded/);
  } finally {
    obj.close();
    setLibbpfLogger(() => {});
  }

  // Without the broken program the rest loads.
  const ok = BpfObject.openFile(BROKEN);
  try {
    ok.setAutoload("hb_broken_prog", false);
    ok.load();
    assert(ok.program("hb_ok_prog").fd > 0);
    assertStrictEquals(ok.program("hb_broken_prog").fd, -1);
    assertStrictEquals(ok.attachAll().length, 1);
  } finally {
    ok.close();
  }
});

bpfTest("openFile/openMem: names, custom BTF, and open errors", () => {
  assertThrows(() => BpfObject.openFile("/nonexistent/x.o"), /^BpfError: x\.o: open: ENOENT/);
  assertThrows(() => BpfObject.openMem(new Uint8Array(64), "junk.o"), /^BpfError: junk\.o: open: /);

  const mem = BpfObject.openMem(Deno.readFileSync(MINIMAL), "minimal.o", {
    btfCustomPath: "/sys/kernel/btf/vmlinux",
  });
  try {
    assertStrictEquals(mem.name, "minimal.o");
    assert(mem.maps.some((m) => m.name === "minimal.rodata"), mem.maps.map((m) => m.name).join());
    mem.setRodata({ target_tgid: Deno.pid, magic: 7n });
    mem.load();
    mem.attachAll();
    getppidTimes(3);
    assertStrictEquals(counter(mem, C_GETPPID), 3n);
  } finally {
    mem.close();
  }

  // The custom BTF is read at load time.
  const bad = BpfObject.openFile(MINIMAL, { btfCustomPath: "/nonexistent.btf" });
  try {
    assertThrows(() => bad.load(), /^BpfError: minimal\.o: load: ENOENT .*nonexistent\.btf/);
  } finally {
    bad.close();
  }
});

bpfTest("attachPerfEvent: samples arrive; destroying the link closes the perf fd", async () => {
  const obj = BpfObject.openFile(MINIMAL);
  try {
    obj.load();
    const prog = obj.program("hb_min_perf");
    const fds: number[] = [];
    const links = [];
    for (let cpu = 0; cpu < numPossibleCpus(); cpu++) {
      const fd = perfEventOpenCpuClock(cpu);
      if (fd < 0) continue; // offline CPU
      fds.push(fd);
      links.push(prog.attachPerfEvent(fd));
    }
    assert(links.length > 0, "no perf event could be opened");
    const until = Date.now() + 2000;
    while (counter(obj, C_PERF) === 0n && Date.now() < until) await sleep(20);
    assert(counter(obj, C_PERF) > 0n, "perf_event program ran");
    for (const l of links) {
      l.destroy();
      l.destroy(); // idempotent
    }
    for (const fd of fds) {
      let target = "";
      try {
        target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
      } catch {
        // closed: what we expect
      }
      assert(!target.includes("perf_event"), `perf fd ${fd} still open: ${target}`);
    }
  } finally {
    obj.close();
  }
});

// perf_event_open(2) of a software cpu-clock event at 1 kHz on one CPU.
// struct perf_event_attr (linux/perf_event.h, checked with offsetof):
// type@0 size@4 config@8 sample_freq@16 flags@40 (freq = bit 10).
function perfEventOpenCpuClock(cpu: number): number {
  const attr = new Uint8Array(128);
  const dv = new DataView(attr.buffer);
  dv.setUint32(0, 1, true); // PERF_TYPE_SOFTWARE
  dv.setUint32(4, 128, true);
  dv.setBigUint64(8, 0n, true); // PERF_COUNT_SW_CPU_CLOCK
  dv.setBigUint64(16, 1000n, true);
  dv.setBigUint64(40, 1n << 10n, true);
  const SYS_perf_event_open = 298n;
  const PERF_FLAG_FD_CLOEXEC = 8n;
  return Number(libc().syscall(SYS_perf_event_open, attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
}

bpfTest("info(): run count and time grow while kernel.bpf_stats_enabled=1", () => {
  const path = "/proc/sys/kernel/bpf_stats_enabled";
  const old = Deno.readTextFileSync(path).trim();
  const obj = openMinimal();
  try {
    Deno.writeTextFileSync(path, "1");
    assert(bpfStatsEnabled());
    obj.load();
    obj.attachAll();
    const prog = obj.program("hb_min_getppid");
    const before = prog.info();
    assertStrictEquals(before.name, "hb_min_getppid");
    assert(before.id > 0);
    assertStrictEquals(before.type, prog.type);
    assert((before.verifiedInsns ?? 0) > 0, "verified_insns reported");
    getppidTimes(200);
    const after = prog.info();
    assert(after.runCnt - before.runCnt >= 200n, `run_cnt ${before.runCnt} → ${after.runCnt}`);
    assert(after.runTimeNs > before.runTimeNs);
  } finally {
    obj.close();
    Deno.writeTextFileSync(path, old);
  }
});

bpfTest("close(): links and programs are gone from the kernel; handles refuse use", async () => {
  await waitNoPrograms(); // earlier tests' programs may still be being freed
  const obj = openMinimal();
  let ids: number[] = [];
  try {
    obj.load();
    const links = obj.attachAll();
    ids = obj.programs.map((p) => p.info().id);
    assertEquals((await ourPrograms()).map((p) => p.id).sort(), [...ids].sort());
    const counters = obj.map("counters");
    const prog = obj.program("hb_min_getppid");
    obj.close();
    obj.close(); // idempotent
    assert(links.every((l) => l.destroyed));
    await waitNoPrograms(ids);
    assertStrictEquals(counters.fd, -1);
    assertThrows(() => counters.lookup(u32(0), new Uint8Array(8)), /lookup map counters: object is closed/);
    assertThrows(() => prog.attach(), /attach program hb_min_getppid: object is closed/);
    assertStrictEquals(obj.state, "closed");
  } finally {
    obj.close();
  }

  // closeAll() releases whatever is still open.
  const a = openMinimal();
  const b = BpfObject.openFile(BROKEN);
  try {
    a.load();
    a.attachAll();
  } finally {
    closeAll();
  }
  assertStrictEquals(a.state, "closed");
  assertStrictEquals(b.state, "closed");
  await waitNoPrograms();
});

bpfTest("SIGKILL of a process holding minimal.o leaves nothing loaded", async () => {
  await waitNoPrograms();
  const dir = await Deno.makeTempDir({ prefix: "libbpf_test_" });
  try {
    const script = `${dir}/child.ts`;
    await Deno.writeTextFile(
      script,
      `import { BpfObject } from ${JSON.stringify(new URL("./libbpf.ts", import.meta.url).href)};
const obj = BpfObject.openFile(${JSON.stringify(MINIMAL)});
obj.setRodata({ target_tgid: Deno.pid });
obj.load();
obj.attachAll();
console.log("ready " + obj.programs.map((p) => p.info().id).join(","));
setInterval(() => {}, 1000);
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-lock", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    let text = "";
    try {
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const m = /^ready ([\d,]+)/.exec(text);
      assert(m, `child did not get ready: ${JSON.stringify(text)}`);
      const ids = m[1].split(",").map(Number);
      assertStrictEquals(ids.length, MINIMAL_PROGS.length);
      const listed = (await ourPrograms(ids)).map((p) => p.id).sort();
      assertEquals(listed, [...ids].sort());
      child.kill("SIGKILL");
      const status = await child.status;
      assertStrictEquals(status.signal, "SIGKILL");
      await waitNoPrograms(ids);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await reader.cancel();
      await child.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("libbpfUnavailableMessage: dlopen's reason without Deno's repeated prefix", () => {
  assertStrictEquals(
    libbpfUnavailableMessage(
      "Could not open library: Could not open library: libbpf.so.1: cannot open shared object file: " +
        "No such file or directory",
    ),
    "libbpf.so.1 not found: libbpf.so.1: cannot open shared object file: No such file or directory",
  );
  assertStrictEquals(
    libbpfUnavailableMessage("Could not open library: /lib/x86_64-linux-gnu/libbpf.so.1: file too short"),
    "libbpf.so.1 cannot be loaded: /lib/x86_64-linux-gnu/libbpf.so.1: file too short",
  );
});
