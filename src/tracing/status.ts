// Tracer states as metrics: one series per tracer and state (1 for the current
// one, as node_exporter's systemd unit states do, so alerts can match
// `huatuo_bamai_tracer_state{state="failed"} == 1`), and restart counts.

import type { Collector } from "../core/collector.ts";
import { counter, gauge, type Sample } from "../core/sample.ts";
import type { TracerManager, TracerState } from "./manager.ts";

const STATES: readonly TracerState[] = [
  "starting",
  "running",
  "disabled",
  "unsupported",
  "failed",
  "stopped",
];

export function tracerStatusCollector(tracers: TracerManager): Collector {
  return {
    name: "tracer_status",
    collect() {
      const out: Sample[] = [];
      for (const s of tracers.statuses()) {
        for (const state of STATES) {
          out.push(gauge("tracer_state", "Tracer state: 1 for the current one.", s.state === state ? 1 : 0, {
            tracer: s.name,
            state,
          }));
        }
        out.push(counter("tracer_restarts_total", "Restarts of a tracer after a failure.", s.restarts, {
          tracer: s.name,
        }));
      }
      return Promise.resolve(out);
    },
  };
}
