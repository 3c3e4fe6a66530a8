// OOM kills (BPF on tp_btf/mark_victim): each kill read from the program's
// ring buffer and emitted as one "oom" event naming the victim and the task
// whose allocation triggered the OOM, with their memory cgroups.

import type { RecordHandler } from "../../../ffi/events.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import type { Logger } from "../../log/logger.ts";
import type { EventSink } from "../../events/sink.ts";
import { recordLayout, RecordReader, TASK_COMM_LEN } from "../../bpf/record.ts";
import { containerEventFields, type ContainerRegistry, controllerLookup } from "../../pod/container.ts";
import { eventsFeature } from "../feature.ts";

/** struct oom_event in bpf/oom.bpf.c (pids are tgids; memory sizes in pages). */
export const OOM_RECORD = recordLayout("oom.o", "oom_event", 120, {
  victim_pid: 0,
  trigger_pid: 4,
  victim_comm: 8,
  trigger_comm: 24,
  victim_memcg_id: 40,
  trigger_memcg_id: 48,
  victim_memcg_css: 56,
  trigger_memcg_css: 64,
  total_vm: 72,
  anon_rss: 80,
  file_rss: 88,
  shmem_rss: 96,
  ts: 104,
  uid: 112,
  oom_score_adj: 116,
});

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

/** Decodes one struct oom_event of `length` bytes at `offset` of `view`. */
export function oomRecord(view: DataView, offset: number, length: number): OomRecord {
  const r = RecordReader.of(OOM_RECORD, view, offset, length);
  const f = OOM_RECORD.fields;
  return {
    victimPid: r.u32(f.victim_pid),
    triggerPid: r.u32(f.trigger_pid),
    victimComm: r.cString(f.victim_comm, TASK_COMM_LEN),
    triggerComm: r.cString(f.trigger_comm, TASK_COMM_LEN),
    victimMemcgId: r.u64(f.victim_memcg_id),
    triggerMemcgId: r.u64(f.trigger_memcg_id),
    victimMemcgCss: r.u64(f.victim_memcg_css),
    triggerMemcgCss: r.u64(f.trigger_memcg_css),
    totalVm: r.u64(f.total_vm),
    anonRss: r.u64(f.anon_rss),
    fileRss: r.u64(f.file_rss),
    shmemRss: r.u64(f.shmem_rss),
    ts: r.u64(f.ts),
    uid: r.u32(f.uid),
    oomScoreAdj: r.i16(f.oom_score_adj),
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
  return (view, offset, length) => {
    const r = oomRecord(view, offset, length);
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

export default eventsFeature("oom", (ctx) => oomTracer(ctx));
