// Hung tasks reported by the kernel's detector (BPF on sched:sched_process_hang):
// hungtask_total counts every detection; a detection that the storm backoff
// lets through becomes one "hungtask" event with the hung task, a backtrace
// of every CPU and the kernel stacks of all D-state tasks.

import type { RecordHandler } from "../../../ffi/events.ts";
import { recordLayout, RecordReader, TASK_COMM_LEN } from "../../bpf/record.ts";
import { BpfTracer } from "../../bpf/tracer.ts";
import { readCounter } from "../../bpf/zones.ts";
import { StormBackoff } from "../../events/backoff.ts";
import { blockedTasksStacks, CpuStackSampler } from "../../events/kernel_stacks.ts";
import type { EventSink } from "../../events/sink.ts";
import type { HostFs } from "../../host/fs.ts";
import type { Logger } from "../../log/logger.ts";
import { metricsFeature } from "../feature.ts";
import { counter } from "../../core/sample.ts";

/** struct hungtask_event in bpf/hungtask.bpf.c. */
export const HUNGTASK_RECORD = recordLayout("hungtask.o", "hungtask_event", 32, { pid: 0, comm: 4, ts: 24 });

/** Decodes one struct hungtask_event of `length` bytes at `offset` of `view`. */
export function hungtaskRecord(
  view: DataView,
  offset: number,
  length: number,
): { pid: number; comm: string; ts: bigint } {
  const r = RecordReader.of(HUNGTASK_RECORD, view, offset, length);
  const f = HUNGTASK_RECORD.fields;
  return { pid: r.u32(f.pid), comm: r.cString(f.comm, TASK_COMM_LEN), ts: r.u64(f.ts) };
}

interface Scene {
  cpusStack(): Promise<string>;
  blockedStacks(): Promise<string>;
}

/** Reports hung tasks through the backoff, gathering the scene asynchronously off the ring reader. */
function onRecord(log: Logger, scene: Scene, backoff: StormBackoff, events?: EventSink): RecordHandler {
  return (view, offset, length) => {
    const r = hungtaskRecord(view, offset, length);
    const d = backoff.occur();
    if (!d.report) {
      log.debug("hung task report held back (storm backoff)", {
        pid: r.pid,
        comm: r.comm,
        suppressed: d.suppressed,
        next: new Date(d.nextAllowedAt).toISOString(),
      });
      return;
    }
    log.warn("hung task detected", { pid: r.pid, comm: r.comm, suppressed: d.suppressed || undefined });
    if (!events) return;
    Promise.all([scene.cpusStack(), scene.blockedStacks()]).then(([cpus, blocked]) => {
      events({
        tracerName: "hungtask",
        data: { pid: r.pid, comm: r.comm, cpus_stack: cpus, blocked_processes_stack: blocked },
      });
    }).catch((err) => log.error("hungtask event not emitted", { pid: r.pid, error: String(err) }));
  };
}

async function blockedStacks(fs: HostFs, log: Logger): Promise<string> {
  const b = await blockedTasksStacks(fs);
  if (b.truncated) log.info("blocked_processes_stack truncated", { found: b.found, scanned: b.scanned });
  return b.text;
}

export default metricsFeature("hungtask", ({ bpf, log, events, fs }) => {
  const sampler = new CpuStackSampler({
    program: () => tracer.object.program("hungtask_cpu_stack"),
    requestMap: () => tracer.object.map("hungtask_cpustack_req"),
  });
  const scene: Scene = { cpusStack: () => sampler.sample(), blockedStacks: () => blockedStacks(fs, log) };
  const tracer: BpfTracer = new BpfTracer({
    name: "hungtask",
    object: "hungtask.o",
    buffers: [
      { map: "hungtask_events", onRecord: onRecord(log, scene, new StormBackoff(), events) },
      { map: "hungtask_cpu_stacks", onRecord: sampler.onRecord },
    ],
  }, bpf);
  return {
    tracer,
    collect() {
      const n = readCounter(tracer.object.map("hungtask_count"));
      return Promise.resolve([counter("hungtask_total", "hungtask counter", n)]);
    },
  };
}, { tracing: true, events: true });
