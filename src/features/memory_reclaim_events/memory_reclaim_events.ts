// memory_reclaim_events: a container process spent more than
// EventTracing.MemoryReclaim.BlockedThreshold in direct reclaim (global, or
// its memory cgroup's limit reclaim) within one second. The BPF side
// (bpf/memory_reclaim_events.bpf.c) sums the stalls per process and writes one
// record per window that crosses the threshold; each becomes one event.

import type { RecordHandler } from "../../../ffi/events.ts";
import { recordLayout, RecordReader, TASK_COMM_LEN } from "../../bpf/record.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import type { Logger } from "../../log/logger.ts";
import type { EventSink } from "../../events/sink.ts";
import { eventsFeature } from "../feature.ts";

export const TRACER_NAME = "memory_reclaim_events";

/** The seed's window: reclaim time is summed per process over one second. */
export const WINDOW_NS = 1_000_000_000;

/** struct reclaim_event in bpf/memory_reclaim_events.bpf.c. */
export const RECLAIM_RECORD = recordLayout("memory_reclaim_events.o", "reclaim_event", 64, {
  pid: 0,
  tid: 4,
  comm: 8,
  deltatime: 24,
  memcg_id: 32,
  now: 40,
  window_start: 48,
  count: 56,
  kind: 60,
});

/** reclaim_event.kind: the reclaim that crossed the threshold. */
const KIND_DIRECT = 1;

export interface ReclaimRecord {
  /** Process (tgid). */
  pid: number;
  /** Thread whose reclaim crossed the threshold. */
  tid: number;
  comm: string;
  /** Reclaim time summed over the window so far (ns). */
  deltatime: bigint;
  /** Memory cgroup id: the v1 memory cgroup dir inode, or the cgroup2 id. */
  memcgId: bigint;
  now: bigint;
  windowStart: bigint;
  /** Reclaim calls in the window. */
  count: number;
  /** The reclaim that crossed the threshold: global direct reclaim or memory cgroup limit reclaim. */
  kind: "direct" | "memcg";
}

/** Decodes one struct reclaim_event of `length` bytes at `offset` of `view`. */
export function reclaimRecord(view: DataView, offset: number, length: number): ReclaimRecord {
  const r = RecordReader.of(RECLAIM_RECORD, view, offset, length);
  const f = RECLAIM_RECORD.fields;
  return {
    pid: r.u32(f.pid),
    tid: r.u32(f.tid),
    comm: r.cString(f.comm, TASK_COMM_LEN),
    deltatime: r.u64(f.deltatime),
    memcgId: r.u64(f.memcg_id),
    now: r.u64(f.now),
    windowStart: r.u64(f.window_start),
    count: r.u32(f.count),
    kind: r.u32(f.kind) === KIND_DIRECT ? "direct" : "memcg",
  };
}

/**
 * tracer_data: the seed's pid, comm, deltatime, plus memcg_id (the memory
 * cgroup, so the container can be attached once the registry maps cgroups to
 * containers; the same id the oom event carries).
 */
export function reclaimTracerData(r: ReclaimRecord): Record<string, unknown> {
  return {
    pid: r.pid,
    comm: r.comm,
    deltatime: Number(r.deltatime),
    memcg_id: Number(r.memcgId),
  };
}

function onRecord(log: Logger, events?: EventSink): RecordHandler {
  return (view, offset, length) => {
    const r = reclaimRecord(view, offset, length);
    log.warn("container process stalled in direct reclaim", {
      pid: r.pid,
      comm: r.comm,
      deltatime_ns: Number(r.deltatime),
      reclaims: r.count,
      kind: r.kind,
      memcg_id: Number(r.memcgId),
    });
    events?.({
      tracerName: TRACER_NAME,
      data: reclaimTracerData(r),
      cgroupId: r.memcgId,
      cgroupKind: "memory",
    });
  };
}

/** The "memory_reclaim_events" event tracer. */
export function memoryReclaimEventsTracer(
  ctx: {
    bpf: BpfRuntime;
    log: Logger;
    config: { readonly EventTracing: { readonly MemoryReclaim: { readonly BlockedThreshold: number } } };
    events?: EventSink;
  },
): BpfTracer {
  return new BpfTracer({
    name: TRACER_NAME,
    object: "memory_reclaim_events.o",
    rodata: {
      blocked_threshold: BigInt(ctx.config.EventTracing.MemoryReclaim.BlockedThreshold),
      window_ns: BigInt(WINDOW_NS),
    },
    buffers: [{ map: "memory_reclaim_events", onRecord: onRecord(ctx.log, ctx.events) }],
  }, ctx.bpf);
}

export default eventsFeature("memory_reclaim_events", (ctx) => memoryReclaimEventsTracer(ctx));
