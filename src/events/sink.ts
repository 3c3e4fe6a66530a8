// Where a tracer's event goes: one document, written synchronously to its
// tracer's local file, then appended to the Elasticsearch/OpenSearch outbox
// (a small sync write; shipping is async, see storage/opensearch.ts), then
// fanned out to /v1/events/watch subscribers.

import type { Logger } from "../log/logger.ts";
import { type ContainerInfo, type EventDocument, newDocument, type TracerType } from "../storage/document.ts";
import type { LocalFileStore } from "../storage/localfile.ts";
import type { EventHub } from "./hub.ts";

export interface EventInput {
  tracerName: string;
  data: Record<string, unknown>;
  tracerType?: TracerType;
  container?: Partial<ContainerInfo>;
}

export type EventSink = (event: EventInput) => void;

/** The part of Storage.ES the sink needs (storage/opensearch.ts EsStorage). */
export interface DocumentOutbox {
  append(doc: EventDocument): void;
}

export function createEventSink(
  deps: {
    hostname: string;
    region: string;
    store: LocalFileStore;
    hub: EventHub;
    log: Logger;
    /** Storage.ES; absent when it is disabled. */
    es?: DocumentOutbox;
  },
): EventSink {
  return (event) => {
    const doc = newDocument({
      hostname: deps.hostname,
      region: deps.region,
      tracerName: event.tracerName,
      tracerType: event.tracerType ?? "auto",
      data: event.data,
      container: event.container,
    });
    try {
      deps.store.write(doc);
    } catch (err) {
      // A full or read-only disk must not stop the stream: log it and publish anyway.
      deps.log.error("event not written to the local file", {
        tracer: event.tracerName,
        error: err instanceof Error ? err.message : String(err),
      });
    }
    try {
      deps.es?.append(doc);
    } catch (err) {
      // The outbox counts and logs its own write failures; this guards the tracer against anything else.
      deps.log.error("event not queued for Elasticsearch/OpenSearch", {
        tracer: event.tracerName,
        error: err instanceof Error ? err.message : String(err),
      });
    }
    deps.hub.publish(doc);
  };
}
