// The ras tracer: decoders of every source on hand-built struct ras_event
// records, the seed's severity tables, and on the real kernel (root): the
// tracer's state against the RAS tracepoints tracefs lists, unsupported when
// none of its hooks exists, and the loaded programs fed with the tracepoints'
// arguments through BPF_PROG_TEST_RUN (no hardware error can be caused here).
import { silentLogger } from "../../log/logger.ts";
import { setLibbpfLogger } from "../../../ffi/libbpf.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import { UnsupportedError } from "../../tracing/manager.ts";
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../../../testing/assert.ts";
import type { EventInput } from "../../events/sink.ts";
import {
  acpiErrType,
  aerErrReason,
  aerErrType,
  edacErrType,
  formatGuid,
  jsonWithBigInts,
  mceErrType,
  RAS_HOOKS,
  RAS_RECORD,
  RAS_SOURCES,
  rasEventHandler,
  rasRecord,
  RasTracer,
  rasTracerData,
} from "./ras.ts";
import { Cooldown } from "../../events/backoff.ts";
import { exists } from "../../../testing/fs.ts";

const OUT = new URL("../../../_output/bpf", import.meta.url).pathname;
const enc = new TextEncoder();

/** A zeroed struct ras_event of `source` (index in RAS_SOURCES) with `fill` writing the payload. */
function record(source: number, fill: (v: DataView, u8: Uint8Array) => void, cpu = 3): DataView {
  const buf = new ArrayBuffer(8 + RAS_RECORD.size);
  const v = new DataView(buf, 8); // a record not at the start of its buffer
  v.setUint32(0, source, true);
  v.setUint32(4, cpu, true);
  v.setBigUint64(8, 123456789n, true);
  fill(v, new Uint8Array(buf, 8));
  return v;
}

Deno.test("ras: MCE record → the seed's fields, 64-bit registers exact in info", () => {
  const status = 0xbd80000000100134n; // VAL|OVER|UC|EN|MISCV|ADDRV|S|AR, no PCC
  const v = record(3, (v) => {
    v.setBigUint64(16, status, true);
    v.setBigUint64(24, 0x5n, true); // mcgstatus
    v.setBigUint64(32, 0x7d8b4c000n, true); // addr
    v.setBigUint64(40, 0x86n, true); // misc
    v.setBigUint64(48, 0x1n, true); // synd
    v.setBigUint64(56, 0x2n, true); // ipid
    v.setBigUint64(64, 0xffffffff81234567n, true); // ip
    v.setBigUint64(72, 0x123456789abcn, true); // tsc
    v.setBigUint64(80, 1749600000n, true); // time
    v.setBigUint64(88, 0x1000c14n, true); // mcgcap
    v.setUint32(96, 0x50657, true); // cpuid
    v.setUint32(100, 2, true); // extcpu
    v.setUint32(104, 1, true); // socketid
    v.setUint32(108, 4, true); // apicid
    v.setUint8(112, 0); // cpuvendor Intel
    v.setUint8(113, 0x10); // cs
    v.setUint8(114, 5); // bank
    v.setUint8(115, 6); // severity
  });
  const r = rasRecord(v, 0, RAS_RECORD.size);
  assertEquals(r.source, "mce");
  const d = rasTracerData(r, 1749600000000000000);
  assertEquals({ dev: d.dev, event: d.event, type: d.type, timestamp: d.timestamp }, {
    dev: "CPU/MEM",
    event: "MCE",
    type: "UncorrectedRecoverable",
    timestamp: 1749600000000000000,
  });
  assertEquals(
    d.info,
    '{"mcg_cpu_cap":16780308,"mcg_msr_status":5,"banks_msr_status":13654914070188392756,' +
      '"banks_msr_addr":33700495360,"banks_msr_misc":134,"mca_synd_msr":1,"mca_ipid_msr":2,' +
      '"instr_pointer":18446744071581156711,"tsc_timestamp":20015998343868,"walltime":1749600000,' +
      '"cpu":2,"cpuid":329303,"apicid":4,"socketid":1,"code_seg":16,"bank":5,"cpuvendor":0}',
  );
});

Deno.test("ras: MCE severities follow MCi_STATUS (UC, PCC, AMD deferred)", () => {
  const VAL = 1n << 63n, UC = 1n << 61n, PCC = 1n << 57n, DEFERRED = 1n << 44n;
  assertEquals(mceErrType(VAL, 0), "Corrected");
  assertEquals(mceErrType(VAL | UC, 0), "UncorrectedRecoverable");
  assertEquals(mceErrType(VAL | UC | PCC, 0), "UncorrectedFatal");
  assertEquals(mceErrType(VAL | DEFERRED, 2), "UncorrectedDeferred");
  assertEquals(mceErrType(VAL | DEFERRED | UC, 9), "UncorrectedDeferred", "Hygon");
  // On Intel, bit 44 is part of the corrected error count.
  assertEquals(mceErrType(VAL | DEFERRED, 0), "Corrected");
});

Deno.test("ras: EDAC record (ras:mc_event arguments) → the seed's fields", () => {
  const v = record(2, (v, u8) => {
    v.setBigUint64(16, 7860269056n, true); // address
    v.setBigUint64(24, 0n, true); // syndrome
    v.setUint32(32, 0, true); // HW_EVENT_ERR_CORRECTED
    v.setInt32(36, 1, true);
    v.setUint8(40, 0); // mc_index
    v.setInt8(41, 0);
    v.setInt8(42, 0);
    v.setInt8(43, -1);
    v.setUint8(44, 7); // grain 128
    u8.set(enc.encode("memory read error"), 48);
    u8.set(enc.encode("CPU_SrcID#0_Ha#0_Chan#0_DIMM#0"), 176);
    u8.set(enc.encode(" area:DRAM err_code:0000:009f socket:0 ha:0 channel_mask:1 rank:0"), 304);
  });
  const d = rasTracerData(rasRecord(v, 0, RAS_RECORD.size), 537792166031);
  assertEquals(d.dev, "MEM");
  assertEquals(d.event, "EDAC");
  assertEquals(d.type, "Corrected");
  // The seed's example, field for field (err_count from the record).
  assertEquals(
    d.info,
    '{"err_count":1,"err_type":"Corrected","err_msg":"memory read error","label":"CPU_SrcID#0_Ha#0_Chan#0_DIMM#0",' +
      '"mc_index":0,"top_layer":0,"mid_layer":0,"low_layer":-1,"addr":7860269056,"grain":128,"syndrome":0,' +
      '"driver":" area:DRAM err_code:0000:009f socket:0 ha:0 channel_mask:1 rank:0"}',
  );
  assertEquals([0, 1, 2, 3, 4, 5].map(edacErrType), [
    "Corrected",
    "UncorrectedRecoverable",
    "UncorrectedDeferred",
    "UncorrectedFatal",
    "Info",
    "Unknown",
  ]);
});

Deno.test("ras: ACPI GHES non-standard record → GUIDs, FRU text, raw data (first 256 bytes)", () => {
  // CPER_SEC_PLATFORM_MEM a5bc1114-6f64-4ede-b863-3e83ed7c83b1 as guid_t bytes.
  const mem = [
    0x14,
    0x11,
    0xbc,
    0xa5,
    0x64,
    0x6f,
    0xde,
    0x4e,
    0xb8,
    0x63,
    0x3e,
    0x83,
    0xed,
    0x7c,
    0x83,
    0xb1,
  ];
  const v = record(0, (v, u8) => {
    u8.set(mem, 16);
    u8.set(mem.map((_, i) => i), 32);
    v.setUint32(48, 300, true); // longer than the 256 bytes carried
    v.setUint8(52, 2); // GHES_SEV_RECOVERABLE
    u8.set(enc.encode("CPU0_DIMM_A1"), 56);
    for (let i = 0; i < 256; i++) u8[88 + i] = i;
  });
  const r = rasRecord(v, 0, RAS_RECORD.size);
  assert(r.source === "acpi");
  assertEquals(r.data.length, 256);
  const d = rasTracerData(r, 1);
  assertEquals([d.dev, d.event, d.type], ["ACPI", "NON_STANDARD", "UncorrectedRecoverable"]);
  const info = JSON.parse(d.info);
  assertEquals(info.severity, 2);
  assertEquals(info.sec_type, "a5bc1114-6f64-4ede-b863-3e83ed7c83b1");
  assertEquals(info.fru_id, "03020100-0504-0706-0809-0a0b0c0d0e0f");
  assertEquals(info.fru_text, "CPU0_DIMM_A1");
  assertEquals(info.data_len, 300);
  assert(info.raw_data.startsWith("00 01 02 03 ") && info.raw_data.endsWith(" fe ff"), info.raw_data);
  assertEquals(info.raw_data.split(" ").length, 256);
  assertEquals([0, 1, 2, 3, 4].map(acpiErrType), [
    "Info",
    "Corrected",
    "UncorrectedRecoverable",
    "UncorrectedFatal",
    "Unknown",
  ]);
  assertEquals(formatGuid(new Uint8Array(mem)), "a5bc1114-6f64-4ede-b863-3e83ed7c83b1");
});

Deno.test("ras: PCIe AER record → dev, severity, decoded reason, TLP header", () => {
  const v = record(1, (v, u8) => {
    v.setUint32(16, 0x00004000, true); // Completion Timeout
    v.setUint8(20, 0); // AER_NONFATAL
    v.setUint8(21, 1);
    [0x40000001, 0x0000220f, 0xc0000000, 0x00000000].forEach((w, i) => v.setUint32(24 + i * 4, w, true));
    u8.set(enc.encode("0000:3b:00.0"), 40);
  });
  const d = rasTracerData(rasRecord(v, 0, RAS_RECORD.size), 1749600000000000000);
  assertEquals([d.dev, d.event, d.type], ["PCIe 0000:3b:00.0", "AER", "UncorrectedRecoverable"]);
  assertEquals(
    d.info,
    '{"dev_name":"0000:3b:00.0","err_type":"UncorrectedRecoverable","err_reason":"Completion Timeout",' +
      '"tlp_header":"{0x40000001, 0x0000220f, 0xc0000000, 0x00000000}"}',
  );
  const noTlp = record(1, (v, u8) => {
    v.setUint32(16, 0x000000c1 | 0x10000, true); // Receiver Error, Bad TLP, Bad DLLP + a bit outside the table
    v.setUint8(20, 2); // AER_CORRECTABLE
    u8.set(enc.encode("0000:01:00.1"), 40);
  });
  const c = JSON.parse(rasTracerData(rasRecord(noTlp, 0, RAS_RECORD.size), 0).info);
  assertEquals(c.err_type, "Corrected");
  assertEquals(c.err_reason, "Receiver Error, Bad TLP, Bad DLLP, Unknown 0x00010000");
  assertEquals(c.tlp_header, "not available");
  assertEquals([0, 1, 2, 3].map(aerErrType), [
    "UncorrectedRecoverable",
    "UncorrectedFatal",
    "Corrected",
    "Unknown",
  ]);
  assertEquals(aerErrReason(0x00100020, 1), "Surprise Down Error, Unsupported Request Error");
});

Deno.test("ras: threshold interrupt record; unknown sources and short records are errors", () => {
  const v = record(4, (v) => v.setInt32(16, 0xf9, true), 1);
  const d = rasTracerData(rasRecord(v, 0, RAS_RECORD.size), 5, { suppressed: 3 });
  assertEquals(d, {
    dev: "CPU/MEM",
    event: "MCE_THRESHOLD",
    type: "Corrected",
    timestamp: 5,
    info: '{"cpu":1,"vector":249,"suppressed":3}',
  });
  let threw = "";
  try {
    rasRecord(record(5, () => {}), 0, RAS_RECORD.size);
  } catch (e) {
    threw = String(e);
  }
  assertMatch(threw, /unknown source 5/);
  threw = "";
  try {
    rasRecord(v, 0, RAS_RECORD.size - 1); // the ring's length counts, not the buffer's
  } catch (e) {
    threw = String(e);
  }
  assertMatch(threw, /too short/);
  assertThrows(() => rasRecord(v, 1, RAS_RECORD.size), RangeError);
  assertEquals(
    jsonWithBigInts({ a: 18446744073709551615n, b: 'x"y', c: -1 }),
    '{"a":18446744073709551615,"b":"x\\"y","c":-1}',
  );
});

Deno.test("ras: MCE threshold events are saved at most once per MceThrBackoff; other sources always", () => {
  let now = 0;
  const got: EventInput[] = [];
  const onRecord = rasEventHandler({
    log: silentLogger,
    events: (e) => got.push(e),
    thr: new Cooldown(1800_000, () => now),
    nowNs: () => now * 1e6,
  });
  const thr = record(4, (v) => v.setInt32(16, 0xf9, true), 0);
  const aer = record(1, (v, u8) => {
    v.setUint8(20, 2);
    u8.set(enc.encode("0000:01:00.0"), 40);
  });
  onRecord(thr, 0, RAS_RECORD.size); // saved
  for (now = 1000; now < 1800_000; now += 60_000) {
    onRecord(thr, 0, RAS_RECORD.size); // 30 held back
    onRecord(aer, 0, RAS_RECORD.size); // every AER saved
  }
  now = 1800_000;
  onRecord(thr, 0, RAS_RECORD.size); // saved, saying how many were held back
  const thrDocs = got.filter((e) => (e.data as { event: string }).event === "MCE_THRESHOLD");
  assertEquals(thrDocs.length, 2);
  assertEquals(got.length - thrDocs.length, 30);
  assertEquals(JSON.parse((thrDocs[0].data as { info: string }).info), {
    cpu: 0,
    vector: 249,
    suppressed: 0,
  });
  assertEquals(JSON.parse((thrDocs[1].data as { info: string }).info), {
    cpu: 0,
    vector: 249,
    suppressed: 30,
  });
  assertEquals((thrDocs[1].data as { timestamp: number }).timestamp, 1800_000 * 1e6);
  assert(got.every((e) => e.tracerName === "ras"));
});

// ---------------------------------------------------------------------------
// Real kernel

const TRACEFS = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/** The tracefs events directory, mounting tracefs when it is not. */
async function tracefsEvents(): Promise<string> {
  for (const d of TRACEFS) if (exists(`${d}/events`)) return `${d}/events`;
  const out = await new Deno.Command("mount", { args: ["-t", "tracefs", "nodev", TRACEFS[0]] }).output();
  if (!out.success) throw new Error(`mount tracefs: ${new TextDecoder().decode(out.stderr)}`);
  return `${TRACEFS[0]}/events`;
}

const skip = Deno.uid() !== 0
  ? "needs root"
  : !exists(`${OUT}/ras.o`)
  ? "run ./build.sh bpf first"
  : undefined;
if (skip) console.warn(`ras_test: real-kernel tests skipped (${skip})`);
// libbpf warns about every hook missing here; the tests assert those outcomes themselves.
else setLibbpfLogger(() => {});

const ctx = () => ({ log: silentLogger, signal: new AbortController().signal, fail: () => {} });

Deno.test({
  name:
    "ras tracer state matches the RAS tracepoints in tracefs: running with those present, missing ones named",
  ignore: skip !== undefined,
  async fn() {
    const events = await tracefsEvents();
    const present = RAS_SOURCES.filter((s) =>
      exists(`${events}/${RAS_HOOKS[s].tracepoint.replace(":", "/")}`)
    );
    const absent = RAS_SOURCES.filter((s) => !present.includes(s));
    console.log(
      `  tracefs: present ${present.map((s) => RAS_HOOKS[s].tracepoint).join(", ") || "none"}; ` +
        `absent ${absent.map((s) => RAS_HOOKS[s].tracepoint).join(", ") || "none"}`,
    );
    const t = new RasTracer({ bpf: new BpfRuntime(OUT), log: silentLogger, mceThrBackoffSec: 1800 });
    if (present.length === 0) {
      const err = await t.start(ctx()).then(() => undefined, (e) => e);
      assert(err instanceof UnsupportedError, String(err));
      for (const s of absent) assert(err.message.includes(RAS_HOOKS[s].tracepoint), err.message);
      return;
    }
    await t.start(ctx());
    try {
      assertEquals([...t.missing], absent);
      const attached = t.inner.object.programs.filter((p) => p.fd >= 0).map((p) => p.name).sort();
      assertEquals(attached, RAS_SOURCES.map((s) => RAS_HOOKS[s].program).sort(), "all programs loaded");
      assertEquals(t.counts(), [0, 0, 0, 0, 0]);
    } finally {
      t.stop();
    }
  },
});

Deno.test({
  name: "ras tracer with only hooks this kernel lacks is unsupported, naming each missing tracepoint",
  ignore: skip !== undefined,
  async fn() {
    const events = await tracefsEvents();
    const absent = RAS_SOURCES.filter((s) =>
      !exists(`${events}/${RAS_HOOKS[s].tracepoint.replace(":", "/")}`)
    );
    if (absent.length === 0) {
      console.warn("  every RAS tracepoint exists on this kernel: nothing to check here");
      return;
    }
    const t = new RasTracer({
      bpf: new BpfRuntime(OUT),
      log: silentLogger,
      mceThrBackoffSec: 0,
      sources: absent,
    });
    await assertRejects(
      () => t.start(ctx()),
      new RegExp(
        `UnsupportedError: no RAS tracepoint on this kernel \\(missing: ${
          absent.map((s) => RAS_HOOKS[s].tracepoint).join(", ")
        }\\)$`,
      ),
    );
    let threw = false;
    try {
      t.inner.object;
    } catch {
      threw = true;
    }
    assert(threw, "the object was closed");
    // Unselected programs are not even loaded.
    const some = new RasTracer({
      bpf: new BpfRuntime(OUT),
      log: silentLogger,
      mceThrBackoffSec: 0,
      sources: ["edac"],
    });
    if (!absent.includes("edac")) {
      await some.start(ctx());
      try {
        assertEquals(some.inner.object.programs.filter((p) => p.fd >= 0).map((p) => p.name), [
          "ras_mc_event",
        ]);
      } finally {
        some.stop();
      }
    }
  },
});

// BPF_PROG_TEST_RUN of a raw_tp program with its tracepoint arguments (kernel 5.10+).
// struct bpf_test_run_opts (libbpf 1.x): sz@0 ctx_in@32 ctx_size_in@48 retval@56, 80 bytes.
function testRun(fd: number, args: bigint[]): number {
  const lib = Deno.dlopen("libbpf.so.1", {
    bpf_prog_test_run_opts: { parameters: ["i32", "buffer"], result: "i32" },
  });
  try {
    const ctxIn = new BigUint64Array(args);
    const opts = new Uint8Array(80);
    const dv = new DataView(opts.buffer);
    dv.setBigUint64(0, 80n, true);
    dv.setBigUint64(32, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(ctxIn))), true);
    dv.setUint32(48, ctxIn.byteLength, true);
    const r = lib.symbols.bpf_prog_test_run_opts(fd, opts);
    if (r < 0) throw new Error(`bpf_prog_test_run_opts: ${r}`);
    return dv.getUint32(56, true);
  } finally {
    lib.close();
  }
}

/** Kernel addresses of bytes we can also read: /sys/kernel/btf/vmlinux is the kernel's __start_BTF. */
function kernelBytes(): { base: bigint; btf: Uint8Array } {
  const line = Deno.readTextFileSync("/proc/kallsyms").split("\n").find((l) => l.endsWith(" __start_BTF"));
  if (!line) throw new Error("__start_BTF not in /proc/kallsyms");
  const base = BigInt(`0x${line.split(" ")[0]}`);
  if (base === 0n) throw new Error("kallsyms addresses hidden");
  return { base, btf: Deno.readFileSync("/sys/kernel/btf/vmlinux") };
}

function cstrAt(btf: Uint8Array, s: string): number {
  const needle = enc.encode(`\0${s}\0`);
  outer: for (let i = 0; i + needle.length <= btf.length; i++) {
    for (let j = 0; j < needle.length; j++) if (btf[i + j] !== needle[j]) continue outer;
    return i + 1;
  }
  throw new Error(`"${s}" not in BTF strings`);
}

Deno.test({
  name: "ras programs fed with real tracepoint arguments (BPF_PROG_TEST_RUN): counted and decoded end to end",
  ignore: skip !== undefined || !exists("/sys/kernel/btf/vmlinux"),
  async fn() {
    const events = await tracefsEvents();
    const got: EventInput[] = [];
    const t = new RasTracer({
      bpf: new BpfRuntime(OUT),
      log: silentLogger,
      events: (e) => got.push(e),
      mceThrBackoffSec: 1800,
      nowNs: () => 42,
    });
    await t.start(ctx());
    try {
      const { base, btf } = kernelBytes();
      const str = (s: string) => base + BigInt(cstrAt(btf, s));
      const fed: string[] = [];
      if (exists(`${events}/ras/mc_event`)) {
        // (err_type, error_msg, label, error_count, mc_index, top, mid, low, address, grain_bits, syndrome, driver)
        const prog = t.inner.object.program("ras_mc_event");
        const s8 = (n: number) => BigInt.asUintN(64, BigInt(n));
        testRun(prog.fd, [
          2n,
          str("task_struct"),
          str("sk_buff"),
          3n,
          1n,
          s8(2),
          s8(-1),
          s8(-1),
          0x12345678000n,
          6n,
          0xabcn,
          str("net_device"),
        ]);
        fed.push("edac");
      }
      if (exists(`${events}/ras/non_standard_event`)) {
        // (sec_type, fru_id, fru_text, sev, err, len): 16-byte GUIDs and 40 data bytes from the BTF header on.
        const prog = t.inner.object.program("ras_non_standard_event");
        testRun(prog.fd, [base, base + 16n, str("list_head"), 1n, base + 8n, 40n]);
        fed.push("acpi");
      }
      if (fed.length === 0) {
        console.warn("  neither ras:mc_event nor ras:non_standard_event exists: nothing to feed");
        return;
      }
      const deadline = Date.now() + 2000;
      while (got.length < fed.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assertEquals(got.length, fed.length, JSON.stringify(got));
      const counts = t.counts();
      assertEquals(counts[RAS_SOURCES.indexOf("edac")], fed.includes("edac") ? 1 : 0);
      assertEquals(counts[RAS_SOURCES.indexOf("acpi")], fed.includes("acpi") ? 1 : 0);
      for (const e of got) assertEquals(e.tracerName, "ras");
      const hex = (from: number, n: number) =>
        Array.from(btf.subarray(from, from + n), (b) => b.toString(16).padStart(2, "0"));
      for (const e of got) {
        const d = e.data as { dev: string; event: string; type: string; timestamp: number; info: string };
        assertEquals(d.timestamp, 42);
        const info = JSON.parse(d.info);
        if (d.event === "EDAC") {
          assertEquals([d.dev, d.type], ["MEM", "UncorrectedDeferred"]);
          assertEquals(info, {
            err_count: 3,
            err_type: "UncorrectedDeferred",
            err_msg: "task_struct",
            label: "sk_buff",
            mc_index: 1,
            top_layer: 2,
            mid_layer: -1,
            low_layer: -1,
            addr: 0x12345678000,
            grain: 64,
            syndrome: 0xabc,
            driver: "net_device",
          });
        } else {
          assertEquals([d.dev, d.event, d.type], ["ACPI", "NON_STANDARD", "Corrected"]);
          const g = (from: number) => formatGuid(btf.subarray(from, from + 16));
          assertEquals(info.sec_type, g(0));
          assertEquals(info.fru_id, g(16));
          assertEquals(info.fru_text, "list_head");
          assertEquals(info.data_len, 40);
          assertEquals(info.raw_data, hex(8, 40).join(" "));
          assert(info.sec_type.startsWith("0001eb9f-"), `BTF magic 0xeB9F, version 1: ${info.sec_type}`);
        }
      }
    } finally {
      t.stop();
    }
  },
});
