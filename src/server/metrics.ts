// The API server's connection handling as metrics: a peer holding sockets or
// sending junk shows up here before it shows up as a missed scrape.

import type { Collector } from "../core/collector.ts";
import { counter, gauge, type Sample } from "../core/sample.ts";
import type { TransportStats } from "./transport.ts";

export function httpSamples(s: TransportStats, maxConnections: number): Sample[] {
  return [
    gauge("http_connections", "huatuo-bamai: Open connections to the API server.", s.connections),
    gauge(
      "http_connections_max",
      "huatuo-bamai: Connections the API server allows at once ([APIServer] MaxConnections or derived from RLIMIT_NOFILE).",
      maxConnections,
    ),
    counter("http_connections_accepted_total", "huatuo-bamai: Connections accepted.", s.accepted),
    counter(
      "http_connections_evicted_total",
      "huatuo-bamai: Idle connections closed to admit a new one at the connection limit.",
      s.evicted,
    ),
    counter(
      "http_connections_timed_out_total",
      "huatuo-bamai: Connections closed by the header, idle or write timeout.",
      s.timedOut,
    ),
    counter(
      "http_connections_refused_total",
      "huatuo-bamai: Connections answered 503 because every allowed connection was serving a request.",
      s.refused,
    ),
    counter(
      "http_accept_errors_total",
      "huatuo-bamai: Failed accepts (e.g. out of file descriptors).",
      s.acceptErrors,
    ),
    counter(
      "http_requests_rejected_total",
      "huatuo-bamai: Requests answered 4xx before routing (malformed, head or body too large).",
      s.rejected,
    ),
  ];
}

export function httpCollector(server: { stats: TransportStats; maxConnections: number }): Collector {
  return { name: "http", collect: () => Promise.resolve(httpSamples(server.stats, server.maxConnections)) };
}
