// huatuo_bamai_autotracing_*: per trigger, how often its condition held,
// what became a capture, what was suppressed and why, and what captures cost.

import type { Collector } from "../core/collector.ts";
import { counter, gauge, type Sample } from "../core/sample.ts";
import type { AutoTracingRegistry } from "./registry.ts";

export function autotracingCollector(registry: AutoTracingRegistry): Collector {
  return {
    name: "autotracing",
    collect() {
      const out: Sample[] = [];
      for (const t of registry.list()) {
        const s = t.stats();
        const tracer = t.name;
        out.push(
          counter(
            "autotracing_triggers_total",
            "Polls at which an AutoTracing condition held (per container for per-container triggers).",
            s.triggers,
            { tracer },
          ),
        );
        for (const [type, n] of Object.entries(s.captures)) {
          out.push(
            counter("autotracing_captures_total", "AutoTracing captures recorded, by tracer_type.", n, {
              tracer,
              tracer_type: type,
            }),
          );
        }
        for (const [reason, n] of Object.entries(s.suppressed)) {
          out.push(
            counter(
              "autotracing_suppressed_total",
              "AutoTracing firings that started no capture: cooldown (IntervalTracing), filter (Filter rules), " +
                "busy (a capture of the same kind was running).",
              n,
              { tracer, reason },
            ),
          );
        }
        out.push(
          counter("autotracing_capture_errors_total", "AutoTracing captures that failed.", s.errors, {
            tracer,
          }),
          counter(
            "autotracing_samples_total",
            "What AutoTracing captures gathered: profile samples (cpusys, cpuidle), stacks or processes.",
            s.samples,
            { tracer },
          ),
          gauge(
            "autotracing_capture_duration_seconds",
            "How long the last AutoTracing capture took.",
            s.lastDurationSec,
            { tracer },
          ),
          gauge("autotracing_capture_running", "1 while an AutoTracing capture runs.", s.busy ? 1 : 0, {
            tracer,
          }),
        );
      }
      return Promise.resolve(out);
    },
  };
}
