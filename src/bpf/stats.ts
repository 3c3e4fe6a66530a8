// Self-observability of our BPF programs, as ebpf_exporter does: run count and
// run time per program (from bpf_prog_info; the kernel counts them only while
// sysctl kernel.bpf_stats_enabled=1) and whether those stats are on; and per
// event buffer the records read, lost in the kernel, and rejected by their
// handler.

import { bpfStatsEnabled } from "../../ffi/libbpf.ts";
import type { Collector } from "../core/collector.ts";
import { counter, gauge, type Sample } from "../core/sample.ts";
import type { BpfRuntime } from "./tracer.ts";

export function bpfProgramsCollector(runtime: BpfRuntime): Collector {
  return {
    name: "bpf_programs",
    collect() {
      const out: Sample[] = [
        gauge(
          "bpf_stats_enabled",
          "Whether kernel.bpf_stats_enabled is on (program run counts and times).",
          bpfStatsEnabled() ? 1 : 0,
        ),
      ];
      for (const t of runtime.live) {
        for (const [buffer, r] of t.readers) {
          const labels = { tracer: t.name, buffer };
          out.push(
            counter(
              "bpf_buffer_events_total",
              "Events read from a BPF ring or perf buffer.",
              r.events,
              labels,
            ),
            counter(
              "bpf_buffer_lost_total",
              "Events the kernel could not put in a BPF buffer (full).",
              r.lost,
              labels,
            ),
            counter(
              "bpf_buffer_errors_total",
              "Events read from a BPF buffer that their handler rejected (e.g. a record shorter than its struct).",
              r.errors,
              labels,
            ),
          );
        }
        for (const p of t.object.programs) {
          if (p.fd < 0) continue;
          const info = p.info();
          const labels = { tracer: t.name, program: p.name };
          out.push(
            counter(
              "bpf_program_run_count_total",
              "Times a BPF program ran (needs kernel.bpf_stats_enabled).",
              Number(info.runCnt),
              labels,
            ),
            counter(
              "bpf_program_run_time_seconds_total",
              "Time spent running a BPF program (needs kernel.bpf_stats_enabled).",
              Number(info.runTimeNs) / 1e9,
              labels,
            ),
          );
        }
      }
      return Promise.resolve(out);
    },
  };
}
