// Hardware errors (RAS): BPF raw tracepoints on the kernel's MCE, EDAC, ACPI
// GHES, PCIe AER and MCE threshold interrupt reports (bpf/ras.bpf.c). Every
// error counts in huatuo_bamai_ras_hw_total{type}; each becomes one "ras"
// event, except that MCE threshold interrupts are saved at most once per
// [EventTracing.Ras] MceThrBackoff seconds (they can storm).
//
// Each source is optional: the tracer runs with the tracepoints this kernel
// has and logs the others; with none of them it is unsupported.

import type { RecordHandler } from "../../../ffi/events.ts";
import { recordLayout, RecordReader } from "../../bpf/record.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import { Cooldown } from "../../events/backoff.ts";
import type { EventSink } from "../../events/sink.ts";
import type { Logger } from "../../log/logger.ts";
import { type Tracer, type TracerContext, UnsupportedError } from "../../tracing/manager.ts";
import { metricsFeature } from "../feature.ts";
import { counter } from "../../core/sample.ts";

/** Sources in the order of bpf/ras.bpf.c's enum ras_source (= ras_count keys) and of the metric's type label. */
export const RAS_SOURCES = ["acpi", "aer", "edac", "mce", "thr"] as const;
export type RasSource = typeof RAS_SOURCES[number];

/** The program of each source and the tracepoint it needs. */
export const RAS_HOOKS: Readonly<Record<RasSource, { program: string; tracepoint: string }>> = {
  acpi: { program: "ras_non_standard_event", tracepoint: "ras:non_standard_event" },
  aer: { program: "ras_aer_event", tracepoint: "ras:aer_event" },
  edac: { program: "ras_mc_event", tracepoint: "ras:mc_event" },
  mce: { program: "ras_mce_record", tracepoint: "mce:mce_record" },
  thr: { program: "ras_threshold_apic_entry", tracepoint: "irq_vectors:threshold_apic_entry" },
};

/** struct ras_event in bpf/ras.bpf.c: a header, then the payload of its source (a union). */
export const RAS_RECORD = recordLayout("ras.o", "ras_event", 432, {
  source: 0,
  cpu: 4,
  ts: 8,
  "mce.status": 16,
  "mce.mcgstatus": 24,
  "mce.addr": 32,
  "mce.misc": 40,
  "mce.synd": 48,
  "mce.ipid": 56,
  "mce.ip": 64,
  "mce.tsc": 72,
  "mce.time": 80,
  "mce.mcgcap": 88,
  "mce.cpuid": 96,
  "mce.extcpu": 100,
  "mce.socketid": 104,
  "mce.apicid": 108,
  "mce.cpuvendor": 112,
  "mce.cs": 113,
  "mce.bank": 114,
  "mce.severity": 115,
  "edac.address": 16,
  "edac.syndrome": 24,
  "edac.err_type": 32,
  "edac.error_count": 36,
  "edac.mc_index": 40,
  "edac.top_layer": 41,
  "edac.mid_layer": 42,
  "edac.low_layer": 43,
  "edac.grain_bits": 44,
  "edac.msg": 48,
  "edac.label": 176,
  "edac.driver": 304,
  "acpi.sec_type": 16,
  "acpi.fru_id": 32,
  "acpi.len": 48,
  "acpi.sev": 52,
  "acpi.fru_text": 56,
  "acpi.data": 88,
  "aer.status": 16,
  "aer.severity": 20,
  "aer.tlp_header_valid": 21,
  "aer.tlp": 24,
  "aer.dev_name": 40,
  "thr.vector": 16,
});

// Array sizes in struct ras_event.
const RAS_STR_LEN = 128;
const RAS_FRU_TEXT_LEN = 32;
const RAS_DATA_LEN = 256;
const RAS_DEV_NAME_LEN = 64;
const GUID_LEN = 16;

export interface MceRecord {
  source: "mce";
  cpu: number;
  status: bigint;
  mcgstatus: bigint;
  addr: bigint;
  misc: bigint;
  synd: bigint;
  ipid: bigint;
  ip: bigint;
  tsc: bigint;
  /** Wall time (seconds) when the kernel logged it. */
  time: bigint;
  mcgcap: bigint;
  cpuid: number;
  extcpu: number;
  socketid: number;
  apicid: number;
  cpuvendor: number;
  cs: number;
  bank: number;
  severity: number;
}

export interface EdacRecord {
  source: "edac";
  cpu: number;
  address: bigint;
  syndrome: bigint;
  errType: number;
  errorCount: number;
  mcIndex: number;
  topLayer: number;
  midLayer: number;
  lowLayer: number;
  grainBits: number;
  msg: string;
  label: string;
  driver: string;
}

export interface AcpiRecord {
  source: "acpi";
  cpu: number;
  secType: Uint8Array;
  fruId: Uint8Array;
  /** Length of the error data (the record carries its first 256 bytes). */
  len: number;
  sev: number;
  fruText: string;
  data: Uint8Array;
}

export interface AerRecord {
  source: "aer";
  cpu: number;
  status: number;
  severity: number;
  tlpHeaderValid: boolean;
  tlp: [number, number, number, number];
  devName: string;
}

export interface ThrRecord {
  source: "thr";
  cpu: number;
  vector: number;
}

export type RasRecord = MceRecord | EdacRecord | AcpiRecord | AerRecord | ThrRecord;

/** Decodes one struct ras_event of `length` bytes at `offset` of `view`. */
export function rasRecord(view: DataView, offset: number, length: number): RasRecord {
  const r = RecordReader.of(RAS_RECORD, view, offset, length);
  const f = RAS_RECORD.fields;
  const source = RAS_SOURCES[r.u32(f.source)];
  const cpu = r.u32(f.cpu);
  switch (source) {
    case "mce":
      return {
        source,
        cpu,
        status: r.u64(f["mce.status"]),
        mcgstatus: r.u64(f["mce.mcgstatus"]),
        addr: r.u64(f["mce.addr"]),
        misc: r.u64(f["mce.misc"]),
        synd: r.u64(f["mce.synd"]),
        ipid: r.u64(f["mce.ipid"]),
        ip: r.u64(f["mce.ip"]),
        tsc: r.u64(f["mce.tsc"]),
        time: r.u64(f["mce.time"]),
        mcgcap: r.u64(f["mce.mcgcap"]),
        cpuid: r.u32(f["mce.cpuid"]),
        extcpu: r.u32(f["mce.extcpu"]),
        socketid: r.u32(f["mce.socketid"]),
        apicid: r.u32(f["mce.apicid"]),
        cpuvendor: r.u8(f["mce.cpuvendor"]),
        cs: r.u8(f["mce.cs"]),
        bank: r.u8(f["mce.bank"]),
        severity: r.u8(f["mce.severity"]),
      };
    case "edac":
      return {
        source,
        cpu,
        address: r.u64(f["edac.address"]),
        syndrome: r.u64(f["edac.syndrome"]),
        errType: r.u32(f["edac.err_type"]),
        errorCount: r.i32(f["edac.error_count"]),
        mcIndex: r.u8(f["edac.mc_index"]),
        topLayer: r.i8(f["edac.top_layer"]),
        midLayer: r.i8(f["edac.mid_layer"]),
        lowLayer: r.i8(f["edac.low_layer"]),
        grainBits: r.u8(f["edac.grain_bits"]),
        msg: r.cString(f["edac.msg"], RAS_STR_LEN),
        label: r.cString(f["edac.label"], RAS_STR_LEN),
        driver: r.cString(f["edac.driver"], RAS_STR_LEN),
      };
    case "acpi": {
      const len = r.u32(f["acpi.len"]);
      return {
        source,
        cpu,
        // Copies: the record outlives the ring's bytes.
        secType: r.bytes(f["acpi.sec_type"], GUID_LEN).slice(),
        fruId: r.bytes(f["acpi.fru_id"], GUID_LEN).slice(),
        len,
        sev: r.u8(f["acpi.sev"]),
        fruText: r.cString(f["acpi.fru_text"], RAS_FRU_TEXT_LEN),
        data: r.bytes(f["acpi.data"], Math.min(len, RAS_DATA_LEN)).slice(),
      };
    }
    case "aer": {
      const tlp = (i: number) => r.u32(f["aer.tlp"] + i * 4);
      return {
        source,
        cpu,
        status: r.u32(f["aer.status"]),
        severity: r.u8(f["aer.severity"]),
        tlpHeaderValid: r.u8(f["aer.tlp_header_valid"]) !== 0,
        tlp: [tlp(0), tlp(1), tlp(2), tlp(3)],
        devName: r.cString(f["aer.dev_name"], RAS_DEV_NAME_LEN),
      };
    }
    case "thr":
      return { source, cpu, vector: r.i32(f["thr.vector"]) };
    default:
      throw new RangeError(`ras record of unknown source ${r.u32(f.source)}`);
  }
}

// ---------------------------------------------------------------------------
// Severities (the seed's table)

export type RasErrType =
  | "Corrected"
  | "UncorrectedRecoverable"
  | "UncorrectedDeferred"
  | "UncorrectedFatal"
  | "Info"
  | "Unknown";

const MCI_STATUS_UC = 1n << 61n;
const MCI_STATUS_PCC = 1n << 57n;
/** AMD/Hygon only: on Intel bit 44 belongs to the corrected error count. */
const MCI_STATUS_DEFERRED = 1n << 44n;
const X86_VENDOR_AMD = 2;
const X86_VENDOR_HYGON = 9;

/**
 * MCi_STATUS → severity, as the kernel's mce_is_correctable() decides:
 * deferred (AMD/Hygon), else UC: fatal when the processor context is
 * corrupt (PCC), recoverable otherwise; else corrected.
 */
export function mceErrType(status: bigint, cpuvendor: number): RasErrType {
  const amd = cpuvendor === X86_VENDOR_AMD || cpuvendor === X86_VENDOR_HYGON;
  if (amd && (status & MCI_STATUS_DEFERRED) !== 0n) return "UncorrectedDeferred";
  if ((status & MCI_STATUS_UC) !== 0n) {
    return (status & MCI_STATUS_PCC) !== 0n ? "UncorrectedFatal" : "UncorrectedRecoverable";
  }
  return "Corrected";
}

/** enum hw_event_mc_err_type (include/linux/edac.h). */
export function edacErrType(t: number): RasErrType {
  return ([
    "Corrected",
    "UncorrectedRecoverable",
    "UncorrectedDeferred",
    "UncorrectedFatal",
    "Info",
  ] as const)[t] ??
    "Unknown";
}

/** GHES severity of ras:non_standard_event (ghes_severity(): NO, CORRECTED, RECOVERABLE, PANIC). */
export function acpiErrType(sev: number): RasErrType {
  return (["Info", "Corrected", "UncorrectedRecoverable", "UncorrectedFatal"] as const)[sev] ?? "Unknown";
}

/** AER_NONFATAL 0, AER_FATAL 1, AER_CORRECTABLE 2 (include/linux/aer.h). */
export function aerErrType(severity: number): RasErrType {
  return (["UncorrectedRecoverable", "UncorrectedFatal", "Corrected"] as const)[severity] ?? "Unknown";
}

// The kernel's names for the AER status bits (include/ras/ras_event.h), the seed's two tables.
const AER_CORRECTABLE: readonly [number, string][] = [
  [0x00000001, "Receiver Error"],
  [0x00000040, "Bad TLP"],
  [0x00000080, "Bad DLLP"],
  [0x00000100, "RELAY_NUM Rollover"],
  [0x00001000, "Replay Timer Timeout"],
  [0x00002000, "Advisory Non-Fatal Error"],
  [0x00004000, "Corrected Internal Error"],
  [0x00008000, "Header Log Overflow"],
];
const AER_UNCORRECTABLE: readonly [number, string][] = [
  [0x00000001, "Undefined"],
  [0x00000010, "Data Link Protocol Error"],
  [0x00000020, "Surprise Down Error"],
  [0x00001000, "Poisoned TLP"],
  [0x00002000, "Flow Control Protocol Error"],
  [0x00004000, "Completion Timeout"],
  [0x00008000, "Completer Abort"],
  [0x00010000, "Unexpected Completion"],
  [0x00020000, "Receiver Overflow"],
  [0x00040000, "Malformed TLP"],
  [0x00080000, "ECRC Error"],
  [0x00100000, "Unsupported Request Error"],
  [0x00200000, "ACS Violation"],
  [0x00400000, "Uncorrectable Internal Error"],
  [0x00800000, "MC Blocked TLP"],
  [0x01000000, "AtomicOp Egress Blocked"],
  [0x02000000, "TLP Prefix Blocked Error"],
];

/** The status bits by name, ", " separated, from the table of the error's class; unknown bits in hex. */
export function aerErrReason(status: number, severity: number): string {
  const table = severity === 2 ? AER_CORRECTABLE : AER_UNCORRECTABLE;
  const names: string[] = [];
  let rest = status >>> 0;
  for (const [bit, name] of table) {
    if ((rest & bit) !== 0) {
      names.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) names.push(`Unknown 0x${rest.toString(16).padStart(8, "0")}`);
  return names.join(", ");
}

function hex32(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, "0")}`;
}

/** "{0x…, 0x…, 0x…, 0x…}" as the kernel prints the TLP header, or "not available". */
export function aerTlpHeader(r: AerRecord): string {
  return r.tlpHeaderValid ? `{${r.tlp.map(hex32).join(", ")}}` : "not available";
}

/** A guid_t (little-endian first three fields, like GUID_INIT) in canonical form, as UEFI specs print them. */
export function formatGuid(b: Uint8Array): string {
  const h = (i: number) => b[i].toString(16).padStart(2, "0");
  const le = (...idx: number[]) => idx.map(h).join("");
  return `${le(3, 2, 1, 0)}-${le(5, 4)}-${le(7, 6)}-${le(8, 9)}-${le(10, 11, 12, 13, 14, 15)}`;
}

/** Bytes as space separated hex pairs. */
export function hexDump(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

/** Flat JSON object text with bigints as exact integers (64-bit registers exceed JS numbers). */
export function jsonWithBigInts(fields: Record<string, string | number | bigint | boolean>): string {
  const parts = Object.entries(fields).map(([k, v]) =>
    `${JSON.stringify(k)}:${typeof v === "bigint" ? v.toString() : JSON.stringify(v)}`
  );
  return `{${parts.join(",")}}`;
}

export interface RasTracerData {
  dev: string;
  event: "MCE" | "EDAC" | "NON_STANDARD" | "AER" | "MCE_THRESHOLD";
  type: RasErrType;
  /** Unix time in nanoseconds at which the agent read the report (within ~10 ms of the tracepoint). */
  timestamp: number;
  info: string;
}

/**
 * The seed's tracer_data for one record. `timestampNs` is the event time;
 * `extra` adds info fields (the THR backoff's suppressed count).
 */
export function rasTracerData(
  r: RasRecord,
  timestampNs: number,
  extra: Record<string, number> = {},
): RasTracerData {
  switch (r.source) {
    case "mce":
      return {
        dev: "CPU/MEM",
        event: "MCE",
        type: mceErrType(r.status, r.cpuvendor),
        timestamp: timestampNs,
        info: jsonWithBigInts({
          mcg_cpu_cap: r.mcgcap,
          mcg_msr_status: r.mcgstatus,
          banks_msr_status: r.status,
          banks_msr_addr: r.addr,
          banks_msr_misc: r.misc,
          mca_synd_msr: r.synd,
          mca_ipid_msr: r.ipid,
          instr_pointer: r.ip,
          tsc_timestamp: r.tsc,
          walltime: r.time,
          cpu: r.extcpu,
          cpuid: r.cpuid,
          apicid: r.apicid,
          socketid: r.socketid,
          code_seg: r.cs,
          bank: r.bank,
          cpuvendor: r.cpuvendor,
          ...extra,
        }),
      };
    case "edac": {
      const type = edacErrType(r.errType);
      return {
        dev: "MEM",
        event: "EDAC",
        type,
        timestamp: timestampNs,
        info: jsonWithBigInts({
          err_count: r.errorCount,
          err_type: type,
          err_msg: r.msg,
          label: r.label,
          mc_index: r.mcIndex,
          top_layer: r.topLayer,
          mid_layer: r.midLayer,
          low_layer: r.lowLayer,
          addr: r.address,
          grain: 2 ** r.grainBits,
          syndrome: r.syndrome,
          driver: r.driver,
          ...extra,
        }),
      };
    }
    case "acpi":
      return {
        dev: "ACPI",
        event: "NON_STANDARD",
        type: acpiErrType(r.sev),
        timestamp: timestampNs,
        info: jsonWithBigInts({
          severity: r.sev,
          sec_type: formatGuid(r.secType),
          fru_id: formatGuid(r.fruId),
          fru_text: r.fruText,
          data_len: r.len,
          raw_data: hexDump(r.data),
          ...extra,
        }),
      };
    case "aer": {
      const type = aerErrType(r.severity);
      return {
        dev: `PCIe ${r.devName}`,
        event: "AER",
        type,
        timestamp: timestampNs,
        info: jsonWithBigInts({
          dev_name: r.devName,
          err_type: type,
          err_reason: aerErrReason(r.status, r.severity),
          tlp_header: aerTlpHeader(r),
          ...extra,
        }),
      };
    }
    case "thr":
      // The threshold interrupt says corrected errors crossed the bank's threshold; the errors
      // themselves arrive as MCE records.
      return {
        dev: "CPU/MEM",
        event: "MCE_THRESHOLD",
        type: "Corrected",
        timestamp: timestampNs,
        info: jsonWithBigInts({ cpu: r.cpu, vector: r.vector, ...extra }),
      };
  }
}

// ---------------------------------------------------------------------------
// The tracer

export interface RasTracerOptions {
  bpf: BpfRuntime;
  log: Logger;
  events?: EventSink;
  /** [EventTracing.Ras] MceThrBackoff: seconds between saved THR events (0: save all). */
  mceThrBackoffSec: number;
  /** Sources to trace (default all); the others' programs are not loaded. */
  sources?: readonly RasSource[];
  /** Event time in ns (default: wall clock now). */
  nowNs?: () => number;
}

/**
 * Runs bpf/ras.bpf.c with whichever RAS tracepoints this kernel has. Attach
 * failures for missing tracepoints are expected; with none attached the
 * tracer is unsupported, naming every missing tracepoint.
 */
export class RasTracer implements Tracer {
  readonly name = "ras";
  readonly inner: BpfTracer;
  readonly sources: readonly RasSource[];
  #missing: RasSource[] = [];

  constructor(readonly opts: RasTracerOptions) {
    this.sources = opts.sources ?? RAS_SOURCES;
    const unselected = RAS_SOURCES.filter((s) => !this.sources.includes(s)).map((s) => RAS_HOOKS[s].program);
    const thr = new Cooldown(opts.mceThrBackoffSec * 1000);
    this.inner = new BpfTracer({
      name: "ras",
      object: "ras.o",
      optionalPrograms: this.sources.map((s) => RAS_HOOKS[s].program),
      // One implementation; listing the unselected programs as a second (never chosen unless the
      // first is rejected for a program it does not have) keeps them from loading.
      alternatives: unselected.length > 0 ? [[], unselected] : undefined,
      buffers: [{
        map: "ras_events",
        onRecord: rasEventHandler({ log: opts.log, events: opts.events, thr, nowNs: opts.nowNs }),
      }],
    }, opts.bpf);
  }

  /** Sources whose tracepoint this kernel lacks (known once started). */
  get missing(): readonly RasSource[] {
    return this.#missing;
  }

  async start(ctx: TracerContext): Promise<void> {
    await this.inner.start(ctx);
    this.#missing = this.sources.filter((s) => this.inner.skipped.includes(RAS_HOOKS[s].program));
    const missing = this.#missing.map((s) => RAS_HOOKS[s].tracepoint).join(", ");
    if (this.#missing.length === this.sources.length) {
      this.inner.stop();
      throw new UnsupportedError(`no RAS tracepoint on this kernel (missing: ${missing})`);
    }
    if (missing) {
      ctx.log.info("ras: hardware error sources without a tracepoint on this kernel are not traced", {
        missing,
        traced: this.sources.filter((s) => !this.#missing.includes(s)).map((s) => RAS_HOOKS[s].tracepoint)
          .join(", "),
      });
    }
  }

  stop(): void {
    this.inner.stop();
  }

  /** Every source's count (0 for the untraced), in RAS_SOURCES order. */
  counts(): number[] {
    const map = this.inner.object.map("ras_count");
    const key = new Uint8Array(4);
    const kv = new DataView(key.buffer);
    const val = new Uint8Array(8);
    return RAS_SOURCES.map((_, i) => {
      kv.setUint32(0, i, true);
      return map.lookup(key, val) ? Number(new DataView(val.buffer).getBigUint64(0, true)) : 0;
    });
  }
}

/**
 * Turns ras_events records into "ras" events; THR records go through `thr`
 * (the MceThrBackoff cooldown), the others are all saved. Counting is the BPF
 * program's (every record, saved or not).
 */
export function rasEventHandler(
  opts: { log: Logger; events?: EventSink; thr: Cooldown; nowNs?: () => number },
): RecordHandler {
  const { log, events, thr } = opts;
  const nowNs = opts.nowNs ?? (() => Date.now() * 1e6);
  return (view, offset, length) => {
    const r = rasRecord(view, offset, length);
    let extra: Record<string, number> = {};
    if (r.source === "thr") {
      const d = thr.occur();
      if (!d.report) return;
      extra = { suppressed: d.suppressed };
    }
    const data = rasTracerData(r, nowNs(), extra);
    log.warn("hardware error", { dev: data.dev, event: data.event, type: data.type });
    events?.({ tracerName: "ras", data: { ...data } });
  };
}

export default metricsFeature("ras", ({ bpf, log, events, config }) => {
  const tracer = new RasTracer({ bpf, log, events, mceThrBackoffSec: config.EventTracing.Ras.MceThrBackoff });
  return {
    tracer,
    collect() {
      const counts = tracer.counts();
      return Promise.resolve(
        RAS_SOURCES.map((type, i) =>
          counter("ras_hw_total", "total RAS hardware error events by source type", counts[i], { type })
        ),
      );
    },
  };
}, { tracing: true, events: true });
