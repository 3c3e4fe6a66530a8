// The dropwatch tracer: the record decoder, name resolution and
// classification on hand-built input, then real drops in the running kernel
// (root): closed ports on loopback (UDP over IPv4 and IPv6, a TCP SYN), an
// accept queue overflow, an nftables drop rule and an unresolved neighbour
// inside a test network namespace.

import { errno } from "../../../ffi/libc.ts";
import { silentLogger } from "../../log/logger.ts";
import { KernelSymbols, kernelSymbols } from "../../bpf/ksyms.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import { assert, assertEquals, assertMatch, assertThrows } from "../../../testing/assert.ts";
import type { EventInput } from "../../events/sink.ts";
import { Btf, BTF_KIND } from "../../../ffi/btf.ts";
import { setLibbpfLogger } from "../../../ffi/libbpf.ts";
import { ShortRecordError } from "../../bpf/record.ts";
import { formatIPv6 } from "../../host/inet.ts";
import {
  DROP_RECORD,
  dropContainerKeys,
  DropNames,
  dropTracerData,
  dropType,
  type DropwatchImplementation,
  type DropwatchOptions,
  dropwatchRingBytes,
  DropwatchTracer,
  dropwatchTracer,
  ETH_P_IP,
  ETH_P_IPV6,
  excludedLocation,
  F_ADMIN_UP,
  F_CARRIER,
  F_DEV,
  F_L3,
  F_L4,
  F_SK,
  F_SK_TUPLE,
  findBtfEnums,
  formatDropStack,
  FrameCache,
  linkStatus,
  parsePrintSymbolic,
} from "./tracer.ts";
import { exists } from "../../../testing/fs.ts";
import { testTracerContext } from "../../../testing/tracer.ts";

const OUT = new URL("../../../_output/bpf", import.meta.url).pathname;
const F = DROP_RECORD.fields;
const LEN = DROP_RECORD.size;

// ---- hand-built input --------------------------------------------------------

const KALLSYMS = [
  "ffffffff81000000 T _stext",
  "ffffffff81100000 T sk_skb_reason_drop",
  "ffffffff81100200 T tcp_v4_rcv",
  "ffffffff81101600 T ip_protocol_deliver_rcu",
  "ffffffff81101800 t neigh_invalidate",
  "ffffffff81101a00 T bpf_trace_run4",
  "ffffffff81101c00 T zz_end",
  "ffffffffc0001000 t bnxt_start_xmit\t[bnxt_en]",
  "ffffffffc0002000 t bnxt_rx_pkt\t[bnxt_en]",
].join("\n");
const KSYMS = KernelSymbols.fromText(KALLSYMS);

const NAMES = new DropNames(
  new Map([[0, "NOT_DROPPED_YET"], [2, "NOT_SPECIFIED"], [3, "NO_SOCKET"], [12, "NETFILTER_DROP"], [
    40,
    "TCP_LISTEN_OVERFLOW",
  ]]),
  new Map([[0, "CORE"], [2, "OPENVSWITCH"]]),
  new Map([[1, "ESTABLISHED"], [10, "LISTEN"], [12, "NEW_SYN_RECV"]]),
  "test",
);

interface RecordInit {
  location?: bigint;
  cookie?: bigint;
  reason?: number;
  pid?: number;
  comm?: string;
  saddr?: number[];
  daddr?: number[];
  sport?: number;
  dport?: number;
  l3?: number;
  l4?: number;
  tcpFlags?: number;
  seq?: number;
  ack?: number;
  pktLen?: number;
  ifindex?: number;
  netnsIno?: number;
  cgroupId?: bigint;
  queue?: number;
  skState?: number;
  flags?: number;
  ifname?: string;
  maxAckBacklog?: number;
  ackBacklog?: number;
  synQlen?: number;
  stack?: bigint[];
}

/** A struct drop_event at offset 8 of a buffer (the ring's record header is 8 bytes). */
function record(r: RecordInit): DataView {
  const v = new DataView(new ArrayBuffer(8 + LEN));
  const o = 8;
  const u8 = new Uint8Array(v.buffer);
  const enc = new TextEncoder();
  v.setBigUint64(o + F.ts, 123n, true);
  v.setBigUint64(o + F.location, r.location ?? 0n, true);
  v.setBigUint64(o + F.net_cookie, r.cookie ?? 0n, true);
  v.setUint32(o + F.reason, r.reason ?? 0, true);
  v.setUint32(o + F.pid, r.pid ?? 0, true);
  u8.set(enc.encode(r.comm ?? "").subarray(0, 15), o + F.comm);
  u8.set(r.saddr ?? [], o + F.saddr);
  u8.set(r.daddr ?? [], o + F.daddr);
  v.setUint16(o + F.sport, r.sport ?? 0, true);
  v.setUint16(o + F.dport, r.dport ?? 0, true);
  v.setUint16(o + F.l3proto, r.l3 ?? ETH_P_IP, true);
  v.setUint8(o + F.l4proto, r.l4 ?? 0);
  v.setUint8(o + F.tcp_flags, r.tcpFlags ?? 0);
  v.setUint32(o + F.seq, r.seq ?? 0, true);
  v.setUint32(o + F.ack_seq, r.ack ?? 0, true);
  v.setUint32(o + F.pkt_len, r.pktLen ?? 0, true);
  v.setUint32(o + F.ifindex, r.ifindex ?? 0, true);
  v.setUint32(o + F.netns_ino, r.netnsIno ?? 0, true);
  v.setUint16(o + F.queue_mapping, r.queue ?? 0, true);
  v.setUint8(o + F.sk_state, r.skState ?? 0);
  v.setUint8(o + F.flags, r.flags ?? 0);
  u8.set(enc.encode(r.ifname ?? "").subarray(0, 15), o + F.ifname);
  v.setUint32(o + F.max_ack_backlog, r.maxAckBacklog ?? 0, true);
  v.setUint32(o + F.ack_backlog, r.ackBacklog ?? 0, true);
  v.setUint32(o + F.syn_qlen, r.synQlen ?? 0, true);
  v.setBigUint64(o + F.cgroup_id, r.cgroupId ?? 0n, true);
  const stack = r.stack ?? [];
  v.setInt32(o + F.stack_bytes, stack.length * 8, true);
  stack.forEach((a, i) => v.setBigUint64(o + F.stack + i * 8, a, true));
  return v;
}

Deno.test("dropTracerData decodes an IPv4 TCP drop into the seed's fields plus reason, protocol, location", () => {
  const v = record({
    location: 0xffffffff81100299n, // tcp_v4_rcv+0x99
    cookie: 4097n,
    reason: 3,
    pid: 1687046,
    comm: "kubelet",
    saddr: [10, 79, 68, 62],
    daddr: [10, 134, 72, 4],
    sport: 8080,
    dport: 49000,
    l4: 6,
    tcpFlags: 0x18, // PSH|ACK
    seq: 1009085774,
    ack: 689410995,
    pktLen: 1500,
    ifindex: 2,
    netnsIno: 4026531840,
    queue: 3,
    skState: 1,
    flags: F_L3 | F_L4 | F_SK | F_DEV | F_ADMIN_UP | F_CARRIER,
    ifname: "eth0",
    maxAckBacklog: 128,
    stack: [0xffffffff81101a10n, 0x1000n, 0xffffffff81100010n, 0xffffffff81100299n, 0xffffffff81101610n],
  });
  assertEquals(dropTracerData(v, 8, LEN, { names: NAMES, ksyms: KSYMS }), {
    type: "common_drop",
    reason: "NO_SOCKET",
    protocol: "tcp",
    comm: "kubelet",
    pid: 1687046,
    saddr: "10.79.68.62",
    daddr: "10.134.72.4",
    sport: 8080,
    dport: 49000,
    src_hostname: "<nil>",
    dest_hostname: "<nil>",
    max_ack_backlog: 128,
    seq: 1009085774,
    ack_seq: 689410995,
    pkt_len: 1500,
    sk_state: "ESTABLISHED",
    location: "tcp_v4_rcv+0x99/0x1400",
    // BPF/tracepoint frames above the freeing function are dropped.
    stack: "sk_skb_reason_drop+0x10/0x200\ntcp_v4_rcv+0x99/0x1400\nip_protocol_deliver_rcu+0x10/0x200",
    netdev_queue_mapping: 3,
    netdev_linkstatus: ["linkStatusUp"],
    netdev_name: "eth0",
    netdev_ifindex: 2,
    net_cookie: 4097,
  });
  // The ring's length counts: a short record is rejected even inside a large buffer.
  assertThrows(() => dropTracerData(v, 8, LEN - 1, { names: NAMES, ksyms: KSYMS }), ShortRecordError);
  assertThrows(() => dropTracerData(v, 9, LEN, { names: NAMES, ksyms: KSYMS }), RangeError);
  // The tracer's frame cache changes nothing but the speed, also once full and cleared.
  const frames = new FrameCache(KSYMS, 2);
  for (let i = 0; i < 3; i++) {
    assertEquals(
      dropTracerData(v, 8, LEN, { names: NAMES, ksyms: KSYMS, frames }),
      dropTracerData(v, 8, LEN, { names: NAMES, ksyms: KSYMS }),
    );
  }
});

Deno.test("dropTracerData: IPv6 UDP without device or socket, unknown values are <nil>; no cookie → netns inode", () => {
  const saddr = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const daddr = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0, 0];
  const d = dropTracerData(
    record({
      l3: ETH_P_IPV6,
      l4: 17,
      saddr,
      daddr,
      sport: 5353,
      dport: 53,
      reason: (2 << 16) | 7,
      pktLen: 76,
      seq: 99, // garbage for UDP: not reported
      netnsIno: 4026532000,
      flags: F_L3 | F_L4,
    }),
    8,
    LEN,
    { names: NAMES, ksyms: KSYMS },
  );
  assertEquals(d.saddr, "2001:db8::1");
  assertEquals(d.daddr, "fe80::abcd:0");
  assertEquals(d.protocol, "udp");
  assertEquals(d.reason, "OPENVSWITCH:7");
  assertEquals([d.sport, d.dport, d.seq, d.ack_seq, d.pkt_len], [5353, 53, 0, 0, 76]);
  assertEquals([d.sk_state, d.netdev_name, d.netdev_linkstatus, d.max_ack_backlog], [
    "<nil>",
    "<nil>",
    [],
    0,
  ]);
  assertEquals(d.net_cookie, 4026532000);
  assertEquals([d.stack, d.location], ["", "0x0"]);

  // An IP skb whose header was unusable and had no owner: no tuple at all.
  const none = dropTracerData(record({ reason: 99, flags: F_DEV, ifname: "lo" }), 8, LEN, {
    names: NAMES,
    ksyms: KSYMS,
  });
  assertEquals([none.saddr, none.daddr, none.protocol, none.reason], [
    "<nil>",
    "<nil>",
    "<nil>",
    "reason 99",
  ]);
  assertEquals(none.netdev_linkstatus, ["linkStatusAdminDown", "linkStatusCarrierDown"]);
  // The tuple of the owning socket.
  const own = dropTracerData(
    record({
      saddr: [127, 0, 0, 1],
      daddr: [127, 0, 0, 2],
      sport: 1,
      dport: 2,
      l4: 6,
      flags: F_SK_TUPLE | F_SK,
    }),
    8,
    LEN,
    { names: NAMES, ksyms: KSYMS },
  );
  assertEquals([own.saddr, own.daddr, own.protocol, own.seq, own.type], [
    "127.0.0.1",
    "127.0.0.2",
    "tcp",
    0,
    "common_drop",
  ]);
});

Deno.test("dropContainerKeys: the socket owner's cgroup id and the netns inode; the record layout", () => {
  assertEquals([LEN, F.stack_bytes, F.cgroup_id, F.stack], [408, 140, 144, 152]);
  const v = record({ netnsIno: 4026532001, cgroupId: 0x1_0000_2345n, stack: [0xffffffff81100010n] });
  assertEquals(dropContainerKeys(v, 8, LEN), { cgroupId: 0x1_0000_2345n, netnsInode: 4026532001 });
  assertEquals(dropContainerKeys(record({}), 8, LEN), { cgroupId: 0n, netnsInode: 0 });
  // The cgroup id sits between stack_bytes and the stack: the stack still decodes.
  const d = dropTracerData(v, 8, LEN, { names: NAMES, ksyms: KSYMS });
  assertEquals(d.stack, "sk_skb_reason_drop+0x10/0x200");
  // bpf_get_stack's error (negative stack_bytes): no frames.
  v.setInt32(8 + F.stack_bytes, -14, true);
  assertEquals(dropTracerData(v, 8, LEN, { names: NAMES, ksyms: KSYMS }).stack, "");
});

Deno.test("dropType: SYN and final-ACK drops at a listener; everything else is common_drop", () => {
  const SYN = 0x02, ACK = 0x10, PSH = 0x08;
  // accept queue full (2 > 1) when a SYN arrives
  assertEquals(dropType(6, SYN, "NOT_SPECIFIED", 10, 2, 1, 0), "listen_overflow_handshake1");
  // SYN queue full
  assertEquals(dropType(6, SYN, "NOT_SPECIFIED", 10, 0, 128, 128), "syn_flood");
  assertEquals(dropType(6, SYN, "TCP_LISTEN_OVERFLOW", 0, 0, 0, 0), "syn_flood");
  assertEquals(dropType(6, SYN, "NO_SOCKET", 0, 0, 0, 0), "common_drop");
  assertEquals(dropType(6, SYN, "NOT_SPECIFIED", 10, 1, 128, 3), "common_drop");
  // the final ACK (or the first data) could not become a child socket
  assertEquals(dropType(6, ACK | PSH, "TCP_LISTEN_OVERFLOW", 10, 1, 0, 0), "listen_overflow_handshake3");
  assertEquals(dropType(6, ACK, "NOT_SPECIFIED", 10, 6, 5, 0), "listen_overflow_handshake3");
  assertEquals(dropType(6, ACK, "NOT_SPECIFIED", 10, 5, 5, 0), "common_drop");
  assertEquals(dropType(6, SYN | ACK, "TCP_LISTEN_OVERFLOW", 10, 6, 5, 0), "common_drop");
  assertEquals(dropType(17, SYN, "TCP_LISTEN_OVERFLOW", 10, 6, 5, 0), "common_drop");
});

const VMLINUX = "/sys/kernel/btf/vmlinux";
const NO_ENUMS = `${OUT}/oom.o`; // a compiled object whose BTF has none of the enums looked for

Deno.test({
  name: "findBtfEnums finds named, anonymous, signed and 64-bit enums in this kernel's BTF",
  ignore: !exists(VMLINUX),
  fn() {
    const btf = Btf.parse(VMLINUX);
    try {
      const [r, t, cpuhp, missing] = findBtfEnums(btf, [
        { name: "skb_drop_reason" },
        { member: "TCP_ESTABLISHED" },
        { name: "cpuhp_state" },
        { name: "skb_drop" }, // a prefix is not a name
      ]);
      assertEquals([r?.get(0), r?.get(2)], ["SKB_NOT_DROPPED_YET", "SKB_DROP_REASON_NOT_SPECIFIED"]);
      assertEquals([t?.get(1), t?.get(10)], ["TCP_ESTABLISHED", "TCP_LISTEN"]);
      // CPUHP_INVALID = -1: signed where the BTF says so (pahole 1.24+), else its u32 value.
      assertEquals(cpuhp?.get(-1) ?? cpuhp?.get(0xffffffff), "CPUHP_INVALID");
      assertEquals(missing, undefined);
      if (btf.findWhere([BTF_KIND.ENUM64], () => true)) {
        // enum { ..., BPF_F_CTXLEN_MASK = 0xfffffULL << 32 } (uapi bpf.h) needs 64 bits.
        const [big] = findBtfEnums(btf, [{ member: "BPF_F_CTXLEN_MASK" }]);
        assertEquals(big?.get(0xfffff * 2 ** 32), "BPF_F_CTXLEN_MASK");
      }
    } finally {
      btf.close();
    }
  },
});

Deno.test({
  name:
    "findBtfEnums in BTF without the enums; DropNames.load falls back to the tracefs format, then to none",
  ignore: !exists(NO_ENUMS),
  fn() {
    const btf = Btf.parse(NO_ENUMS);
    try {
      const found = findBtfEnums(btf, [{ name: "skb_drop_reason" }, { member: "TCP_ESTABLISHED" }]);
      assertEquals(found, [undefined, undefined]);
    } finally {
      btf.close();
    }
    const format = Deno.makeTempFileSync({ prefix: "huatuo-dw-", suffix: ".format" });
    try {
      Deno.writeTextFileSync(
        format,
        'print fmt: "reason: %s", __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" })',
      );
      // Not BTF at all, then BTF without the enums: no reasons from either.
      setLibbpfLogger(() => {}); // libbpf says the file is not ELF; the source says it too
      const none = DropNames.load([format, NO_ENUMS], []);
      setLibbpfLogger(null);
      assertEquals(none.reasons.size, 0);
      assert(none.source.startsWith(`none (${format}: btf__parse`), none.source);
      assertEquals(none.reason(3), "reason 3");
      const fmt = DropNames.load([NO_ENUMS], [format]);
      assertEquals([fmt.source, fmt.reason(3)], [format, "NO_SOCKET"]);
    } finally {
      Deno.removeSync(format);
    }
  },
});

Deno.test("parsePrintSymbolic reads the reason table of the kfree_skb format; DropNames names values", () => {
  const format = `name: kfree_skb
print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, REC->protocol, ` +
    `REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 0x80, "MAX" })`;
  const m = parsePrintSymbolic(format);
  assertEquals(m, new Map([[2, "NOT_SPECIFIED"], [3, "NO_SOCKET"], [128, "MAX"]]));
  assertEquals(parsePrintSymbolic('print fmt: "%d", REC->x').size, 0);
  const names = new DropNames(m, new Map([[1, "MAC80211_UNUSABLE"]]), new Map(), "t");
  assertEquals(names.reason(3), "NO_SOCKET");
  assertEquals(names.reason(1 << 16 | 4), "MAC80211_UNUSABLE:4");
  assertEquals(names.reason(9 << 16), "SUBSYS_9:0");
  assertEquals(names.reason(77), "reason 77");
  assertEquals(names.tcpState(3), "3");
});

Deno.test("ipv6 text is RFC 5952; linkStatus; excludedLocation", () => {
  const text = (b: number[]) => formatIPv6(new Uint8Array(b));
  const z = new Array(16).fill(0);
  assertEquals(text(z), "::");
  assertEquals(text([...z.slice(0, 15), 1]), "::1");
  assertEquals(text([0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), "2001:db8:0:1::1");
  assertEquals(text([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]), "2001:db8::1:0:0:1");
  assertEquals(text([0x20, 1, 0xd, 0xb8, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]), "2001:db8:1:1:1:1:1:1");
  assertEquals(text([...z.slice(0, 10), 0xff, 0xff, 192, 0, 2, 1]), "::ffff:192.0.2.1");

  assertEquals(linkStatus(0), []);
  assertEquals(linkStatus(F_DEV | F_ADMIN_UP | F_CARRIER), ["linkStatusUp"]);
  assertEquals(linkStatus(F_DEV | F_ADMIN_UP), ["linkStatusCarrierDown"]);
  assertEquals(linkStatus(F_DEV | F_CARRIER), ["linkStatusAdminDown"]);

  assert(excludedLocation("neigh_invalidate+0x8e/0x140", true));
  assert(!excludedLocation("neigh_invalidate+0x8e/0x140", false));
  assert(!excludedLocation("__neigh_event_send+0x8e/0x140", true));
  assert(excludedLocation("bnxt_start_xmit+0x10/0x900 [bnxt_en]", false));
  assert(!excludedLocation("bnxt_rx_pkt+0x10/0x900 [bnxt_en]", false));
});

Deno.test("formatDropStack starts at the freeing function; KernelSymbols.range spans one symbol", () => {
  const stack = [0x1000n, 0xffffffff81101a10n, 0xffffffff81100010n, 0xffffffff81100299n, 0xffffffff81101610n];
  // location found in the stack: from the frame above it
  assertEquals(
    formatDropStack(stack, 0xffffffff81100299n, KSYMS),
    "sk_skb_reason_drop+0x10/0x200\ntcp_v4_rcv+0x99/0x1400\nip_protocol_deliver_rcu+0x10/0x200",
  );
  // location not in the stack: leading unknown and tracing frames are skipped
  assertEquals(
    formatDropStack(stack, 1n, KSYMS),
    "sk_skb_reason_drop+0x10/0x200\ntcp_v4_rcv+0x99/0x1400\nip_protocol_deliver_rcu+0x10/0x200",
  );
  assertEquals(formatDropStack([], 1n, KSYMS), "");
  assertEquals(KSYMS.range("neigh_invalidate"), [0xffffffff81101800n, 0xffffffff81101a00n]);
  assertEquals(KSYMS.range("neigh_inval"), undefined);
});

// ---- the real kernel ---------------------------------------------------------

const skip = Deno.uid() !== 0
  ? "needs root"
  : !exists(`${OUT}/dropwatch.o`)
  ? "run ./build.sh bpf first"
  : !exists("/sys/kernel/btf/vmlinux")
  ? "kernel has no BTF"
  : undefined;
if (skip) console.warn(`dropwatch_test: real-kernel tests skipped (${skip})`);

const FORMAT = "/sys/kernel/tracing/events/skb/kfree_skb/format";

Deno.test({
  name: "this kernel's drop reason names: BTF enum skb_drop_reason agrees with the tracefs print fmt",
  ignore: skip !== undefined,
  fn() {
    const btf = DropNames.load(["/sys/kernel/btf/vmlinux"], []);
    assertEquals(btf.source, "/sys/kernel/btf/vmlinux");
    assertEquals(btf.reason(3), "NO_SOCKET");
    assertEquals(btf.tcpState(1), "ESTABLISHED");
    assertEquals(btf.tcpState(10), "LISTEN");
    if (!exists(FORMAT)) {
      console.warn(`dropwatch_test: ${FORMAT} missing (tracefs not mounted); print fmt not compared`);
      return;
    }
    const fmt = DropNames.load(["/nonexistent"], [FORMAT]);
    assertEquals(fmt.source, FORMAT);
    assert(fmt.reasons.size > 50, `${fmt.reasons.size} reasons in the print fmt`);
    for (const [v, n] of fmt.reasons) assertEquals(btf.reason(v), n, `reason ${v}`);
  },
});

// Sockets through libc: Deno has no API for a bound TCP client, listen(2)'s backlog or TCP_DEFER_ACCEPT.
type Libc = ReturnType<typeof openLibc>;
function openLibc() {
  return Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    listen: { parameters: ["i32", "i32"], result: "i32" },
    getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
    sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
  }).symbols;
}
let libcSyms: Libc | undefined;
const libc = () => libcSyms ??= openLibc();

const AF_INET = 2, AF_INET6 = 10, SOCK_STREAM = 1, SOCK_DGRAM = 2;
const ECONNREFUSED = 111;

function sockaddr(family: number, addr: string, port: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(family === AF_INET ? 16 : 28);
  const v = new DataView(b.buffer);
  v.setUint16(0, family, true);
  v.setUint16(2, port, false);
  if (family === AF_INET) addr.split(".").forEach((x, i) => b[4 + i] = Number(x));
  else if (addr === "::1") b[23] = 1;
  else throw new Error(`sockaddr: ${addr} not supported here`);
  return b;
}

class Sock {
  readonly fd: number;
  port = 0;
  constructor(readonly family: number, type: number) {
    this.fd = libc().socket(family, type, 0);
    if (this.fd < 0) throw new Error(`socket: errno ${errno()}`);
  }
  /** Binds to addr:0 and learns the port the kernel chose. */
  bind(addr: string): this {
    const sa = sockaddr(this.family, addr, 0);
    if (libc().bind(this.fd, sa, sa.byteLength) < 0) throw new Error(`bind: errno ${errno()}`);
    const len = new Uint32Array([sa.byteLength]);
    if (libc().getsockname(this.fd, sa, new Uint8Array(len.buffer)) < 0) {
      throw new Error(`getsockname: ${errno()}`);
    }
    this.port = new DataView(sa.buffer).getUint16(2, false);
    return this;
  }
  setInt(level: number, name: number, value: number): void {
    const b = new Uint8Array(new Int32Array([value]).buffer);
    if (libc().setsockopt(this.fd, level, name, b, 4) < 0) throw new Error(`setsockopt: errno ${errno()}`);
  }
  listen(backlog: number): void {
    if (libc().listen(this.fd, backlog) < 0) throw new Error(`listen: errno ${errno()}`);
  }
  /** connect(2); returns 0 or the errno. */
  connect(addr: string, port: number): number {
    const sa = sockaddr(this.family, addr, port);
    return libc().connect(this.fd, sa, sa.byteLength) < 0 ? errno() : 0;
  }
  send(bytes: number, to?: { addr: string; port: number }): void {
    const sa = to ? sockaddr(this.family, to.addr, to.port) : null;
    const n = libc().sendto(
      this.fd,
      new Uint8Array(bytes).fill(0x61),
      BigInt(bytes),
      0,
      sa,
      sa?.byteLength ?? 0,
    );
    if (n < 0n) throw new Error(`sendto: errno ${errno()}`);
  }
  close(): void {
    libc().close(this.fd);
  }
}

/** A port nothing listens on (bound and released; nothing else here binds it meanwhile). */
function closedPort(family: number, type: number, addr: string): number {
  const s = new Sock(family, type).bind(addr);
  s.close();
  return s.port;
}

interface Running {
  tracer: DropwatchTracer;
  events: EventInput[];
  stop(): void;
}

async function run(opts: DropwatchOptions = {}, excludeNeighInvalidate = true): Promise<Running> {
  const events: EventInput[] = [];
  const tracer = dropwatchTracer({
    bpf: new BpfRuntime(OUT),
    log: silentLogger,
    events: (ev) => events.push(ev),
    excludeNeighInvalidate,
  }, { eventsPerSec: 0, ...opts }); // no rate limit: other drops on the host must not starve ours
  const ac = new AbortController();
  await tracer.start(testTracerContext(ac.signal));
  return {
    tracer,
    events,
    stop: () => {
      ac.abort();
      tracer.stop();
    },
  };
}

async function waitFor<T>(what: string, get: () => T | undefined, ms = 3000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const find = (events: EventInput[], dport: number, sport?: number) =>
  events.map((e) => e.data).find((d) => d.dport === dport && (sport === undefined || d.sport === sport));

/** The program of the tracer's object that was loaded (the chosen implementation). */
const loaded = (t: DropwatchTracer) => t.object.programs.filter((p) => p.fd >= 0).map((p) => p.name);

Deno.test({
  name:
    "closed ports on loopback: UDP over IPv4 and IPv6 and a TCP SYN → events with reason and exact 5-tuple",
  ignore: skip !== undefined,
  async fn() {
    const r = await run();
    const socks: Sock[] = [];
    try {
      assertEquals(loaded(r.tracer), ["dropwatch_btf_rxsk"], "tp_btf with rx_sk on a 6.12+ kernel");
      const udp4 = new Sock(AF_INET, SOCK_DGRAM).bind("127.0.0.1");
      const udp6 = new Sock(AF_INET6, SOCK_DGRAM).bind("::1");
      const tcp = new Sock(AF_INET, SOCK_STREAM).bind("127.0.0.1");
      socks.push(udp4, udp6, tcp);
      const p4 = closedPort(AF_INET, SOCK_DGRAM, "127.0.0.1");
      const p6 = closedPort(AF_INET6, SOCK_DGRAM, "::1");
      const pt = closedPort(AF_INET, SOCK_STREAM, "127.0.0.1");
      udp4.send(100, { addr: "127.0.0.1", port: p4 });
      udp6.send(50, { addr: "::1", port: p6 });
      assertEquals(tcp.connect("127.0.0.1", pt), ECONNREFUSED);

      const u4 = await waitFor("UDP/IPv4 drop", () => find(r.events, p4, udp4.port));
      assertEquals(u4.reason, "NO_SOCKET");
      assertEquals(u4.type, "common_drop");
      assertEquals(u4.protocol, "udp");
      assertEquals([u4.saddr, u4.daddr, u4.sport, u4.dport], ["127.0.0.1", "127.0.0.1", udp4.port, p4]);
      assertEquals(u4.pkt_len, 20 + 8 + 100, "IPv4 total length");
      assertEquals(u4.pid, Deno.pid, "loopback delivers in the sender's context");
      assertEquals([u4.netdev_name, u4.netdev_ifindex, u4.netdev_linkstatus], ["lo", 1, ["linkStatusUp"]]);
      assertEquals([u4.sk_state, u4.src_hostname, u4.dest_hostname], ["<nil>", "<nil>", "<nil>"]);
      assertMatch(u4.location as string, /^__udp4_lib_rcv\+0x[0-9a-f]+\/0x[0-9a-f]+$/);
      assertMatch(u4.stack as string, /^(sk_skb_reason_drop|kfree_skb_reason)\+.*\n__udp4_lib_rcv\+/);
      assertMatch(u4.stack as string, /\n__sys_sendto\+/);
      assert(typeof u4.net_cookie === "number" && u4.net_cookie > 0, `net_cookie ${u4.net_cookie}`);

      const u6 = await waitFor("UDP/IPv6 drop", () => find(r.events, p6, udp6.port));
      assertEquals([u6.reason, u6.protocol, u6.saddr, u6.daddr], ["NO_SOCKET", "udp", "::1", "::1"]);
      assertEquals(u6.pkt_len, 40 + 8 + 50, "IPv6 payload length + fixed header");
      assertMatch(u6.location as string, /^__udp6_lib_rcv\+/);
      assertEquals(u6.net_cookie, u4.net_cookie, "same netns");

      const t = await waitFor("TCP SYN drop", () => find(r.events, pt, tcp.port));
      assertEquals([t.reason, t.protocol, t.type, t.saddr, t.daddr], [
        "NO_SOCKET",
        "tcp",
        "common_drop",
        "127.0.0.1",
        "127.0.0.1",
      ]);
      assertEquals(t.ack_seq, 0, "a SYN acknowledges nothing");
      assert(typeof t.seq === "number", "seq");
      const len = t.pkt_len as number;
      assert(len >= 40 && len <= 80 && len % 4 === 0, `SYN length ${len}: IP + TCP header with options`);
      assertMatch(t.location as string, /^tcp_v4_rcv\+/);
    } finally {
      for (const s of socks) s.close();
      r.stop();
    }
  },
});

Deno.test({
  name: "every implementation (tp_btf with rx_sk, tp_btf, tracepoint) loads alone and reports the same drop",
  ignore: skip !== undefined,
  async fn() {
    const want: Record<DropwatchImplementation, string> = {
      btf_rxsk: "dropwatch_btf_rxsk",
      btf: "dropwatch_btf",
      tracepoint: "dropwatch_tp",
    };
    for (const [impl, prog] of Object.entries(want) as [DropwatchImplementation, string][]) {
      const r = await run({ implementation: impl });
      const s = new Sock(AF_INET, SOCK_DGRAM).bind("127.0.0.1");
      try {
        assertEquals(loaded(r.tracer), [prog]);
        const port = closedPort(AF_INET, SOCK_DGRAM, "127.0.0.1");
        s.send(10, { addr: "127.0.0.1", port });
        const d = await waitFor(`${impl} drop`, () => find(r.events, port, s.port));
        assertEquals([d.reason, d.protocol, d.saddr, d.pkt_len, d.netdev_name], [
          "NO_SOCKET",
          "udp",
          "127.0.0.1",
          38,
          "lo",
        ]);
        assertMatch(d.stack as string, /\n__udp4_lib_rcv\+/);
      } finally {
        s.close();
        r.stop();
      }
    }
  },
});

const IPPROTO_TCP = 6, TCP_DEFER_ACCEPT = 9, SOL_SOCKET = 1, SO_REUSEADDR = 2;

Deno.test({
  name:
    "accept queue overflow at the handshake's last step → listen_overflow_handshake3 with the listener's state",
  ignore: skip !== undefined,
  async fn() {
    const r = await run();
    if (![...r.tracer.names.reasons.values()].includes("TCP_LISTEN_OVERFLOW")) {
      r.stop();
      console.warn(
        "dropwatch_test: kernel < 6.15 has no TCP_LISTEN_OVERFLOW drop reason; handshake3 test skipped",
      );
      return;
    }
    const socks: Sock[] = [];
    try {
      // backlog 0: one queued connection fills the accept queue. TCP_DEFER_ACCEPT keeps a handshake from
      // completing until data arrives (the second SYN finds the SYN queue "full" and may be answered with a
      // syncookie, which completes at once), so one of the two is refused at its first data segment.
      const l = new Sock(AF_INET, SOCK_STREAM);
      socks.push(l);
      l.setInt(SOL_SOCKET, SO_REUSEADDR, 1);
      l.setInt(IPPROTO_TCP, TCP_DEFER_ACCEPT, 5);
      l.bind("127.0.0.1").listen(0);
      const c1 = new Sock(AF_INET, SOCK_STREAM).bind("127.0.0.1");
      const c2 = new Sock(AF_INET, SOCK_STREAM).bind("127.0.0.1");
      socks.push(c1, c2);
      assertEquals(c1.connect("127.0.0.1", l.port), 0);
      assertEquals(c2.connect("127.0.0.1", l.port), 0);
      const sent = new Map([[c1.port, 10], [c2.port, 20]]);
      c1.send(10);
      await new Promise((res) => setTimeout(res, 50));
      c2.send(20);
      const d = await waitFor(
        "listen overflow drop",
        () =>
          r.events.map((e) => e.data).find((x) =>
            x.dport === l.port && sent.has(x.sport as number) && x.reason === "TCP_LISTEN_OVERFLOW"
          ),
      );
      assertEquals(d.type, "listen_overflow_handshake3");
      assertEquals([d.sk_state, d.max_ack_backlog], ["LISTEN", 0]);
      assertEquals([d.protocol, d.saddr, d.daddr], ["tcp", "127.0.0.1", "127.0.0.1"]);
      assert((d.seq as number) !== 0 && (d.ack_seq as number) !== 0, "a data segment carries seq and ack");
      const hdrs = (d.pkt_len as number) - sent.get(d.sport as number)!;
      assert(hdrs >= 40 && hdrs <= 80, `segment length ${d.pkt_len}: headers ${hdrs} + the data sent`);
      assertMatch(d.location as string, /^tcp_v4_rcv\+/);
    } finally {
      for (const s of socks) s.close();
      r.stop();
    }
  },
});

// ---- a test network namespace ------------------------------------------------

const NS = "huatuo-it-dw";
const HOST_IF = "huatuo-it-dw0", NS_IF = "huatuo-it-dw1"; // nft drop behind this pair
const HOST_IF2 = "huatuo-it-dw2", NS_IF2 = "huatuo-it-dw3"; // nobody answers ARP behind this one
const NET = "10.213.97", NET2 = "10.213.98";

function sh(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

function haveNft(): boolean {
  try {
    return new Deno.Command("nft", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

function teardownNetns(): void {
  for (const dev of [HOST_IF, HOST_IF2]) {
    try {
      sh("ip", ["link", "del", dev]);
    } catch { /* not there */ }
  }
  try {
    sh("ip", ["netns", "del", NS]);
  } catch { /* not there */ }
}

function setupNetns(nft: boolean): void {
  teardownNetns(); // leftovers of an interrupted run
  sh("ip", ["netns", "add", NS]);
  sh("ip", ["link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF, "netns", NS]);
  sh("ip", ["link", "add", HOST_IF2, "type", "veth", "peer", "name", NS_IF2, "netns", NS]);
  sh("ip", ["addr", "add", `${NET}.1/30`, "dev", HOST_IF]);
  sh("ip", ["addr", "add", `${NET2}.1/30`, "dev", HOST_IF2]);
  sh("ip", ["-n", NS, "addr", "add", `${NET}.2/30`, "dev", NS_IF]);
  for (const dev of [HOST_IF, HOST_IF2]) sh("ip", ["link", "set", dev, "up"]);
  for (const dev of ["lo", NS_IF, NS_IF2]) sh("ip", ["-n", NS, "link", "set", dev, "up"]);
  // One ARP probe, 100 ms apart: an unanswered neighbour fails (neigh_invalidate) within ~200 ms.
  const neigh = `/proc/sys/net/ipv4/neigh/${HOST_IF2}`;
  Deno.writeTextFileSync(`${neigh}/mcast_solicit`, "1");
  Deno.writeTextFileSync(`${neigh}/app_solicit`, "0");
  Deno.writeTextFileSync(`${neigh}/retrans_time_ms`, "100");
  if (nft) {
    const rules = Deno.makeTempFileSync({ prefix: "huatuo-it-dw-", suffix: ".nft" });
    try {
      Deno.writeTextFileSync(
        rules,
        "table inet huatuo_it_dw {\n" +
          "  chain input { type filter hook input priority 0; policy accept; udp dport 39995 drop; }\n}\n",
      );
      sh("ip", ["netns", "exec", NS, "nft", "-f", rules]);
    } finally {
      Deno.removeSync(rules);
    }
  }
}

const nsSkip = skip ??
  (exists("/usr/sbin/ip") || exists("/sbin/ip") || exists("/usr/bin/ip") ? undefined : "no ip(8)");
const NFT = nsSkip === undefined && haveNft();
if (nsSkip === undefined && !NFT) {
  console.warn(
    "dropwatch_test: nft(8) missing (Debian package nftables): the netns test drops at a closed port instead",
  );
}

Deno.test({
  name:
    "netns + veth: a drop rule (nftables) in the namespace → NETFILTER_DROP on its veth, its netns cookie",
  ignore: nsSkip !== undefined,
  async fn() {
    const r = await run();
    const s = new Sock(AF_INET, SOCK_DGRAM).bind("0.0.0.0");
    try {
      setupNetns(NFT);
      const nsIndex = JSON.parse(sh("ip", ["-n", NS, "-j", "link", "show", NS_IF]))[0].ifindex as number;
      const port = NFT ? 39995 : closedPort(AF_INET, SOCK_DGRAM, "127.0.0.1");
      // The first datagram waits for ARP; it is delivered (and dropped) once the neighbour resolves.
      s.send(64, { addr: `${NET}.2`, port });
      const d = await waitFor("drop in the netns", () => find(r.events, port, s.port));
      assertEquals(d.reason, NFT ? "NETFILTER_DROP" : "NO_SOCKET");
      if (NFT) assertMatch(d.location as string, /^(nf_hook_slow|nft_do_chain)\+/);
      assertEquals([d.saddr, d.daddr, d.sport, d.dport, d.protocol], [
        `${NET}.1`,
        `${NET}.2`,
        s.port,
        port,
        "udp",
      ]);
      assertEquals(d.pkt_len, 20 + 8 + 64);
      assertEquals([d.netdev_name, d.netdev_ifindex, d.netdev_linkstatus], [NS_IF, nsIndex, [
        "linkStatusUp",
      ]]);
      // The host's own drops carry the host netns cookie; this one another.
      const lo = closedPort(AF_INET, SOCK_DGRAM, "127.0.0.1");
      s.send(1, { addr: "127.0.0.1", port: lo });
      const host = await waitFor("host drop", () => find(r.events, lo, s.port));
      assert(d.net_cookie !== host.net_cookie, `netns cookie ${d.net_cookie} vs host ${host.net_cookie}`);
    } finally {
      s.close();
      r.stop();
      teardownNetns();
    }
  },
});

Deno.test({
  name: "ExcludedNeighInvalidate: an unresolved neighbour's queued packet is reported only when not excluded",
  ignore: nsSkip !== undefined,
  async fn() {
    const excluded = await run({}, true);
    const included = await run({}, false);
    const s = new Sock(AF_INET, SOCK_DGRAM).bind("0.0.0.0");
    try {
      setupNetns(false);
      const port = 39994;
      s.send(32, { addr: `${NET2}.2`, port }); // nobody answers ARP for .2
      const d = await waitFor("neigh_invalidate drop", () => find(included.events, port, s.port));
      assertEquals(d.reason, "NEIGH_FAILED");
      assertMatch(d.location as string, /^neigh_invalidate\+/);
      assertEquals([d.saddr, d.daddr, d.netdev_name], [`${NET2}.1`, `${NET2}.2`, HOST_IF2]);
      await new Promise((res) => setTimeout(res, 100)); // the same drop would have reached the other ring by now
      assertEquals(find(excluded.events, port, s.port), undefined, "neigh_invalidate drops are excluded");
      // Filtered in BPF: the program got neigh_invalidate's text range from kallsyms.
      const [start, end] = excluded.tracer.excludedRange;
      assert(end > start, "excluded range set");
      assertEquals(kernelSymbols().resolve(start)?.name, "neigh_invalidate");
      assertEquals(included.tracer.excludedRange, [0n, 0n]);
    } finally {
      s.close();
      excluded.stop();
      included.stop();
      teardownNetns();
    }
  },
});

// ---- container keys of a real drop -------------------------------------------

const CG2 = "/sys/fs/cgroup/unified";

Deno.test({
  name:
    "a full receive queue in a process of a test cgroup → the event carries that cgroup2 id and the netns inode",
  ignore: skip !== undefined || !exists(`${CG2}/cgroup.procs`),
  async fn() {
    const dir = `${CG2}/huatuo-it-dwcg`;
    try {
      Deno.removeSync(dir);
    } catch { /* not there */ }
    Deno.mkdirSync(dir);
    // The socket is made by a process that joined the cgroup first: sk_cgrp_data is the creator's cgroup.
    const code = `const c = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
console.log((c.addr as Deno.NetAddr).port); setInterval(() => {}, 1e6);`; // never reads; stays alive
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        'echo $$ > "$1/cgroup.procs" && exec "$0" eval --unstable-net "$2"',
        Deno.execPath(),
        dir,
        code,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const r = await run();
    const s = new Sock(AF_INET, SOCK_DGRAM).bind("127.0.0.1");
    try {
      const reader = child.stdout.getReader();
      const { value } = await reader.read();
      reader.releaseLock();
      const port = Number(new TextDecoder().decode(value).trim());
      assert(port > 0, "child's UDP port");
      // Nobody reads: the socket's receive buffer fills and the rest are dropped with the socket as rx_sk.
      for (let i = 0; i < 600; i++) s.send(1000, { addr: "127.0.0.1", port });
      const ev = await waitFor(
        "receive buffer drop",
        () =>
          r.events.find((e) =>
            e.data.dport === port && e.data.sport === s.port && e.data.reason !== "NO_SOCKET"
          ),
      );
      assertEquals(ev.data.reason, "SOCKET_RCVBUFF");
      assertEquals(
        ev.cgroupId,
        BigInt(Deno.statSync(dir).ino!),
        "cgroup2 id = inode of the cgroup directory",
      );
      assertEquals(ev.netnsInode, Deno.statSync("/proc/self/ns/net").ino, "the host netns (lo's)");
      // A drop before any socket (closed port) has no owner: only the netns ties it to a container.
      const closed = closedPort(AF_INET, SOCK_DGRAM, "127.0.0.1");
      s.send(10, { addr: "127.0.0.1", port: closed });
      const ev2 = await waitFor("closed port drop", () => r.events.find((e) => e.data.dport === closed));
      assertEquals([ev2.cgroupId, ev2.netnsInode], [undefined, Deno.statSync("/proc/self/ns/net").ino]);
    } finally {
      s.close();
      r.stop();
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await child.stdout.cancel().catch(() => {});
      for (let i = 0; i < 50; i++) {
        try {
          Deno.removeSync(dir);
          break;
        } catch {
          await new Promise((res) => setTimeout(res, 20));
        }
      }
    }
  },
});

Deno.test("dropwatchRingBytes: bursts + 2 s of every CPU's rate, a power of two in [256 KiB, 4 MiB]", () => {
  assertEquals(dropwatchRingBytes(100, 20, 2), 256 << 10); // 2 × 220 × 408 B = 180 KB
  assertEquals(dropwatchRingBytes(1000, 20, 8), 4 << 20); // 8 × 2020 × 408 B = 6.6 MB → capped at 4 MiB
  assertEquals(dropwatchRingBytes(500, 20, 2), 1 << 20); // 2 × 1020 × 408 B = 832 KB
  assertEquals(dropwatchRingBytes(0, 20, 2), 4 << 20); // no limit: the largest
});
