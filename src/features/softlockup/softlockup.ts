// Soft lockups (BPF). No tracepoint marks a soft lockup and kprobes may be
// unavailable, so the program watches printk:console for the watchdog's
// "BUG: soft lockup" report line: softlockup_total counts every report, and a
// report the storm backoff lets through becomes one "softlockup" event with
// the CPU, the task the watchdog named and a backtrace of every CPU.

import type { RecordHandler } from "../../../ffi/events.ts";
import { recordLayout, RecordReader } from "../../bpf/record.ts";
import { BpfTracer } from "../../bpf/tracer.ts";
import { readCounter } from "../../bpf/zones.ts";
import { StormBackoff } from "../../events/backoff.ts";
import { CpuStackSampler } from "../../events/kernel_stacks.ts";
import type { EventSink } from "../../events/sink.ts";
import type { Logger } from "../../log/logger.ts";
import { metricsFeature } from "../feature.ts";
import { counter } from "../../core/sample.ts";
import { taskCgroupId } from "../../events/task_cgroup.ts";

/** Bytes of message text in struct softlockup_event. */
export const SOFTLOCKUP_TEXT_MAX = 192;

/** struct softlockup_event in bpf/softlockup.bpf.c. */
export const SOFTLOCKUP_RECORD = recordLayout("softlockup.o", "softlockup_event", 200, {
  cpu: 0,
  len: 4,
  text: 8,
});

export interface SoftlockupRecord {
  /** CPU the report was printed on (the watchdog runs on the stuck CPU). */
  cpu: number;
  text: string;
}

/** Decodes one struct softlockup_event of `length` bytes at `offset` of `view`. */
export function softlockupRecord(view: DataView, offset: number, length: number): SoftlockupRecord {
  const r = RecordReader.of(SOFTLOCKUP_RECORD, view, offset, length);
  const f = SOFTLOCKUP_RECORD.fields;
  // Only the first len bytes are this message's (the rest is an earlier one's).
  return { cpu: r.u32(f.cpu), text: r.cString(f.text, Math.min(r.u32(f.len), SOFTLOCKUP_TEXT_MAX)) };
}

export interface SoftlockupReport {
  cpu: number;
  stuckSeconds: number;
  comm: string;
  pid: number;
}

/**
 * Parses kernel/watchdog.c's report,
 * "watchdog: BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]" (possibly
 * after a time stamp prefix). The comm may itself hold ':' or ']'.
 */
export function parseSoftlockupLine(text: string): SoftlockupReport | undefined {
  const m = /BUG: soft lockup - CPU#(\d+) stuck for (\d+)s! \[(.*):(\d+)\]/.exec(text);
  if (!m) return undefined;
  return { cpu: Number(m[1]), stuckSeconds: Number(m[2]), comm: m[3], pid: Number(m[4]) };
}

/** The event's tracer_data without cpus_stack; a line the parser cannot read keeps the printing CPU. */
export function softlockupTracerData(r: SoftlockupRecord): { cpu: number; pid: number; comm: string } {
  const p = parseSoftlockupLine(r.text);
  return p ? { cpu: p.cpu, pid: p.pid, comm: p.comm } : { cpu: r.cpu, pid: 0, comm: "" };
}

function onRecord(
  log: Logger,
  cpusStack: () => Promise<string>,
  backoff: StormBackoff,
  events?: EventSink,
): RecordHandler {
  return (view, offset, length) => {
    const r = softlockupRecord(view, offset, length);
    const data = softlockupTracerData(r);
    const d = backoff.occur();
    if (!d.report) {
      log.debug("soft lockup report held back (storm backoff)", { ...data, suppressed: d.suppressed });
      return;
    }
    log.warn("soft lockup detected", { ...data, suppressed: d.suppressed || undefined });
    if (!parseSoftlockupLine(r.text)) log.warn("soft lockup line not understood", { text: r.text });
    if (!events) return;
    // The stuck task's container, looked up now: by the time the stacks are in it may be gone.
    const cgroupId = taskCgroupId(data.pid);
    cpusStack().then((cpus) =>
      events({
        tracerName: "softlockup",
        cgroupId,
        cgroupKind: "memory",
        data: { ...data, cpus_stack: cpus },
      })
    )
      .catch((err) => log.error("softlockup event not emitted", { error: String(err) }));
  };
}

export default metricsFeature("softlockup", ({ bpf, log, events }) => {
  const sampler = new CpuStackSampler({
    program: () => tracer.object.program("softlockup_cpu_stack"),
    requestMap: () => tracer.object.map("softlockup_cpustack_req"),
  });
  const tracer: BpfTracer = new BpfTracer({
    name: "softlockup",
    object: "softlockup.o",
    buffers: [
      {
        map: "softlockup_events",
        onRecord: onRecord(log, () => sampler.sample(), new StormBackoff(), events),
      },
      { map: "softlockup_cpu_stacks", onRecord: sampler.onRecord },
    ],
  }, bpf);
  return {
    tracer,
    collect() {
      const n = readCounter(tracer.object.map("softlockup_count"));
      return Promise.resolve([counter("softlockup_total", "softlockup counter", n)]);
    },
  };
}, { tracing: true, events: true });
