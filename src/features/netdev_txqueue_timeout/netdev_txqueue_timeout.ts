// TX queue timeouts (BPF on the net:net_dev_xmit_timeout raw tracepoint): the
// netdev watchdog found a queue stopped for longer than the device's
// watchdog_timeo and asked the driver to recover it. Each one becomes a
// "netdev_txqueue_timeout" event naming the queue, the device and its driver.
// Kernels without the tracepoint report the tracer as unsupported: the attach
// fails with ENOENT (see src/bpf/tracer.ts).

import type { RecordHandler } from "../../../ffi/events.ts";
import { IFNAMSIZ, recordLayout, RecordReader } from "../../bpf/record.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import type { Logger } from "../../log/logger.ts";
import type { EventSink } from "../../events/sink.ts";
import { eventsFeature } from "../feature.ts";

export const TRACER_NAME = "netdev_txqueue_timeout";

const DRIVER_NAME_LEN = 32;

/** struct txqueue_timeout_event in bpf/netdev_txqueue_timeout.bpf.c. */
export const TXQUEUE_TIMEOUT_RECORD = recordLayout("netdev_txqueue_timeout.o", "txqueue_timeout_event", 64, {
  queue_index: 0,
  device_name: 4,
  driver_name: 20,
  ts: 56,
});

export interface TxqueueTimeoutRecord {
  queueIndex: number;
  deviceName: string;
  /** The parent device's driver; "" for devices without one. */
  driverName: string;
  /** CLOCK_MONOTONIC ns. */
  ts: bigint;
}

/** Decodes one struct txqueue_timeout_event of `length` bytes at `offset` of `view`. */
export function txqueueTimeoutRecord(view: DataView, offset: number, length: number): TxqueueTimeoutRecord {
  const r = RecordReader.of(TXQUEUE_TIMEOUT_RECORD, view, offset, length);
  const f = TXQUEUE_TIMEOUT_RECORD.fields;
  return {
    queueIndex: r.i32(f.queue_index),
    deviceName: r.cString(f.device_name, IFNAMSIZ),
    driverName: r.cString(f.driver_name, DRIVER_NAME_LEN),
    ts: r.u64(f.ts),
  };
}

/** The event's tracer_data, with the seed's field names. */
export function txqueueTimeoutTracerData(r: TxqueueTimeoutRecord): Record<string, unknown> {
  return { queue_index: r.queueIndex, device_name: r.deviceName, driver_name: r.driverName };
}

function onRecord(log: Logger, events?: EventSink): RecordHandler {
  return (view, offset, length) => {
    const r = txqueueTimeoutRecord(view, offset, length);
    log.warn("netdev TX queue timeout", { device: r.deviceName, driver: r.driverName, queue: r.queueIndex });
    events?.({ tracerName: TRACER_NAME, data: txqueueTimeoutTracerData(r) });
  };
}

/** The "netdev_txqueue_timeout" event tracer. */
export function netdevTxqueueTimeoutTracer(
  ctx: { bpf: BpfRuntime; log: Logger; events?: EventSink },
): BpfTracer {
  return new BpfTracer({
    name: TRACER_NAME,
    object: "netdev_txqueue_timeout.o",
    buffers: [{ map: "netdev_txqueue_timeout_events", onRecord: onRecord(ctx.log, ctx.events) }],
  }, ctx.bpf);
}

export default eventsFeature("netdev_txqueue_timeout", (ctx) => netdevTxqueueTimeoutTracer(ctx));
