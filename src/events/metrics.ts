// The event pipeline as metrics: events per tracer, and the watch fan-out
// (clients, deliveries, clients cut off for being too slow or for filters
// over their time budget), so a dashboard shows both "the kernel is
// reporting" and "subscribers keep up".

import type { Collector } from "../core/collector.ts";
import { counter, gauge, type Sample } from "../core/sample.ts";
import type { EventHub } from "./hub.ts";

/**
 * `tracers` (the enabled event and autotracing tracers) start at 0: a series that first appears at 1 gives
 * increase() 0, so the first OOM kill of a run would never fire an alert.
 */
export function eventsCollector(hub: EventHub, tracers: readonly string[] = []): Collector {
  return {
    name: "events",
    collect() {
      const s = hub.stats();
      const out: Sample[] = [];
      const counts = new Map<string, number>(tracers.map((t) => [t, 0]));
      for (const [tracer, n] of s.byTracer) counts.set(tracer, n);
      for (const [tracer, n] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
        out.push(counter("events_total", "Kernel events recorded, by tracer.", n, { tracer }));
      }
      out.push(
        gauge("events_watch_clients", "Connected /v1/events/watch subscribers.", s.subscribers),
        counter(
          "events_watch_delivered_total",
          "Events written to watch subscribers (replays included).",
          s.delivered,
        ),
        counter(
          "events_watch_replayed_total",
          "Events replayed to subscribers resuming with Last-Event-ID.",
          s.replayed,
        ),
        counter(
          "events_watch_clients_cut_off_total",
          "Watch subscribers disconnected because they did not keep up (their queue filled).",
          s.droppedClients,
        ),
        counter(
          "events_watch_clients_filter_budget_exceeded_total",
          "Watch subscribers disconnected because their filters used more than their time budget.",
          s.filterBudgetCutOffs,
        ),
      );
      return Promise.resolve(out);
    },
  };
}
