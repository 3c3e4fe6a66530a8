// rtnetlink wire format: request builders and reply parsers, pure functions
// over bytes (socket I/O lives in ffi/netlink.ts). Layouts are the kernel UAPI
// ones (linux/netlink.h, linux/rtnetlink.h, linux/pkt_sched.h, linux/gen_stats.h,
// linux/if_link.h) in host byte order, which is little endian on our targets.

import { cString } from "../../ffi/cstring.ts";
import type { NetDevCounters } from "./netdev.ts";
import {
  NetlinkParseError,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  parseErrorMessage,
  parseMessages,
} from "../../ffi/nlmsg.ts";

// The netlink header layer lives with the socket code; rtnetlink users import it from here.
export {
  NetlinkParseError,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  type NlMessage,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  parseErrorMessage,
  parseMessages,
} from "../../ffi/nlmsg.ts";

// linux/rtnetlink.h
export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
export const RTM_NEWQDISC = 36;
export const RTM_GETQDISC = 38;
const TCMSG_LEN = 20;
const IFINFOMSG_LEN = 16;
const RTA_HDRLEN = 4;
const NLA_TYPE_MASK = 0x3fff; // strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

// linux/rtnetlink.h TCA_*
const TCA_KIND = 1;
const TCA_STATS = 3;
const TCA_STATS2 = 7;
// linux/gen_stats.h TCA_STATS_*
const TCA_STATS_BASIC = 1;
const TCA_STATS_QUEUE = 3;
const TCA_STATS_PKT64 = 8;
// linux/if_link.h IFLA_*
const IFLA_IFNAME = 3;
const IFLA_STATS64 = 23;

const AF_PACKET = 17;

export interface QdiscStats {
  ifindex: number;
  handle: number;
  parent: number;
  kind: string;
  bytes: number;
  packets: number;
  drops: number;
  requeues: number;
  overlimits: number;
  qlen: number;
  backlog: number;
}

export interface LinkInfo {
  index: number;
  name: string;
  /** Absent when the kernel sent no IFLA_STATS64. */
  stats?: NetDevCounters;
}

const align4 = (n: number) => (n + 3) & ~3;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(dv: DataView, off: number): number {
  return Number(dv.getBigUint64(off, true));
}

// ---------------------------------------------------------------- requests

function request(type: number, body: Uint8Array, seq: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(NLMSG_HDRLEN + body.byteLength);
  const dv = view(out);
  dv.setUint32(0, out.byteLength, true);
  dv.setUint16(4, type, true);
  dv.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true);
  dv.setUint32(8, seq >>> 0, true);
  dv.setUint32(12, 0, true); // pid 0: the kernel fills in our port id
  out.set(body, NLMSG_HDRLEN);
  return out;
}

/** RTM_GETQDISC dump of every qdisc in the socket's net namespace (tcmsg all zero). */
export function qdiscDumpRequest(seq = 1): Uint8Array<ArrayBuffer> {
  return request(RTM_GETQDISC, new Uint8Array(TCMSG_LEN), seq);
}

/** RTM_GETLINK dump of every link; AF_PACKET family as iproute2 sends it. */
export function linkDumpRequest(seq = 1): Uint8Array<ArrayBuffer> {
  const body = new Uint8Array(IFINFOMSG_LEN);
  body[0] = AF_PACKET;
  return request(RTM_GETLINK, body, seq);
}

// ---------------------------------------------------------------- messages

/** Attribute type → payload, for a run of rtattr/nlattr starting at `off`. Last one wins on repeats. */
export function parseAttributes(buf: Uint8Array, off = 0, what = "attribute"): Map<number, Uint8Array> {
  const dv = view(buf);
  const out = new Map<number, Uint8Array>();
  while (off < buf.byteLength) {
    if (buf.byteLength - off < RTA_HDRLEN) {
      throw new NetlinkParseError(`${what}: truncated header at offset ${off}`);
    }
    const len = dv.getUint16(off, true);
    const type = dv.getUint16(off + 2, true) & NLA_TYPE_MASK;
    if (len < RTA_HDRLEN || off + len > buf.byteLength) {
      throw new NetlinkParseError(
        `${what} ${type} at offset ${off} claims ${len} bytes, ${buf.byteLength - off} available`,
      );
    }
    out.set(type, buf.subarray(off + RTA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

function need(b: Uint8Array | undefined, size: number, what: string): DataView | undefined {
  if (b === undefined) return undefined;
  if (b.byteLength < size) throw new NetlinkParseError(`${what}: ${b.byteLength} bytes, need ${size}`);
  return view(b);
}

// ---------------------------------------------------------------- qdiscs

/** One RTM_NEWQDISC payload (tcmsg + attributes). */
export function parseQdisc(payload: Uint8Array): QdiscStats {
  if (payload.byteLength < TCMSG_LEN) {
    throw new NetlinkParseError(`RTM_NEWQDISC: ${payload.byteLength} bytes, tcmsg needs ${TCMSG_LEN}`);
  }
  const tc = view(payload);
  const attrs = parseAttributes(payload, TCMSG_LEN, "RTM_NEWQDISC attribute");
  const kind = attrs.get(TCA_KIND);
  if (kind === undefined) throw new NetlinkParseError("RTM_NEWQDISC without TCA_KIND");
  const q: QdiscStats = {
    ifindex: tc.getInt32(4, true),
    handle: tc.getUint32(8, true),
    parent: tc.getUint32(12, true),
    kind: cString(kind),
    bytes: 0,
    packets: 0,
    drops: 0,
    requeues: 0,
    overlimits: 0,
    qlen: 0,
    backlog: 0,
  };
  const stats2 = attrs.get(TCA_STATS2);
  if (stats2 !== undefined) {
    const nested = parseAttributes(stats2, 0, "TCA_STATS2 attribute");
    // struct gnet_stats_basic { __u64 bytes; __u32 packets; }
    const basic = need(nested.get(TCA_STATS_BASIC), 12, "TCA_STATS_BASIC");
    if (basic) {
      q.bytes = u64(basic, 0);
      q.packets = basic.getUint32(8, true);
    }
    // The kernel adds a u64 packet count when it no longer fits in 32 bits.
    const pkt64 = need(nested.get(TCA_STATS_PKT64), 8, "TCA_STATS_PKT64");
    if (pkt64) q.packets = u64(pkt64, 0);
    // struct gnet_stats_queue { qlen, backlog, drops, requeues, overlimits } (u32)
    const queue = need(nested.get(TCA_STATS_QUEUE), 20, "TCA_STATS_QUEUE");
    if (queue) {
      q.qlen = queue.getUint32(0, true);
      q.backlog = queue.getUint32(4, true);
      q.drops = queue.getUint32(8, true);
      q.requeues = queue.getUint32(12, true);
      q.overlimits = queue.getUint32(16, true);
    }
    return q;
  }
  // Legacy struct tc_stats { u64 bytes; u32 packets, drops, overlimits, bps, pps, qlen, backlog; }
  const legacy = need(attrs.get(TCA_STATS), 36, "TCA_STATS");
  if (legacy) {
    q.bytes = u64(legacy, 0);
    q.packets = legacy.getUint32(8, true);
    q.drops = legacy.getUint32(12, true);
    q.overlimits = legacy.getUint32(16, true);
    q.qlen = legacy.getUint32(28, true);
    q.backlog = legacy.getUint32(32, true);
  }
  return q;
}

// ---------------------------------------------------------------- links

// struct rtnl_link_stats64 field indexes (u64 each); 23 fields exist on every
// kernel we target, newer ones append more. Some /proc/net/dev columns are sums
// of several fields (net/core/net-procfs.c dev_seq_printf_stats); summing the
// same ones keeps netlink mode equal to procfs mode.
const STATS64_MIN_FIELDS = 23;
const STATS64_INDEX: Record<keyof NetDevCounters, readonly number[]> = {
  receive_bytes: [2], // rx_bytes
  receive_packets: [0], // rx_packets
  receive_errors: [4], // rx_errors
  receive_dropped: [6, 15], // rx_dropped + rx_missed_errors
  receive_fifo: [14], // rx_fifo_errors
  receive_frame: [10, 11, 12, 13], // rx_length + rx_over + rx_crc + rx_frame errors
  receive_compressed: [21], // rx_compressed
  receive_multicast: [8], // multicast
  transmit_bytes: [3], // tx_bytes
  transmit_packets: [1], // tx_packets
  transmit_errors: [5], // tx_errors
  transmit_dropped: [7], // tx_dropped
  transmit_fifo: [18], // tx_fifo_errors
  transmit_colls: [9], // collisions
  transmit_carrier: [17, 16, 20, 19], // tx_carrier + tx_aborted + tx_window + tx_heartbeat errors
  transmit_compressed: [22], // tx_compressed
};

/** Maps a struct rtnl_link_stats64 onto the /proc/net/dev columns. */
export function parseLinkStats64(b: Uint8Array): NetDevCounters {
  const dv = need(b, STATS64_MIN_FIELDS * 8, "IFLA_STATS64")!;
  const out = {} as NetDevCounters;
  for (const [field, idx] of Object.entries(STATS64_INDEX) as [keyof NetDevCounters, readonly number[]][]) {
    let sum = 0;
    for (const i of idx) sum += u64(dv, i * 8);
    out[field] = sum;
  }
  return out;
}

/** One RTM_NEWLINK payload (ifinfomsg + attributes). */
export function parseLink(payload: Uint8Array): LinkInfo {
  if (payload.byteLength < IFINFOMSG_LEN) {
    throw new NetlinkParseError(`RTM_NEWLINK: ${payload.byteLength} bytes, ifinfomsg needs ${IFINFOMSG_LEN}`);
  }
  const index = view(payload).getInt32(4, true);
  const attrs = parseAttributes(payload, IFINFOMSG_LEN, "RTM_NEWLINK attribute");
  const name = attrs.get(IFLA_IFNAME);
  if (name === undefined) throw new NetlinkParseError(`RTM_NEWLINK for ifindex ${index} without IFLA_IFNAME`);
  const link: LinkInfo = { index, name: cString(name) };
  const stats = attrs.get(IFLA_STATS64);
  if (stats !== undefined) link.stats = parseLinkStats64(stats);
  return link;
}

// ---------------------------------------------------------------- dumps

/** Messages of the given type across a dump's datagrams, stopping at NLMSG_DONE. */
function dumpPayloads(chunks: readonly Uint8Array[], type: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const chunk of chunks) {
    for (const m of parseMessages(chunk)) {
      if (m.type === NLMSG_DONE) return out;
      if (m.type === NLMSG_ERROR) {
        const e = parseErrorMessage(m.payload);
        if (e !== 0) throw new NetlinkParseError(`dump answered with error ${e}`);
        continue;
      }
      if (m.type === type) out.push(m.payload);
    }
  }
  return out;
}

export function parseQdiscDump(chunks: readonly Uint8Array[]): QdiscStats[] {
  return dumpPayloads(chunks, RTM_NEWQDISC).map(parseQdisc);
}

export function parseLinkDump(chunks: readonly Uint8Array[]): LinkInfo[] {
  return dumpPayloads(chunks, RTM_NEWLINK).map(parseLink);
}

// ---------------------------------------------------------------- link state (netdev_events)

// linux/rtnetlink.h
export const RTM_DELLINK = 17;
/** sockaddr_nl.nl_groups bit of RTNLGRP_LINK: RTM_NEWLINK / RTM_DELLINK notifications. */
export const RTMGRP_LINK = 1;
// linux/if.h net_device_flags
export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;
// linux/if_link.h
const IFLA_ADDRESS = 1;
const IFLA_MTU = 4;
const IFLA_OPERSTATE = 16;
const IFLA_CARRIER = 33;

/** What RTM_NEWLINK / RTM_DELLINK say about a link's state. */
export interface LinkState {
  index: number;
  name: string;
  /** ifi_flags (IFF_*). IFF_LOWER_UP = the device is up and has carrier. */
  flags: number;
  /** Hardware address as "aa:bb:..."; "" when the link has none. */
  mac: string;
  mtu?: number;
  /** IF_OPER_* (RFC 2863), when sent. */
  operstate?: number;
  /** IFLA_CARRIER (netif_carrier_ok, whatever the admin state), when sent. */
  carrier?: boolean;
}

/** Lower-case hex bytes joined by ':' (the kernel's %pM for 6-byte addresses). */
export function formatHwAddr(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** One RTM_NEWLINK / RTM_DELLINK payload (ifinfomsg + attributes). */
export function parseLinkState(payload: Uint8Array): LinkState {
  if (payload.byteLength < IFINFOMSG_LEN) {
    throw new NetlinkParseError(`RTM_NEWLINK: ${payload.byteLength} bytes, ifinfomsg needs ${IFINFOMSG_LEN}`);
  }
  // struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; }
  const dv = view(payload);
  const index = dv.getInt32(4, true);
  const attrs = parseAttributes(payload, IFINFOMSG_LEN, "RTM_NEWLINK attribute");
  const name = attrs.get(IFLA_IFNAME);
  if (name === undefined) throw new NetlinkParseError(`RTM_NEWLINK for ifindex ${index} without IFLA_IFNAME`);
  const addr = attrs.get(IFLA_ADDRESS);
  const link: LinkState = {
    index,
    name: cString(name),
    flags: dv.getUint32(8, true),
    mac: addr ? formatHwAddr(addr) : "",
  };
  const mtu = need(attrs.get(IFLA_MTU), 4, "IFLA_MTU");
  if (mtu) link.mtu = mtu.getUint32(0, true);
  const oper = attrs.get(IFLA_OPERSTATE);
  if (oper !== undefined && oper.byteLength >= 1) link.operstate = oper[0];
  const carrier = attrs.get(IFLA_CARRIER);
  if (carrier !== undefined && carrier.byteLength >= 1) link.carrier = carrier[0] !== 0;
  return link;
}

export function parseLinkStateDump(chunks: readonly Uint8Array[]): LinkState[] {
  return dumpPayloads(chunks, RTM_NEWLINK).map(parseLinkState);
}
