// TCP receive-path latency (BPF on net:netif_receive_skb, tcp:tcp_probe and
// skb:skb_copy_datagram_iovec, bpf/net_rx_latency.bpf.c): a packet whose
// time since the driver received it (skb->tstamp) exceeds a stage's threshold
// becomes one "net_rx_latency" event, at the first stage it is late.
//
// While running, the tracer keeps the kernel's receive timestamping on (a
// socket with SO_TIMESTAMPNS) and gives the BPF programs the offset between
// CLOCK_REALTIME (skb->tstamp) and CLOCK_MONOTONIC (bpf_ktime_get_ns),
// refreshed every second.

import type { RecordHandler } from "../../../ffi/events.ts";
import {
  CLOCK_MONOTONIC,
  CLOCK_REALTIME,
  clockGettimeNs,
  close as closeFd,
  holdRxTimestamps,
} from "../../../ffi/libc.ts";
import { recordLayout, RecordReader, TASK_COMM_LEN } from "../../bpf/record.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import type { Config } from "../../config/schema.ts";
import { formatIPv4, formatIPv6 } from "../../host/inet.ts";
import type { Logger } from "../../log/logger.ts";
import type { ContainerInfo } from "../../core/document.ts";
import type { Tracer, TracerContext } from "../../tracing/manager.ts";
import type { EventSink } from "../../events/sink.ts";
import { eventsFeature, type FeatureContext } from "../feature.ts";
import { containerEventFields } from "../../pod/container.ts";
import { compileIssues, type KnownIssue, matchIssue } from "../common/issues.ts";

export const NET_RX_LATENCY = "net_rx_latency";

/** struct net_rx_event in bpf/net_rx_latency.bpf.c. */
export const NET_RX_RECORD = recordLayout("net_rx_latency.o", "net_rx_event", 104, {
  latency_ns: 0,
  tstamp_ns: 8,
  suppressed: 16,
  pid: 24,
  netns_ino: 28,
  saddr: 32,
  daddr: 48,
  seq: 64,
  ack_seq: 68,
  pkt_len: 72,
  sport: 76,
  dport: 78,
  family: 80,
  where: 82,
  state: 83,
  comm: 84,
});

/** The seed's `where` values, indexed by the record's where byte. */
export const NET_RX_WHERE = ["TO_NETIF_RCV", "TO_TCPV4_RCV", "TO_USER_COPY"] as const;
export type NetRxWhere = typeof NET_RX_WHERE[number];

/** Default BPF rate limit: events per second over all CPUs (the seed has no key for it). */
export const NET_RX_EVENTS_PER_SEC = 100;

/** enum tcp_state names (include/net/tcp_states.h); 0 = no socket known yet (TO_NETIF_RCV). */
const TCP_STATES = [
  "UNKNOWN",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT1",
  "FIN_WAIT2",
  "TIME_WAIT",
  "CLOSE",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "CLOSING",
  "NEW_SYN_RECV",
  "BOUND_INACTIVE",
];

export function tcpStateName(state: number): string {
  return TCP_STATES[state] ?? `STATE_${state}`;
}

/** struct net_rx_event from bpf/net_rx_latency.bpf.c. Addresses and ports are the packet's (source → destination). */
export interface NetRxRecord {
  latencyNs: bigint;
  /** skb->tstamp: CLOCK_REALTIME ns when the driver handed the packet to the stack. */
  tstampNs: bigint;
  /** Events dropped by the BPF rate limit so far (all CPUs, approximate). */
  suppressed: bigint;
  pid: number;
  netnsInode: number;
  saddr: string;
  daddr: string;
  seq: number;
  ackSeq: number;
  pktLen: number;
  sport: number;
  dport: number;
  family: number;
  where: NetRxWhere;
  state: string;
  comm: string;
}

const AF_INET = 2;
const AF_INET6 = 10;

/** Decodes one struct net_rx_event of `length` bytes at `offset` of `view`. */
export function netRxRecord(view: DataView, offset: number, length: number): NetRxRecord {
  const r = RecordReader.of(NET_RX_RECORD, view, offset, length);
  const f = NET_RX_RECORD.fields;
  const family = r.u16(f.family);
  const where = NET_RX_WHERE[r.u8(f.where)];
  if (where === undefined) throw new RangeError(`net_rx_latency record: unknown where ${r.u8(f.where)}`);
  const address = (off: number) =>
    family === AF_INET
      ? formatIPv4(r.bytes(off, 4))
      : family === AF_INET6
      ? formatIPv6(r.bytes(off, 16))
      : "";
  return {
    latencyNs: r.u64(f.latency_ns),
    tstampNs: r.u64(f.tstamp_ns),
    suppressed: r.u64(f.suppressed),
    pid: r.u32(f.pid),
    netnsInode: r.u32(f.netns_ino),
    saddr: address(f.saddr),
    daddr: address(f.daddr),
    seq: r.u32(f.seq),
    ackSeq: r.u32(f.ack_seq),
    pktLen: r.u32(f.pkt_len),
    sport: r.u16(f.sport),
    dport: r.u16(f.dport),
    family,
    where,
    state: tcpStateName(r.u8(f.state)),
    comm: r.cString(f.comm, TASK_COMM_LEN),
  };
}

/** Whole milliseconds (rounded down) of a latency in ns, as the seed's latency_ms. */
export function latencyMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}

/**
 * The text IssuesList regexes are matched against (unanchored, first match
 * wins), one line of space-separated key=value pairs in this order:
 *
 *   comm=<comm> pid=<pid> where=<where> state=<state> saddr=<ip> sport=<port>
 *   daddr=<ip> dport=<port> latency_ms=<ms> netns=<inode>[ container_hostname=<name>]
 *
 * e.g. "comm=nginx pid=42 where=TO_USER_COPY state=ESTABLISHED saddr=10.0.0.1
 * sport=80 daddr=10.0.0.2 dport=49000 latency_ms=300 netns=4026532001"
 * (one line). The seed's example rule "comm=ignored_process" matches any comm
 * starting with ignored_process; end it with a space ("comm=nginx ") to match
 * one name exactly. container_hostname is present once containers are known.
 */
export function issueContext(r: NetRxRecord, container?: Partial<ContainerInfo>): string {
  const parts = [
    `comm=${r.comm}`,
    `pid=${r.pid}`,
    `where=${r.where}`,
    `state=${r.state}`,
    `saddr=${r.saddr}`,
    `sport=${r.sport}`,
    `daddr=${r.daddr}`,
    `dport=${r.dport}`,
    `latency_ms=${latencyMs(r.latencyNs)}`,
    `netns=${r.netnsInode}`,
  ];
  if (container?.container_hostname) parts.push(`container_hostname=${container.container_hostname}`);
  return parts.join(" ");
}

/**
 * The event's tracer_data: the seed's fields (comm, pid, where, latency_ms,
 * state, saddr, daddr, sport, dport, seq, ack_seq, pkt_len), plus
 * netns_inode (the net namespace of the receiving device or socket, as in
 * /proc/<pid>/ns/net), known_issue when an IssuesList rule matched, and
 * suppressed when the BPF rate limit dropped events since the previous one.
 * saddr/sport are the packet's sender, daddr/dport its receiver. comm/pid are
 * the task running when the stage was reached: the reader at TO_USER_COPY,
 * whatever task the softirq interrupted (often swapper/N or ksoftirqd/N) at
 * the other two stages.
 */
export function netRxTracerData(
  r: NetRxRecord,
  extra: { knownIssue?: string; suppressed?: number } = {},
): Record<string, unknown> {
  const data: Record<string, unknown> = {
    comm: r.comm,
    pid: r.pid,
    where: r.where,
    latency_ms: latencyMs(r.latencyNs),
    state: r.state,
    saddr: r.saddr,
    daddr: r.daddr,
    sport: r.sport,
    dport: r.dport,
    seq: r.seq,
    ack_seq: r.ackSeq,
    pkt_len: r.pktLen,
    netns_inode: r.netnsInode,
  };
  if (extra.knownIssue !== undefined) data.known_issue = extra.knownIssue;
  if (extra.suppressed) data.suppressed = extra.suppressed;
  return data;
}

/**
 * Maps a net namespace to its container (with its QoS class). Supplied by the
 * container registry once it exists; without it ExcludedContainerQos cannot
 * apply and events carry no container fields.
 */
export interface NetnsContainerResolver {
  containerByNetns(inode: number): Partial<ContainerInfo> | undefined;
}

export interface NetRxLatencyOptions {
  /** Thresholds in ms (Driver2NetRx, Driver2TCP, Driver2Userspace); 0 turns a stage off. */
  driver2NetRxMs: number;
  driver2TcpMs: number;
  driver2UserspaceMs: number;
  excludedHostNetnamespace: boolean;
  /** Lower-case QoS classes whose containers are not reported. */
  excludedContainerQos: readonly string[];
  issues: readonly KnownIssue[];
  eventsPerSec: number;
}

export function netRxLatencyOptions(config: Config): NetRxLatencyOptions {
  const c = config.EventTracing.NetRxLatency;
  return {
    driver2NetRxMs: c.Driver2NetRx,
    driver2TcpMs: c.Driver2TCP,
    driver2UserspaceMs: c.Driver2Userspace,
    excludedHostNetnamespace: c.ExcludedHostNetnamespace,
    // The guide documents the default as [""]: empty entries mean nothing.
    excludedContainerQos: c.ExcludedContainerQos.filter((q) => q !== "").map((q) => q.toLowerCase()),
    issues: compileIssues(config.EventTracing.IssuesList),
    eventsPerSec: NET_RX_EVENTS_PER_SEC,
  };
}

/**
 * Inode of the host's net namespace: /proc/1/ns/net, or the agent's own when
 * that is not readable (the agent runs with the host network, as the seed's
 * `docker run --network=host`). Always the real /proc: the BPF side is the
 * real kernel whatever --procfs-prefix says.
 */
export function hostNetnsInode(): number {
  for (const p of ["/proc/1/ns/net", "/proc/self/ns/net"]) {
    try {
      const ino = Deno.statSync(p).ino;
      if (ino) return ino;
    } catch { /* next */ }
  }
  throw new Error(
    "cannot stat /proc/1/ns/net or /proc/self/ns/net: no net namespace inode for ExcludedHostNetnamespace",
  );
}

/** CLOCK_REALTIME - CLOCK_MONOTONIC in ns, sampled between two monotonic reads. */
export function realtimeOffsetNs(): bigint {
  const m1 = clockGettimeNs(CLOCK_MONOTONIC);
  const r = clockGettimeNs(CLOCK_REALTIME);
  const m2 = clockGettimeNs(CLOCK_MONOTONIC);
  return r - (m1 + (m2 - m1) / 2n);
}

const MS = 1_000_000n;
const CLOCK_REFRESH_MS = 1000;

/** The "net_rx_latency" event tracer: the BPF tracer plus timestamping, the clock offset and event filtering. */
/** The BPF programs: tp_btf first, raw_tp where the kernel cannot attach tp_btf. */
export const NET_RX_IMPLEMENTATIONS: readonly (readonly string[])[] = [
  ["net_rx_btf_netif", "net_rx_btf_tcp", "net_rx_btf_user"],
  ["net_rx_raw_netif", "net_rx_raw_tcp", "net_rx_raw_user"],
];

/** The "net_rx_latency" event tracer: the BPF tracer plus timestamping, the clock offset and event filtering. */
export class NetRxLatencyTracer implements Tracer {
  readonly name = NET_RX_LATENCY;
  /** Events dropped in user space because their container's QoS is excluded. */
  excludedByQos = 0;
  #bpf?: BpfTracer;
  #tsFd = -1;
  #timer?: ReturnType<typeof setInterval>;
  #lastSuppressed = 0n;
  #clockKey = new Uint8Array(4);
  #clockValue = new BigInt64Array(1);

  constructor(
    readonly options: NetRxLatencyOptions,
    private readonly deps: {
      bpf: BpfRuntime;
      log: Logger;
      events?: EventSink;
      containers?: NetnsContainerResolver;
      /** Overrides /proc/1/ns/net. */
      hostNetnsInode?: number;
      /** Overrides NET_RX_IMPLEMENTATIONS (tests force the raw_tp set). */
      implementations?: readonly (readonly string[])[];
    },
  ) {}

  /** The BPF tracer of the current run; throws before the first start. */
  get bpf(): BpfTracer {
    if (!this.#bpf) throw new Error("net_rx_latency was never started");
    return this.#bpf;
  }

  // Built per start: the host netns inode is looked up then, so a failure is the tracer's, not the agent's.
  #newBpf(): BpfTracer {
    const o = this.options;
    const hostIno = o.excludedHostNetnamespace ? (this.deps.hostNetnsInode ?? hostNetnsInode()) : 0;
    return new BpfTracer({
      name: NET_RX_LATENCY,
      object: "net_rx_latency.o",
      rodata: {
        thr_netif_ns: BigInt(o.driver2NetRxMs) * MS,
        thr_tcp_ns: BigInt(o.driver2TcpMs) * MS,
        thr_user_ns: BigInt(o.driver2UserspaceMs) * MS,
        exclude_host_netns: o.excludedHostNetnamespace,
        host_netns_ino: hostIno,
        events_per_sec: o.eventsPerSec,
      },
      alternatives: this.deps.implementations ?? NET_RX_IMPLEMENTATIONS,
      buffers: [{ map: "net_rx_events", onRecord: this.#onRecord() }],
    }, this.deps.bpf);
  }

  /** Events the BPF rate limit dropped in this run (read from the kernel). */
  suppressedInKernel(): number {
    const v = new Uint8Array(this.bpf.object.map("net_rx_rate").valueSize);
    if (!this.bpf.object.map("net_rx_rate").lookup(new Uint8Array(4), v)) return 0;
    return Number(new DataView(v.buffer).getBigUint64(16, true)); // struct net_rx_rate.suppressed
  }

  async start(ctx: TracerContext): Promise<void> {
    if (this.options.excludedContainerQos.length > 0 && !this.deps.containers) {
      ctx.log.info("net_rx_latency: ExcludedContainerQos not applied: no container registry yet", {
        qos: this.options.excludedContainerQos.join(","),
      });
    }
    this.#lastSuppressed = 0n;
    this.#bpf = this.#newBpf();
    this.#tsFd = holdRxTimestamps();
    try {
      await this.#bpf.start(ctx);
      this.#refreshClock();
    } catch (err) {
      this.stop();
      throw err;
    }
    this.#timer = setInterval(() => {
      try {
        this.#refreshClock();
      } catch (err) {
        ctx.fail(err instanceof Error ? err : new Error(String(err)));
      }
    }, CLOCK_REFRESH_MS);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#bpf?.stop();
    if (this.#tsFd >= 0) closeFd(this.#tsFd);
    this.#tsFd = -1;
  }

  #refreshClock(): void {
    this.#clockValue[0] = realtimeOffsetNs();
    this.bpf.object.map("net_rx_clock").update(this.#clockKey, new Uint8Array(this.#clockValue.buffer));
  }

  #onRecord(): RecordHandler {
    return (view, offset, length) => {
      const r = netRxRecord(view, offset, length);
      // Records from different CPUs may arrive slightly out of order: count forward only.
      const suppressed = r.suppressed > this.#lastSuppressed
        ? Number(r.suppressed - this.#lastSuppressed)
        : 0;
      if (suppressed) this.#lastSuppressed = r.suppressed;
      const container = this.deps.containers?.containerByNetns(r.netnsInode);
      const qos = container?.container_qos?.toLowerCase();
      if (qos && this.options.excludedContainerQos.includes(qos)) {
        this.excludedByQos++;
        return;
      }
      const knownIssue = matchIssue(issueContext(r, container), this.options.issues);
      this.deps.log.debug("net rx latency", {
        where: r.where,
        latency_ms: latencyMs(r.latencyNs),
        comm: r.comm,
        dport: r.dport,
      });
      this.deps.events?.({
        tracerName: NET_RX_LATENCY,
        data: netRxTracerData(r, { knownIssue, suppressed }),
        container,
      });
    };
  }
}

/** The "net_rx_latency" event tracer from the agent's config. */
export function netRxLatencyTracer(
  ctx: {
    bpf: BpfRuntime;
    log: Logger;
    config: Config;
    events?: EventSink;
    containers?: NetnsContainerResolver;
  },
): NetRxLatencyTracer {
  return new NetRxLatencyTracer(netRxLatencyOptions(ctx.config), ctx);
}

/** net_rx_latency's view of the container registry: event fields by network namespace. */
function netnsResolver(ctx: FeatureContext): NetnsContainerResolver | undefined {
  const reg = ctx.containers;
  if (!reg) return undefined;
  return {
    containerByNetns: (inode) => {
      const c = reg.byNetns(inode);
      return c ? containerEventFields(c) : undefined;
    },
  };
}

export default eventsFeature(
  "net_rx_latency",
  (ctx) => netRxLatencyTracer({ ...ctx, containers: netnsResolver(ctx) }),
);
