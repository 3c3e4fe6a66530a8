// Packet drops (BPF on skb:kfree_skb, bpf/dropwatch.bpf.c): each reported
// drop read from the program's ring buffer becomes one "dropwatch" event
// with the seed's tracer_data (type, 5-tuple, TCP seq/ack, socket state and
// backlog, device, netns cookie, kernel stack) plus the kernel's drop
// reason, the L4 protocol and the drop location.
//
// The kernel rate-limits reports per CPU (token bucket in BPF) and counts
// every drop by reason, reported or not; src/features/dropwatch/dropwatch.ts
// turns those counts into series.
//
// Drop reason and TCP state names come from the running kernel's BTF (enum
// skb_drop_reason, enum skb_drop_reason_subsys, the TCP_* state enum), or
// from the tracepoint's print fmt in tracefs, never from a table here.

import { Btf, BTF_KIND } from "../../../ffi/btf.ts";
import type { RecordHandler } from "../../../ffi/events.ts";
import { numPossibleCpus, type RodataValue } from "../../../ffi/libbpf.ts";
import { type KernelSymbols, kernelSymbols } from "../../bpf/ksyms.ts";
import { IFNAMSIZ, recordLayout, RecordReader, TASK_COMM_LEN } from "../../bpf/record.ts";
import { type BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import { formatIPv4, formatIPv6 } from "../../host/inet.ts";
import type { Logger } from "../../log/logger.ts";
import type { EventSink } from "../../events/sink.ts";

// ---- struct drop_event (bpf/dropwatch.bpf.c) ------------------------------

export const STACK_DEPTH = 32;

/** struct drop_event in bpf/dropwatch.bpf.c. */
export const DROP_RECORD = recordLayout("dropwatch.o", "drop_event", 408, {
  ts: 0,
  location: 8,
  net_cookie: 16,
  reason: 24,
  pid: 28,
  comm: 32,
  saddr: 48,
  daddr: 64,
  sport: 80,
  dport: 82,
  l3proto: 84,
  l4proto: 86,
  tcp_flags: 87,
  seq: 88,
  ack_seq: 92,
  pkt_len: 96,
  ifindex: 100,
  netns_ino: 104,
  queue_mapping: 108,
  sk_state: 110,
  flags: 111,
  ifname: 112,
  max_ack_backlog: 128,
  ack_backlog: 132,
  syn_qlen: 136,
  stack_bytes: 140,
  cgroup_id: 144,
  stack: 152,
});

/** drop_event.flags */
export const F_L3 = 0x01;
export const F_L4 = 0x02;
export const F_SK_TUPLE = 0x04;
export const F_SK = 0x08;
export const F_DEV = 0x10;
export const F_ADMIN_UP = 0x20;
export const F_CARRIER = 0x40;

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;

const TCP_FLAG_SYN = 0x02;
const TCP_FLAG_ACK = 0x10;
/** include/net/tcp_states.h: the user-visible ABI (ss, /proc/net/tcp) */
const TCP_LISTEN = 10;

/** What the seed calls "<nil>": a value the drop did not carry. */
export const NIL = "<nil>";

// ---- names from the kernel -------------------------------------------------

export interface BtfEnumQuery {
  /** The enum's name (e.g. "skb_drop_reason"). */
  name?: string;
  /** Or: an enum (named or not) with a member of this name (e.g. "TCP_ESTABLISHED"). */
  member?: string;
}

/**
 * Finds enums (ENUM or ENUM64) in parsed BTF and returns each one's members
 * as value → name, in query order (undefined when not found).
 */
export function findBtfEnums(
  btf: Btf,
  queries: readonly BtfEnumQuery[],
): (Map<number, string> | undefined)[] {
  const kinds = [BTF_KIND.ENUM, BTF_KIND.ENUM64];
  return queries.map(({ name, member }) => {
    let id = name === undefined
      ? undefined
      : btf.find(name, BTF_KIND.ENUM) ?? btf.find(name, BTF_KIND.ENUM64);
    if (id === undefined && member !== undefined) {
      id = btf.findWhere(kinds, (t) => [...btf.enumMembers(t.id).values()].includes(member))?.id;
    }
    return id === undefined ? undefined : btf.enumMembers(id);
  });
}

/**
 * The symbols of `__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, ...)`
 * in a tracefs event format file (events/skb/kfree_skb/format).
 */
export function parsePrintSymbolic(format: string, field = "reason"): Map<number, string> {
  const out = new Map<number, string>();
  const at = format.indexOf(`__print_symbolic(REC->${field},`);
  if (at < 0) return out;
  const re = /\{\s*(-?(?:0x[0-9a-fA-F]+|\d+))\s*,\s*"([^"]*)"\s*\}/y;
  let i = at + `__print_symbolic(REC->${field},`.length;
  for (;;) {
    while (i < format.length && (format[i] === " " || format[i] === ",")) i++;
    re.lastIndex = i;
    const m = re.exec(format);
    if (!m) break;
    out.set(Number(m[1]), m[2]);
    i = re.lastIndex;
  }
  return out;
}

const stripPrefix = (m: Map<number, string> | undefined, prefix: string): Map<number, string> => {
  const out = new Map<number, string>();
  for (const [v, n] of m ?? []) out.set(v, n.startsWith(prefix) ? n.slice(prefix.length) : n);
  return out;
};

/** Drop reason and TCP state names of the running kernel. */
export class DropNames {
  constructor(
    /** Core drop reasons without the SKB_DROP_REASON_ prefix ("NO_SOCKET"). */
    readonly reasons: ReadonlyMap<number, string>,
    /** enum skb_drop_reason_subsys without its prefix ("OPENVSWITCH"). */
    readonly subsystems: ReadonlyMap<number, string>,
    /** TCP states without the TCP_ prefix ("ESTABLISHED"). */
    readonly tcpStates: ReadonlyMap<number, string>,
    /** Where the names came from, for the log. */
    readonly source: string,
  ) {}

  /**
   * The kernel's name of a drop reason. Reasons of a subsystem (value >> 16
   * = its enum skb_drop_reason_subsys) are named "<SUBSYS>:<code>", since
   * their own enums live in module BTF; unknown values "reason <n>".
   */
  reason(n: number): string {
    const name = this.reasons.get(n);
    if (name !== undefined) return name;
    const sub = n >>> 16;
    if (sub !== 0) {
      const s = this.subsystems.get(sub);
      return `${s ?? `SUBSYS_${sub}`}:${n & 0xffff}`;
    }
    return `reason ${n}`;
  }

  /** "ESTABLISHED", ...; a number the kernel does not name is returned as digits. */
  tcpState(n: number): string {
    return this.tcpStates.get(n) ?? String(n);
  }

  /**
   * From the first readable BTF file (the kernel's, or the one the agent
   * ships for kernels without /sys/kernel/btf/vmlinux); reasons from the
   * first tracefs format file when no BTF has the enum.
   */
  static load(btfPaths: readonly string[], formatPaths: readonly string[]): DropNames {
    const errors: string[] = [];
    let reasons: Map<number, string> | undefined;
    let subsystems: Map<number, string> | undefined;
    let states: Map<number, string> | undefined;
    let source = "";
    for (const p of btfPaths) {
      try {
        const btf = Btf.parse(p);
        let found;
        try {
          found = findBtfEnums(btf, [
            { name: "skb_drop_reason" },
            { name: "skb_drop_reason_subsys" },
            { member: "TCP_ESTABLISHED" },
          ]);
        } finally {
          btf.close();
        }
        const [r, s, t] = found;
        states = stripPrefix(t, "TCP_");
        if (r) {
          reasons = stripPrefix(r, "SKB_DROP_REASON_");
          // The two values below the drop reasons proper keep their own prefix.
          for (const [v, n] of r) {
            if (n.startsWith("SKB_") && !n.startsWith("SKB_DROP_REASON_")) reasons.set(v, n.slice(4));
          }
          subsystems = stripPrefix(s, "SKB_DROP_REASON_SUBSYS_");
          source = p;
        }
        break;
      } catch (err) {
        errors.push(`${p}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (!reasons) {
      for (const p of formatPaths) {
        try {
          const m = parsePrintSymbolic(Deno.readTextFileSync(p));
          if (m.size === 0) continue;
          reasons = m;
          source = p;
          break;
        } catch (err) {
          errors.push(`${p}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
    return new DropNames(
      reasons ?? new Map(),
      subsystems ?? new Map(),
      states ?? new Map(),
      source || `none (${errors.join("; ") || "no enum skb_drop_reason"})`,
    );
  }
}

// ---- classification --------------------------------------------------------

export type DropType =
  | "common_drop"
  | "syn_flood"
  | "listen_overflow_handshake1"
  | "listen_overflow_handshake3";

/**
 * The seed's drop type, from what the kernel's listen path does:
 *  - a SYN (no ACK) dropped by a listener whose accept queue is full
 *    (ack_backlog > max_ack_backlog, the check of tcp_conn_request() that
 *    counts ListenOverflows): listen_overflow_handshake1;
 *  - a SYN dropped by a listener whose SYN queue (request socks) is full,
 *    the kernel's "Possible SYN flooding" condition, or with reason
 *    TCP_LISTEN_OVERFLOW: syn_flood;
 *  - the handshake's final ACK (ACK without SYN) dropped with reason
 *    TCP_LISTEN_OVERFLOW (6.15+: tcp_check_req() could not create the child,
 *    accept queue full) or to a listener whose accept queue is full:
 *    listen_overflow_handshake3;
 *  - anything else: common_drop.
 * Kernels free SYNs that tcp_conn_request() refuses with consume_skb(), not
 * kfree_skb(), so the two SYN types appear only where a kernel path drops
 * such a SYN with kfree_skb.
 */
export function dropType(
  l4proto: number,
  tcpFlags: number,
  reason: string,
  skState: number,
  ackBacklog: number,
  maxAckBacklog: number,
  synQlen: number,
): DropType {
  if (l4proto !== 6) return "common_drop";
  const syn = (tcpFlags & TCP_FLAG_SYN) !== 0;
  const ack = (tcpFlags & TCP_FLAG_ACK) !== 0;
  const listener = skState === TCP_LISTEN;
  const acceptFull = listener && ackBacklog > maxAckBacklog;
  if (syn && !ack) {
    if (acceptFull) return "listen_overflow_handshake1";
    if ((listener && synQlen >= maxAckBacklog) || reason === "TCP_LISTEN_OVERFLOW") return "syn_flood";
    return "common_drop";
  }
  if (ack && !syn && (reason === "TCP_LISTEN_OVERFLOW" || acceptFull)) return "listen_overflow_handshake3";
  return "common_drop";
}

// ---- decoding --------------------------------------------------------------

/** IANA protocol numbers of the L4 protocols a drop usually carries. */
const L4_NAMES: Record<number, string> = {
  1: "icmp",
  2: "igmp",
  4: "ipip",
  6: "tcp",
  17: "udp",
  41: "ipv6",
  47: "gre",
  50: "esp",
  51: "ah",
  58: "icmpv6",
  89: "ospf",
  112: "vrrp",
  132: "sctp",
  136: "udplite",
};

export function protocolName(l4proto: number): string {
  return L4_NAMES[l4proto] ?? String(l4proto);
}

/** netdev_linkstatus: ["linkStatusUp"] for an up device with carrier, else what is down; [] without a device. */
export function linkStatus(flags: number): string[] {
  if (!(flags & F_DEV)) return [];
  const out: string[] = [];
  if (!(flags & F_ADMIN_UP)) out.push("linkStatusAdminDown");
  if (!(flags & F_CARRIER)) out.push("linkStatusCarrierDown");
  if (out.length === 0) out.push("linkStatusUp");
  return out;
}

// Frames of the tracing machinery above the function that freed the skb, in a tp_btf/tracepoint stack.
const TRACING_FRAME = /^(bpf_|__bpf_|___bpf_|perf_|trace_|__traceiter_|__probestub_)/;

/**
 * The kernel stack (`addrs`, innermost first) as "symbol+0xoff/0xsize" lines,
 * starting at the function that freed the skb (kfree_skb_reason,
 * sk_skb_reason_drop...): the frames above it (the BPF program and the
 * tracepoint glue) are dropped. That function is the frame just above
 * `location` (the return address into the dropping function); without it in
 * the stack, leading frames outside kallsyms' text or of the tracing
 * machinery are skipped.
 */
export function formatDropStack(
  addrs: readonly bigint[],
  location: bigint,
  ksyms: KernelSymbols,
  frames?: FrameCache,
): string {
  const n = addrs.length;
  let first = addrs.indexOf(location) - 1;
  if (first < -1) {
    first = 0;
    for (; first < n - 1; first++) {
      const sym = ksyms.resolve(addrs[first]);
      if (sym && sym.size !== 0n && !TRACING_FRAME.test(sym.name)) break;
    }
  }
  first = Math.max(0, first);
  let lines = "";
  for (let i = first; i < n; i++) {
    const a = addrs[i];
    const frame = frames ? frames.get(a) : ksyms.formatFrame(a);
    lines = lines === "" ? frame : `${lines}\n${frame}`;
  }
  return lines;
}

/**
 * Formatted frames by address: drops repeat the same call paths, and a
 * binary search over ~100k BigInt addresses per frame is most of the cost of
 * decoding a record. Cleared when full (kernel text is finite, but modules
 * come and go).
 */
export class FrameCache {
  readonly #frames = new Map<bigint, string>();
  constructor(readonly ksyms: KernelSymbols, readonly max = 16384) {}

  get(addr: bigint): string {
    let f = this.#frames.get(addr);
    if (f === undefined) {
      if (this.#frames.size >= this.max) this.#frames.clear();
      f = this.ksyms.formatFrame(addr);
      this.#frames.set(addr, f);
    }
    return f;
  }
}

export interface DecodeContext {
  names: DropNames;
  ksyms: KernelSymbols;
  /** Optional cache of formatted frames (the tracer keeps one). */
  frames?: FrameCache;
}

/**
 * Decodes one struct drop_event at `offset` into the event's tracer_data:
 * the seed's fields (type, comm, pid, saddr, daddr, sport, dport,
 * src_hostname, dest_hostname, max_ack_backlog, seq, ack_seq, pkt_len,
 * sk_state, stack, netdev_queue_mapping, netdev_linkstatus, netdev_name,
 * netdev_ifindex, net_cookie) plus reason, protocol and location.
 * Values the drop did not carry are "<nil>" (strings) or 0.
 */
export function dropTracerData(
  view: DataView,
  offset: number,
  length: number,
  ctx: DecodeContext,
): Record<string, unknown> {
  const r = RecordReader.of(DROP_RECORD, view, offset, length);
  const f = DROP_RECORD.fields;
  const flags = r.u8(f.flags);
  const l3 = r.u16(f.l3proto);
  const l4 = r.u8(f.l4proto);
  const tcp = l4 === 6 && (flags & F_L4) !== 0;
  const haveTuple = (flags & (F_L3 | F_SK_TUPLE)) !== 0;
  const addr = (o: number) =>
    !haveTuple ? NIL : l3 === ETH_P_IPV6 ? formatIPv6(r.bytes(o, 16)) : formatIPv4(r.bytes(o, 4));
  const reason = ctx.names.reason(r.u32(f.reason));
  const hasSk = (flags & F_SK) !== 0;
  const skState = hasSk ? r.u8(f.sk_state) : 0;
  const maxAckBacklog = r.u32(f.max_ack_backlog);
  const cookie = r.u64(f.net_cookie);
  const location = r.u64(f.location);
  return {
    type: dropType(
      l4,
      r.u8(f.tcp_flags),
      reason,
      skState,
      r.u32(f.ack_backlog),
      maxAckBacklog,
      r.u32(f.syn_qlen),
    ),
    reason,
    protocol: haveTuple && l4 !== 0 ? protocolName(l4) : NIL,
    comm: r.cString(f.comm, TASK_COMM_LEN),
    pid: r.u32(f.pid),
    saddr: addr(f.saddr),
    daddr: addr(f.daddr),
    sport: r.u16(f.sport),
    dport: r.u16(f.dport),
    // Reverse DNS would block the event path; not done.
    src_hostname: NIL,
    dest_hostname: NIL,
    max_ack_backlog: maxAckBacklog,
    seq: tcp ? r.u32(f.seq) : 0,
    ack_seq: tcp ? r.u32(f.ack_seq) : 0,
    pkt_len: r.u32(f.pkt_len),
    sk_state: hasSk ? ctx.names.tcpState(skState) : NIL,
    location: ctx.frames ? ctx.frames.get(location) : ctx.ksyms.formatFrame(location),
    stack: formatDropStack(
      r.stack(f.stack, STACK_DEPTH, r.i32(f.stack_bytes)),
      location,
      ctx.ksyms,
      ctx.frames,
    ),
    netdev_queue_mapping: r.u16(f.queue_mapping),
    netdev_linkstatus: linkStatus(flags),
    netdev_name: flags & F_DEV ? r.cString(f.ifname, IFNAMSIZ) : NIL,
    netdev_ifindex: r.u32(f.ifindex),
    // Kernels before 5.14 have no netns cookie: the netns inode identifies the namespace there.
    net_cookie: cookie !== 0n ? Number(cookie) : r.u32(f.netns_ino),
  };
}

/**
 * What ties a drop to a container (the sink looks the cgroup id up first, then
 * the netns): the cgroup2 id of the socket's owner when the skb had a full
 * socket, and the inode of the network namespace the packet was in (its
 * device's, else its socket's). 0 when the drop did not carry one.
 */
export function dropContainerKeys(
  view: DataView,
  offset: number,
  length: number,
): { cgroupId: bigint; netnsInode: number } {
  const r = RecordReader.of(DROP_RECORD, view, offset, length);
  return { cgroupId: r.u64(DROP_RECORD.fields.cgroup_id), netnsInode: r.u32(DROP_RECORD.fields.netns_ino) };
}

// ---- filters -----------------------------------------------------------------

/**
 * Drops not worth an event: in neigh_invalidate() (ExcludedNeighInvalidate:
 * packets queued on a neighbour that never resolved; filtered in BPF by
 * address range, here again when kallsyms was unreadable at load), and
 * bnxt's transmit-side drops (a known driver noise source, as the seed says).
 */
export function excludedLocation(location: string, excludeNeighInvalidate: boolean): boolean {
  if (excludeNeighInvalidate && location.startsWith("neigh_invalidate+")) return true;
  return location.endsWith(" [bnxt_en]") && /^bnxt_(start_xmit|tx_)/.test(location);
}

// ---- the tracer ------------------------------------------------------------

/** Program sets in bpf/dropwatch.bpf.c, best first. */
export const DROPWATCH_IMPLEMENTATIONS = {
  btf_rxsk: ["dropwatch_btf_rxsk"],
  btf: ["dropwatch_btf"],
  tracepoint: ["dropwatch_tp"],
} as const;

export type DropwatchImplementation = keyof typeof DROPWATCH_IMPLEMENTATIONS;

export interface DropwatchOptions {
  /** Reported drops per second per CPU (token bucket in BPF); 0: no limit. */
  eventsPerSec?: number;
  /** Bucket depth: drops reported at once after a quiet period. */
  burst?: number;
  /** Try this implementation first (tests); default: the best the kernel accepts. */
  implementation?: DropwatchImplementation;
}

/**
 * Defaults: 100 events/s per CPU, bursts of 20 per CPU: a drop storm on every
 * CPU of a 128-CPU host at once still fits the 4 MiB ring (10485 records).
 */
export const DEFAULT_EVENTS_PER_SEC = 100;
export const DEFAULT_BURST = 20;

const MIN_RING = 256 << 10;
const MAX_RING = 4 << 20;

/**
 * Ring buffer bytes for the rate limit: every CPU's burst plus 2 s at the full
 * rate (the agent polls every 10 ms; 2 s covers a stalled event loop), as a
 * power of two between 256 KiB and 4 MiB; 4 MiB without a limit (~10k
 * records). The mapped ring is resident twice over once written through, so
 * its size is RSS: 256 KiB at the default 100/s instead of 8 MB.
 */
export function dropwatchRingBytes(eventsPerSec: number, burst: number, cpus: number): number {
  if (eventsPerSec <= 0) return MAX_RING;
  const need = cpus * (burst + 2 * eventsPerSec) * DROP_RECORD.size;
  let size = MIN_RING;
  while (size < need && size < MAX_RING) size *= 2;
  return size;
}

const FORMAT_PATHS = [
  "/sys/kernel/tracing/events/skb/kfree_skb/format",
  "/sys/kernel/debug/tracing/events/skb/kfree_skb/format",
];

let sharedNames: { key: string; names: DropNames } | undefined;

function dropNames(runtime: BpfRuntime): DropNames {
  const paths = [runtime.kernelBtf, `${runtime.dir}/btf/${Deno.osRelease()}.btf`];
  const key = paths.join("\0");
  if (sharedNames?.key !== key) sharedNames = { key, names: DropNames.load(paths, FORMAT_PATHS) };
  return sharedNames.names;
}

export interface DropwatchContext {
  bpf: BpfRuntime;
  log: Logger;
  events?: EventSink;
  excludeNeighInvalidate: boolean;
}

/** The "dropwatch" tracer; `names` are the kernel's drop reason names (read once, on first use). */
export class DropwatchTracer extends BpfTracer {
  #decode?: DecodeContext;
  /** Kernel text whose drops the BPF program skips: neigh_invalidate when excluded, else [0, 0). */
  excludedRange: [bigint, bigint] = [0n, 0n];

  constructor(readonly ctx: DropwatchContext, opts: DropwatchOptions = {}) {
    let rodata: Record<string, RodataValue> | undefined;
    // Resolved on first load, not at construction: kallsyms and BTF are read only when the tracer runs.
    const constants = (): Record<string, RodataValue> => {
      if (rodata) return rodata;
      this.#decodeContext();
      let [start, end] = [0n, 0n];
      if (ctx.excludeNeighInvalidate) {
        try {
          const r = kernelSymbols().range("neigh_invalidate");
          if (r) [start, end] = r;
        } catch { /* filtered on the symbolized location instead */ }
        if (end === 0n) ctx.log.info("dropwatch: neigh_invalidate not in kallsyms; filtering in user space");
      }
      const rate = opts.eventsPerSec ?? DEFAULT_EVENTS_PER_SEC;
      const cost = rate > 0 ? BigInt(Math.max(1, Math.floor(1e9 / rate))) : 0n;
      this.excludedRange = [start, end];
      rodata = {
        token_cost_ns: cost,
        token_cap_ns: cost * BigInt(Math.max(1, Math.floor(opts.burst ?? DEFAULT_BURST))),
        excl_start: start,
        excl_end: end,
      };
      return rodata;
    };
    const onRecord: RecordHandler = (view, offset, length) => {
      const data = dropTracerData(view, offset, length, this.#decodeContext());
      if (excludedLocation(data.location as string, ctx.excludeNeighInvalidate)) return;
      const { cgroupId, netnsInode } = dropContainerKeys(view, offset, length);
      ctx.events?.({
        tracerName: "dropwatch",
        data,
        cgroupId: cgroupId || undefined,
        cgroupKind: "cgroup2", // the socket owner's cgroup2 id
        netnsInode: netnsInode || undefined,
      });
    };
    super({
      name: "dropwatch",
      object: "dropwatch.o",
      get rodata() {
        return constants();
      },
      // Every set is listed so that only the chosen one loads; a forced one goes first.
      alternatives: Object.entries(DROPWATCH_IMPLEMENTATIONS)
        .sort(([a], [b]) => Number(b === opts.implementation) - Number(a === opts.implementation))
        .map(([, set]) => set),
      buffers: [{ map: "dropwatch_events", onRecord }],
      mapSizes: {
        dropwatch_events: dropwatchRingBytes(
          opts.eventsPerSec ?? DEFAULT_EVENTS_PER_SEC,
          opts.burst ?? DEFAULT_BURST,
          numPossibleCpus(),
        ),
      },
    }, ctx.bpf);
  }

  /** Drop reason and TCP state names of this kernel. */
  get names(): DropNames {
    return this.#decodeContext().names;
  }

  #decodeContext(): DecodeContext {
    if (!this.#decode) {
      const ksyms = kernelSymbols();
      this.#decode = { names: dropNames(this.ctx.bpf), ksyms, frames: new FrameCache(ksyms) };
      this.ctx.log.debug("dropwatch: drop reason names", { source: this.#decode.names.source });
    }
    return this.#decode;
  }
}

export function dropwatchTracer(ctx: DropwatchContext, opts: DropwatchOptions = {}): DropwatchTracer {
  return new DropwatchTracer(ctx, opts);
}
