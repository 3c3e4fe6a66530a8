// Hung tasks reported by the kernel's detector (BPF on sched:sched_process_hang):
// a counter for /metrics, and each report read from the program's ring buffer
// and logged with the task, so the log says which task hung.

import type { RecordHandler } from "../../../ffi/events.ts";
import { BpfTracer } from "../../bpf/tracer.ts";
import { readCounter } from "../../bpf/zones.ts";
import type { EventSink } from "../../events/sink.ts";
import type { Logger } from "../../log/logger.ts";
import { defineCollector } from "../collector.ts";
import { counter } from "../sample.ts";

const decoder = new TextDecoder();

/** struct { __u32 pid; char comm[16]; __u64 ts; } from bpf/hungtask.bpf.c. */
export function hungtaskRecord(view: DataView, offset: number): { pid: number; comm: string; ts: bigint } {
  const comm = new Uint8Array(view.buffer, view.byteOffset + offset + 4, 16);
  const end = comm.indexOf(0);
  return {
    pid: view.getUint32(offset, true),
    comm: decoder.decode(end < 0 ? comm : comm.subarray(0, end)),
    ts: view.getBigUint64(offset + 24, true),
  };
}

function onRecord(log: Logger, events?: EventSink): RecordHandler {
  return (view, offset) => {
    const r = hungtaskRecord(view, offset);
    log.warn("hung task detected", { pid: r.pid, comm: r.comm });
    // The D-state stacks and the report backoff of the full hungtask event come with the event tracers.
    events?.({ tracerName: "hungtask", data: { pid: r.pid, comm: r.comm } });
  };
}

export default defineCollector("hungtask", ({ bpf, log, events }) => {
  const tracer = new BpfTracer({
    name: "hungtask",
    object: "hungtask.o",
    buffers: [{ map: "hungtask_events", onRecord: onRecord(log, events) }],
  }, bpf);
  return {
    tracer,
    collect() {
      const n = readCounter(tracer.object.map("hungtask_count"));
      return Promise.resolve([counter("hungtask_total", "hungtask counter", n)]);
    },
  };
}, { tracing: true });
