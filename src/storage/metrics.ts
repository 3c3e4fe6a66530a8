// Storage.ES as metrics, so a store outage is an alert and never silent loss:
// queued (gauge) climbing with up == 0 is an outage being ridden out; dropped
// or failed rising is data that will never reach the store. Storage.LocalFile:
// written and failed documents per tracer (a full or read-only disk).

import type { Collector } from "../core/collector.ts";
import { counter, gauge, type Sample } from "../core/sample.ts";
import type { LocalFileStore } from "./localfile.ts";
import type { EsStorage } from "./opensearch.ts";

export function esStorageSamples(storage: EsStorage): Sample[] {
  const s = storage.stats();
  return [
    gauge(
      "storage_es_up",
      "1 when the last request to Elasticsearch/OpenSearch succeeded, else 0.",
      s.up,
    ),
    gauge(
      "storage_es_queued_documents",
      "Documents in the outbox not yet acknowledged by Elasticsearch/OpenSearch.",
      s.queuedDocuments,
    ),
    gauge(
      "storage_es_queued_bytes",
      "Bytes of the outbox segment files on disk (bounded by Storage.ES.OutboxMaxSize).",
      s.queuedBytes,
    ),
    counter(
      "storage_es_sent_total",
      "Documents acknowledged by Elasticsearch/OpenSearch.",
      s.sent,
    ),
    counter(
      "storage_es_failed_total",
      "Documents rejected for good by Elasticsearch/OpenSearch (e.g. mapping errors) or unreadable in the outbox.",
      s.failed,
    ),
    counter(
      "storage_es_dropped_total",
      "Documents dropped before they were sent: outbox over OutboxMaxSize, or the outbox write failed.",
      s.dropped,
    ),
    counter(
      "storage_es_bulk_requests_total",
      "Bulk requests sent to Elasticsearch/OpenSearch, retries included.",
      s.bulkRequests,
    ),
    counter(
      "storage_es_retries_total",
      "Bulk requests retried after a failure or after items to retry (429, 5xx).",
      s.retries,
    ),
  ];
}

/** No series when Storage.ES is disabled: absent, not zero, so `up == 0` alerts only where it is on. */
export function esStorageCollector(storage: EsStorage | undefined): Collector {
  return {
    name: "storage_es",
    collect: () => Promise.resolve(storage ? esStorageSamples(storage) : []),
  };
}

/**
 * Per tracer that sent a document, and per tracer in `tracers` from the start: both counters from 0, so
 * increase() sees a tracer's first failure (a series that first appears at 1 reads as no increase).
 */
export function localFileSamples(store: LocalFileStore, tracers: readonly string[] = []): Sample[] {
  const out: Sample[] = [];
  const all = new Map(tracers.map((t) => [t, { written: 0, failed: 0 }]));
  for (const [t, s] of store.stats()) all.set(t, s);
  const stats = [...all].sort(([a], [b]) => a.localeCompare(b));
  for (const [tracer, s] of stats) {
    out.push(
      counter("storage_local_written_total", "Documents written to the local file, by tracer.", s.written, {
        tracer,
      }),
      counter(
        "storage_local_failed_total",
        "Documents not written to the local file (e.g. disk full, read-only, unwritable Path), by tracer.",
        s.failed,
        { tracer },
      ),
    );
  }
  return out;
}

/** No series when Storage.LocalFile is disabled (Path ""). */
export function localFileCollector(store: LocalFileStore, tracers: readonly string[] = []): Collector {
  return {
    name: "storage_local",
    collect: () => Promise.resolve(store.enabled ? localFileSamples(store, tracers) : []),
  };
}
