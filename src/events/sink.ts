// Where a tracer's event goes: one document, written synchronously to its
// tracer's local file, then appended to the Elasticsearch/OpenSearch outbox
// (a small sync write; shipping is async, see storage/opensearch.ts), then
// fanned out to /v1/events/watch subscribers.

import type { Logger } from "../log/logger.ts";
import { type ContainerInfo, type EventDocument, newDocument, type TracerType } from "../core/document.ts";
import type { LocalFileStore } from "../storage/localfile.ts";
import type { EventHub } from "./hub.ts";
import {
  type CgroupIdKind,
  containerEventFields,
  type ContainerRegistry,
  controllerLookup,
} from "../pod/container.ts";

/** The container fields of an event: given, or found by its cgroup id or netns inode. */
export function eventContainer(
  event: EventInput,
  containers: ContainerRegistry | undefined,
): Partial<ContainerInfo> | undefined {
  if (event.container || !containers) return event.container;
  const byCgroup = event.cgroupKind
    ? controllerLookup(containers, event.cgroupKind)
    : (id: number | bigint) => containers.byCgroupId(id);
  const c = (event.cgroupId ? byCgroup(event.cgroupId) : undefined) ??
    (event.netnsInode ? containers.byNetns(event.netnsInode) : undefined);
  return c ? containerEventFields(c) : undefined;
}

export interface EventInput {
  tracerName: string;
  data: Record<string, unknown>;
  tracerType?: TracerType;
  container?: Partial<ContainerInfo>;
  /**
   * Identifies the container the event belongs to when `container` is not
   * given: a cgroup id the BPF side recorded (cgroup2 id, or v1 memory/cpu
   * cgroup inode) or a network namespace inode.
   */
  cgroupId?: number | bigint;
  /**
   * What cgroupId is (e.g. "memory": a memcg css id), so it is resolved in its
   * own hierarchy: numbers of different hierarchies coincide. Absent: any.
   */
  cgroupKind?: CgroupIdKind;
  netnsInode?: number;
  /** tracer_id chosen by the caller (AutoTracing answers an on-demand capture with it); fresh by default. */
  tracerId?: string;
  /** tracer_time: when the tracing was triggered (a capture ends later); now by default. */
  time?: Date;
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
    /** Containers, to fill container_* of events that carry a cgroup id or netns inode. */
    containers?: ContainerRegistry;
  },
): EventSink {
  return (event) => {
    const doc = newDocument({
      hostname: deps.hostname,
      region: deps.region,
      tracerName: event.tracerName,
      tracerType: event.tracerType ?? "auto",
      data: event.data,
      container: eventContainer(event, deps.containers),
      tracerId: event.tracerId,
      tracerTime: event.time,
    });
    // A full or read-only disk must not stop the stream: the store never throws, and counts and logs
    // (once per failure streak) the documents it could not write.
    deps.store.write(doc);
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
