// Where a tracer's event goes: one document, written synchronously to its
// tracer's local file, then fanned out to /v1/events/watch subscribers.
// Elasticsearch/OpenSearch shipping joins here later.

import type { Logger } from "../log/logger.ts";
import { type ContainerInfo, newDocument, type TracerType } from "../storage/document.ts";
import type { LocalFileStore } from "../storage/localfile.ts";
import type { EventHub } from "./hub.ts";

export interface EventInput {
  tracerName: string;
  data: Record<string, unknown>;
  tracerType?: TracerType;
  container?: Partial<ContainerInfo>;
}

export type EventSink = (event: EventInput) => void;

export function createEventSink(
  deps: { hostname: string; region: string; store: LocalFileStore; hub: EventHub; log: Logger },
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
    deps.hub.publish(doc);
  };
}
