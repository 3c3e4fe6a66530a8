// Parser tests on real dump replies captured from a 6.18 kernel (see
// fixtures/netlink/README.md); iproute2's JSON from the same instant is the oracle.

import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import {
  linkDumpRequest,
  NetlinkParseError,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  parseLinkDump,
  parseMessages,
  parseQdisc,
  parseQdiscDump,
  qdiscDumpRequest,
  RTM_GETLINK,
  RTM_GETQDISC,
  RTM_NEWQDISC,
} from "./rtnetlink.ts";
import type { NetDevCounters } from "./netdev.ts";

const DIR = new URL("../../fixtures/netlink/", import.meta.url);
const qdiscBin = Deno.readFileSync(new URL("qdisc_dump.bin", DIR));
const linkBin = Deno.readFileSync(new URL("link_dump.bin", DIR));

interface TcQdisc {
  kind: string;
  handle: string;
  dev: string;
  root?: boolean;
  parent?: string;
  bytes: number;
  packets: number;
  drops: number;
  overlimits: number;
  requeues: number;
  backlog: number;
  qlen: number;
}

interface IpLink {
  ifindex: number;
  ifname: string;
  stats64: {
    rx: Record<string, number>;
    tx: Record<string, number>;
  };
}

const tcJson: TcQdisc[] = JSON.parse(Deno.readTextFileSync(new URL("tc_qdisc.json", DIR)));
const ipJson: IpLink[] = JSON.parse(Deno.readTextFileSync(new URL("ip_link.json", DIR)));

/** tc's "maj:min" (hex) → the u32 handle; "1:" means minor 0. */
function tcHandle(s: string): number {
  const [maj, min] = s.split(":");
  return ((parseInt(maj, 16) << 16) | parseInt(min || "0", 16)) >>> 0;
}

const TC_H_ROOT = 0xffffffff;

Deno.test("request builders: nlmsghdr + zeroed tcmsg / ifinfomsg(AF_PACKET)", () => {
  const q = qdiscDumpRequest(7);
  const dq = new DataView(q.buffer);
  assertEquals(q.byteLength, 16 + 20);
  assertEquals(dq.getUint32(0, true), 36);
  assertEquals(dq.getUint16(4, true), RTM_GETQDISC);
  assertEquals(dq.getUint16(6, true), NLM_F_REQUEST | NLM_F_DUMP);
  assertEquals(dq.getUint32(8, true), 7);
  assert(q.subarray(16).every((b) => b === 0));

  const l = linkDumpRequest(9);
  const dl = new DataView(l.buffer);
  assertEquals(l.byteLength, 16 + 16);
  assertEquals(dl.getUint16(4, true), RTM_GETLINK);
  assertEquals(dl.getUint32(8, true), 9);
  assertEquals(l[16], 17);
});

Deno.test("captured dumps end with NLMSG_DONE", () => {
  for (const bin of [qdiscBin, linkBin]) {
    const msgs = parseMessages(bin);
    assertEquals(msgs[msgs.length - 1].type, NLMSG_DONE);
  }
});

Deno.test("RTM_GETLINK dump matches `ip -s -s -j link show`", () => {
  const links = parseLinkDump([linkBin]);
  assertEquals(links.map((l) => [l.index, l.name]), ipJson.map((l) => [l.ifindex, l.ifname]));
  for (const l of links) {
    const ip = ipJson.find((j) => j.ifindex === l.index)!;
    const { rx, tx } = ip.stats64;
    // ip omits the compressed counters when they are zero.
    const expected: NetDevCounters = {
      receive_bytes: rx.bytes,
      receive_packets: rx.packets,
      receive_errors: rx.errors,
      receive_dropped: rx.dropped,
      receive_fifo: rx.fifo_errors,
      receive_frame: rx.frame_errors,
      receive_compressed: rx.compressed ?? 0,
      receive_multicast: rx.multicast,
      transmit_bytes: tx.bytes,
      transmit_packets: tx.packets,
      transmit_errors: tx.errors,
      transmit_dropped: tx.dropped,
      transmit_fifo: tx.fifo_errors,
      transmit_colls: tx.collisions,
      transmit_carrier: tx.carrier_errors,
      transmit_compressed: tx.compressed ?? 0,
    };
    assertEquals(l.stats, expected, `stats of ${l.name}`);
  }
  // Not a dump of zeros: the veth devices carried traffic.
  const nc0 = links.find((l) => l.name === "nc0")!;
  assertEquals([nc0.stats!.transmit_packets, nc0.stats!.transmit_bytes], [41, 1922]);
  assertEquals([nc0.stats!.receive_packets, nc0.stats!.receive_bytes], [7, 492]);
});

Deno.test("RTM_GETQDISC dump matches `tc -s -j qdisc show`", () => {
  const names = new Map(parseLinkDump([linkBin]).map((l) => [l.index, l.name]));
  const qdiscs = parseQdiscDump([qdiscBin]);
  assertEquals(qdiscs.length, tcJson.length);
  for (const tc of tcJson) {
    const handle = tcHandle(tc.handle);
    const parent = tc.root ? TC_H_ROOT : tcHandle(tc.parent!);
    const found = qdiscs.filter((q) =>
      names.get(q.ifindex) === tc.dev && q.handle === handle && q.parent === parent
    );
    assertEquals(found.length, 1, `${tc.dev} ${tc.kind} ${tc.handle}`);
    const q = found[0];
    assertEquals(
      [q.kind, q.bytes, q.packets, q.drops, q.overlimits, q.requeues, q.backlog, q.qlen],
      [tc.kind, tc.bytes, tc.packets, tc.drops, tc.overlimits, tc.requeues, tc.backlog, tc.qlen],
      `${tc.dev} ${tc.kind} ${tc.handle}`,
    );
  }
  // The tbf on nc2 was captured mid-burst: every queue counter is non-zero.
  const tbf = qdiscs.find((q) => q.kind === "tbf")!;
  assertEquals(
    [tbf.bytes, tbf.packets, tbf.drops, tbf.overlimits, tbf.backlog, tbf.qlen],
    [1926, 3, 33, 41, 4710, 5],
  );
});

/** Offset (within `buf`) of each top-level attribute of the first RTM_NEWQDISC of `kind`. */
function qdiscMessage(kind: string): { msg: Uint8Array; attrOffsets: Map<number, number> } {
  for (const m of parseMessages(qdiscBin)) {
    if (m.type !== RTM_NEWQDISC || parseQdisc(m.payload).kind !== kind) continue;
    const msg = m.payload.slice();
    const dv = new DataView(msg.buffer);
    const attrOffsets = new Map<number, number>();
    for (let off = 20; off < msg.byteLength; off += (dv.getUint16(off, true) + 3) & ~3) {
      attrOffsets.set(dv.getUint16(off + 2, true) & 0x3fff, off);
    }
    return { msg, attrOffsets };
  }
  throw new Error(`no ${kind} qdisc in fixture`);
}

Deno.test("legacy TCA_STATS is used when TCA_STATS2 is absent", () => {
  const { msg, attrOffsets } = qdiscMessage("tbf");
  // Retype TCA_STATS2 (7) to an unknown attribute, leaving only the compat struct tc_stats.
  new DataView(msg.buffer).setUint16(attrOffsets.get(7)! + 2, 0x3ff, true);
  const q = parseQdisc(msg);
  assertEquals(
    [q.bytes, q.packets, q.drops, q.overlimits, q.requeues, q.backlog, q.qlen],
    [1926, 3, 33, 41, 0, 4710, 5],
  );
});

Deno.test("truncated buffers throw NetlinkParseError", () => {
  const first = new DataView(qdiscBin.buffer).getUint32(0, true);
  // Cut inside the first header, inside the first message, and inside the last (DONE) message.
  for (const cut of [10, first - 4, qdiscBin.byteLength - 2]) {
    assertThrows(() => parseQdiscDump([qdiscBin.subarray(0, cut)]), NetlinkParseError);
  }
  for (const cut of [3, linkBin.byteLength - 2, 100]) {
    assertThrows(() => parseLinkDump([linkBin.subarray(0, cut)]), NetlinkParseError);
  }
  // A message shorter than its fixed tcmsg.
  assertThrows(() => parseQdisc(new Uint8Array(12)), NetlinkParseError);
});

Deno.test("garbled attributes throw NetlinkParseError", () => {
  const { msg, attrOffsets } = qdiscMessage("tbf");
  const off = attrOffsets.get(1)!; // TCA_KIND
  const bad = msg.slice();
  new DataView(bad.buffer).setUint16(off, 0xfff0, true); // rta_len past the end
  assertThrows(() => parseQdisc(bad), /claims 65520 bytes/);
  const tiny = msg.slice();
  new DataView(tiny.buffer).setUint16(off, 2, true); // rta_len below the header size
  assertThrows(() => parseQdisc(tiny), NetlinkParseError);
  // A TCA_STATS_BASIC too short for struct gnet_stats_basic: shrink it to 4
  // payload bytes and cover the rest with a TCA_STATS_PAD so the walk stays valid.
  const stats2 = attrOffsets.get(7)!;
  const short = msg.slice();
  const dv = new DataView(short.buffer);
  const end = stats2 + dv.getUint16(stats2, true);
  let patched = false;
  for (let o = stats2 + 4; o < end; o += (dv.getUint16(o, true) + 3) & ~3) {
    if ((dv.getUint16(o + 2, true) & 0x3fff) !== 1) continue;
    const len = dv.getUint16(o, true);
    dv.setUint16(o, 8, true);
    dv.setUint16(o + 8, len - 8, true);
    dv.setUint16(o + 10, 6, true);
    patched = true;
    break;
  }
  assert(patched);
  assertThrows(() => parseQdisc(short), /TCA_STATS_BASIC: 4 bytes, need 12/);
});

Deno.test("an NLMSG_ERROR reply inside a dump throws with its errno", () => {
  const err = new Uint8Array(16 + 4 + 16);
  const dv = new DataView(err.buffer);
  dv.setUint32(0, err.byteLength, true);
  dv.setUint16(4, 2, true);
  dv.setInt32(16, -95, true);
  assertThrows(() => parseQdiscDump([err]), /error 95/);
});
