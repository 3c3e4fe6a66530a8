// The common envelope every event/tracing document carries, as listed in the
// seed's "通用字段说明", plus the time formats shown in its JSON examples.

export type TracerType = "auto" | "manual";

/** Container identity attached when the event is tied to a container. */
export interface ContainerInfo {
  container_id: string;
  container_hostname: string;
  container_host_namespace: string;
  container_type: string;
  container_qos: string;
}

export interface EventDocument extends Partial<ContainerInfo> {
  hostname: string;
  region: string;
  /** RFC 3339 with the local offset, e.g. "2025-06-11T16:05:16.251152703+08:00". */
  uploaded_time: string;
  /** Same value and format as tracer_time ("2025-06-11 16:05:16.251 +0800"). */
  time: string;
  tracer_name: string;
  tracer_id: string;
  tracer_time: string;
  tracer_type: TracerType;
  tracer_data: Record<string, unknown>;
}

export interface NewDocumentOptions {
  hostname: string;
  region: string;
  tracerName: string;
  tracerType: TracerType;
  data: Record<string, unknown>;
  container?: Partial<ContainerInfo>;
  /** Event time; defaults to the current time. */
  now?: Date;
  /** When the tracing was triggered (tracer_time and time); defaults to `now`. */
  tracerTime?: Date;
  /** The document's tracer_id; a fresh one by default (an on-demand capture answers with it before it ends). */
  tracerId?: string;
  /** Minutes east of UTC; defaults to the machine's offset at `now`. */
  offsetMinutes?: number;
}

/** Minutes east of UTC for `date` in the process's local timezone. */
export function localOffsetMinutes(date: Date): number {
  // getTimezoneOffset() is minutes *west* of UTC, hence the sign flip.
  return -date.getTimezoneOffset();
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** Wall-clock fields of `date` as seen at `offsetMinutes` east of UTC. */
function shifted(date: Date, offsetMinutes: number): Date {
  // Reading UTC getters of a shifted instant gives local fields without
  // depending on the machine's TZ.
  return new Date(date.getTime() + offsetMinutes * 60_000);
}

function offsetParts(offsetMinutes: number): { sign: string; hh: string; mm: string } {
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  return { sign, hh: pad(Math.floor(abs / 60)), mm: pad(abs % 60) };
}

function datePart(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

function clockPart(d: Date): string {
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** "YYYY-MM-DD HH:mm:ss.SSS +ZZZZ", the seed's tracer_time/time format. */
export function formatTracerTime(date: Date, offsetMinutes: number): string {
  const d = shifted(date, offsetMinutes);
  const { sign, hh, mm } = offsetParts(offsetMinutes);
  return `${datePart(d)} ${clockPart(d)}.${pad(d.getUTCMilliseconds(), 3)} ${sign}${hh}${mm}`;
}

/**
 * RFC 3339 with nanosecond fraction and numeric offset, trimmed like Go's
 * RFC3339Nano (no trailing zeros; no fraction when zero). `subMillisNanos`
 * (0..999999) adds precision a Date cannot hold; UTC still prints "+00:00".
 */
export function formatUploadedTime(date: Date, offsetMinutes: number, subMillisNanos = 0): string {
  const d = shifted(date, offsetMinutes);
  const { sign, hh, mm } = offsetParts(offsetMinutes);
  const nanos = d.getUTCMilliseconds() * 1_000_000 + subMillisNanos;
  const frac = nanos === 0 ? "" : "." + pad(nanos, 9).replace(/0+$/, "");
  return `${datePart(d)}T${clockPart(d)}${frac}${sign}${hh}:${mm}`;
}

/** A random UUIDv4 as 32 lowercase hex digits: unique, and safe in file names and ES ids. */
export function newTracerId(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

/** Only the container keys that carry a value, so host events stay free of them. */
function containerFields(c: Partial<ContainerInfo> | undefined): Partial<ContainerInfo> {
  const out: Partial<ContainerInfo> = {};
  if (!c) return out;
  for (const [k, v] of Object.entries(c) as [keyof ContainerInfo, string | undefined][]) {
    if (v !== undefined && v !== "") out[k] = v;
  }
  return out;
}

export function newDocument(opts: NewDocumentOptions): EventDocument {
  const now = opts.now ?? new Date();
  const offset = opts.offsetMinutes ?? localOffsetMinutes(now);
  const tracerTime = formatTracerTime(opts.tracerTime ?? now, offset);
  return {
    hostname: opts.hostname,
    region: opts.region,
    uploaded_time: formatUploadedTime(now, offset),
    time: tracerTime,
    ...containerFields(opts.container),
    tracer_name: opts.tracerName,
    tracer_id: opts.tracerId ?? newTracerId(),
    tracer_time: tracerTime,
    tracer_type: opts.tracerType,
    tracer_data: opts.data,
  };
}
