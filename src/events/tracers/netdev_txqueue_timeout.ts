// TX queue timeouts (BPF on the net:net_dev_xmit_timeout raw tracepoint): the
// netdev watchdog found a queue stopped for longer than the device's
// watchdog_timeo and asked the driver to recover it. Each one becomes a
// "netdev_txqueue_timeout" event naming the queue, the device and its driver.
// Kernels without the tracepoint report the tracer as unsupported: the attach
// fails with ENOENT (see src/bpf/tracer.ts).

import type { RecordHandler } from "../../../ffi/events.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import type { Logger } from "../../log/logger.ts";
import type { EventSink } from "../sink.ts";

export const TRACER_NAME = "netdev_txqueue_timeout";

/** Size of struct txqueue_timeout_event in bpf/netdev_txqueue_timeout.bpf.c. */
export const TXQUEUE_TIMEOUT_RECORD_SIZE = 64;

export interface TxqueueTimeoutRecord {
  queueIndex: number;
  deviceName: string;
  /** The parent device's driver; "" for devices without one. */
  driverName: string;
  /** CLOCK_MONOTONIC ns. */
  ts: bigint;
}

const decoder = new TextDecoder();

function cString(view: DataView, offset: number, size: number): string {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, size);
  const end = bytes.indexOf(0);
  return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Decodes one struct txqueue_timeout_event at @offset of @view. */
export function txqueueTimeoutRecord(view: DataView, offset: number): TxqueueTimeoutRecord {
  if (view.byteLength - offset < TXQUEUE_TIMEOUT_RECORD_SIZE) {
    throw new RangeError(
      `netdev_txqueue_timeout record too short: ${
        view.byteLength - offset
      } < ${TXQUEUE_TIMEOUT_RECORD_SIZE} bytes`,
    );
  }
  return {
    queueIndex: view.getInt32(offset, true),
    deviceName: cString(view, offset + 4, 16),
    driverName: cString(view, offset + 20, 32),
    ts: view.getBigUint64(offset + 56, true),
  };
}

/** The event's tracer_data, with the seed's field names. */
export function txqueueTimeoutTracerData(r: TxqueueTimeoutRecord): Record<string, unknown> {
  return { queue_index: r.queueIndex, device_name: r.deviceName, driver_name: r.driverName };
}

function onRecord(log: Logger, events?: EventSink): RecordHandler {
  return (view, offset) => {
    const r = txqueueTimeoutRecord(view, offset);
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
