// Dumps read through an rtnetlink socket and parsed: what collectors and
// tracers ask the kernel for (links, link stats, link states, qdiscs, DCB PFC).

import { RtNetlink } from "../../ffi/netlink.ts";
import type { NetDevCounters } from "./netdev.ts";
import { dcbIeeeGetRequest, type IeeePfc, parseDcbIeeeReply } from "./dcbnl.ts";
import {
  linkDumpRequest,
  type LinkInfo,
  type LinkState,
  parseLinkDump,
  parseLinkStateDump,
  parseQdiscDump,
  qdiscDumpRequest,
  type QdiscStats,
} from "./rtnetlink.ts";

/** Every link in the current net namespace, in kernel order. */
export function readLinks(nl?: RtNetlink): LinkInfo[] {
  return withSocket(nl, (s) => parseLinkDump(s.dump(linkDumpRequest())));
}

/** Every qdisc in the current net namespace. */
export function readQdiscs(nl?: RtNetlink): QdiscStats[] {
  return withSocket(nl, (s) => parseQdiscDump(s.dump(qdiscDumpRequest())));
}

/** Device name → counters from RTM_GETLINK IFLA_STATS64 (links without stats are left out). */
export function readLinkStats(nl?: RtNetlink): Map<string, NetDevCounters> {
  const out = new Map<string, NetDevCounters>();
  for (const link of readLinks(nl)) {
    if (link.stats) out.set(link.name, link.stats);
  }
  return out;
}

function withSocket<T>(nl: RtNetlink | undefined, fn: (s: RtNetlink) => T): T {
  if (nl) return fn(nl);
  const s = new RtNetlink();
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

/** Every link's state (flags, address, MTU, carrier) in the current net namespace. */
export function readLinkStates(nl?: RtNetlink): LinkState[] {
  return withSocket(nl, (s) => parseLinkStateDump(s.dump(linkDumpRequest())));
}

/**
 * The IEEE PFC counters of `ifname` (RTM_GETDCB DCB_CMD_IEEE_GET); undefined
 * when the device's DCB support has no PFC. Throws ErrnoError EOPNOTSUPP for a
 * device without DCB support, ENODEV for one that does not exist.
 */
export function readDcbPfc(ifname: string, nl?: RtNetlink): IeeePfc | undefined {
  return withSocket(nl, (s) => parseDcbIeeeReply(s.request(dcbIeeeGetRequest(ifname))));
}
