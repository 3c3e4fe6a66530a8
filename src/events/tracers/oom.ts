// OOM kills (BPF on tp_btf/mark_victim): each kill read from the program's
// ring buffer and emitted as one "oom" event naming the victim and the task
// whose allocation triggered the OOM, with their memory cgroups.

import type { RecordHandler } from "../../../ffi/events.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import type { Logger } from "../../log/logger.ts";
import type { EventSink } from "../sink.ts";
import { containerEventFields, type ContainerRegistry, controllerLookup } from "../../pod/container.ts";

const decoder = new TextDecoder();

/** Size of struct oom_event in bpf/oom.bpf.c. */
export const OOM_RECORD_SIZE = 120;

/** struct oom_event from bpf/oom.bpf.c (pids are tgids; memory sizes in pages). */
export interface OomRecord {
  victimPid: number;
  triggerPid: number;
  victimComm: string;
  triggerComm: string;
  /** Memory controller cgroup id: inode of the v1 memory cgroup dir, or the cgroup2 id; 0 if unknown. */
  victimMemcgId: bigint;
  triggerMemcgId: bigint;
  /** Kernel address of the memory controller's cgroup_subsys_state; 0 if unknown. */
  victimMemcgCss: bigint;
  triggerMemcgCss: bigint;
  totalVm: bigint;
  anonRss: bigint;
  fileRss: bigint;
  shmemRss: bigint;
  ts: bigint;
  uid: number;
  oomScoreAdj: number;
}

function comm(view: DataView, offset: number): string {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, 16);
  const end = bytes.indexOf(0);
  return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Decodes one struct oom_event at @offset of @view. */
export function oomRecord(view: DataView, offset: number): OomRecord {
  if (view.byteLength - offset < OOM_RECORD_SIZE) {
    throw new RangeError(`oom record too short: ${view.byteLength - offset} < ${OOM_RECORD_SIZE} bytes`);
  }
  const u64 = (o: number) => view.getBigUint64(offset + o, true);
  return {
    victimPid: view.getUint32(offset, true),
    triggerPid: view.getUint32(offset + 4, true),
    victimComm: comm(view, offset + 8),
    triggerComm: comm(view, offset + 24),
    victimMemcgId: u64(40),
    triggerMemcgId: u64(48),
    victimMemcgCss: u64(56),
    triggerMemcgCss: u64(64),
    totalVm: u64(72),
    anonRss: u64(80),
    fileRss: u64(88),
    shmemRss: u64(96),
    ts: u64(104),
    uid: view.getUint32(offset + 112, true),
    oomScoreAdj: view.getInt16(offset + 116, true),
  };
}

const hex = (v: bigint) => `0x${v.toString(16).padStart(16, "0")}`;

/**
 * The event's tracer_data, with the seed's field names. victim_/trigger_memcg_css
 * are the css pointers in hex as in the seed; *_memcg_id carry the memory cgroup
 * ids (the v1 memory cgroup dir inode), which is what identifies the cgroup from
 * user space. victim_/trigger_container_id and _container_hostname are added by
 * oomContainerFields when the memory cgroup belongs to a known container.
 */
export function oomTracerData(r: OomRecord): Record<string, unknown> {
  return {
    victim_pid: r.victimPid,
    victim_process_name: r.victimComm,
    victim_memcg_css: hex(r.victimMemcgCss),
    victim_memcg_id: Number(r.victimMemcgId),
    trigger_pid: r.triggerPid,
    trigger_process_name: r.triggerComm,
    trigger_memcg_css: hex(r.triggerMemcgCss),
    trigger_memcg_id: Number(r.triggerMemcgId),
  };
}

/** The seed's victim_/trigger_container_id and _hostname, for the memory cgroups that belong to containers. */
export function oomContainerFields(r: OomRecord, containers?: ContainerRegistry): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [who, id] of [["victim", r.victimMemcgId], ["trigger", r.triggerMemcgId]] as const) {
    const c = id && containers ? controllerLookup(containers, "memory")(id) : undefined;
    if (!c) continue;
    const f = containerEventFields(c);
    out[`${who}_container_id`] = f.container_id;
    out[`${who}_container_hostname`] = f.container_hostname;
  }
  return out;
}

function onRecord(log: Logger, events?: EventSink, containers?: ContainerRegistry): RecordHandler {
  return (view, offset) => {
    const r = oomRecord(view, offset);
    log.warn("oom kill", {
      victim_pid: r.victimPid,
      victim_comm: r.victimComm,
      trigger_pid: r.triggerPid,
      trigger_comm: r.triggerComm,
      victim_memcg_id: Number(r.victimMemcgId),
    });
    events?.({
      tracerName: "oom",
      data: { ...oomTracerData(r), ...oomContainerFields(r, containers) },
      // The document's container_* are the victim's.
      cgroupId: r.victimMemcgId,
      cgroupKind: "memory",
    });
  };
}

/** The "oom" event tracer. */
export function oomTracer(
  ctx: { bpf: BpfRuntime; log: Logger; events?: EventSink; containers?: ContainerRegistry },
): BpfTracer {
  return new BpfTracer({
    name: "oom",
    object: "oom.o",
    buffers: [{ map: "oom_events", onRecord: onRecord(ctx.log, ctx.events, ctx.containers) }],
  }, ctx.bpf);
}
