// DCB netlink (linux/dcbnl.h) wire format for PFC counters: the RTM_GETDCB
// DCB_CMD_IEEE_GET request and its reply, pure functions over bytes (the
// socket is ffi/netlink.ts RtNetlink.request). Host byte order (little endian
// on our targets), as every rtnetlink layout here.
//
//   request: nlmsghdr(RTM_GETDCB, NLM_F_REQUEST|NLM_F_ACK)
//            struct dcbmsg { u8 dcb_family = AF_UNSPEC; u8 cmd = DCB_CMD_IEEE_GET; u16 pad; }
//            DCB_ATTR_IFNAME "eth0\0"
//   reply:   nlmsghdr(RTM_GETDCB) dcbmsg DCB_ATTR_IFNAME, DCB_ATTR_IEEE { DCB_ATTR_IEEE_ETS,
//            DCB_ATTR_IEEE_PFC (struct ieee_pfc), DCB_ATTR_IEEE_APP_TABLE, ... }, DCB_ATTR_DCBX,
//            then NLMSG_ERROR 0 (the ACK); or NLMSG_ERROR -errno alone (EOPNOTSUPP: the
//            driver has no dcbnl_ops; ENODEV: no such device).

import { ErrnoError } from "../../ffi/libc.ts";
import {
  NetlinkParseError,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  parseErrorMessage,
  parseMessages,
} from "../../ffi/nlmsg.ts";
import { parseAttributes } from "./rtnetlink.ts";

// linux/rtnetlink.h, linux/dcbnl.h
export const RTM_GETDCB = 78;
export const DCB_CMD_IEEE_GET = 21;
export const DCB_ATTR_IFNAME = 1;
export const DCB_ATTR_IEEE = 13;
export const DCB_ATTR_DCBX = 14;
export const DCB_ATTR_IEEE_ETS = 1;
export const DCB_ATTR_IEEE_PFC = 2;
export const DCB_ATTR_IEEE_APP_TABLE = 3;
/** IEEE_8021QAZ_MAX_TCS: priorities 0-7. */
export const DCB_PRIORITIES = 8;
const DCBMSG_LEN = 4;
/** struct ieee_pfc { u8 pfc_cap, pfc_en, mbc; u16 delay; u64 requests[8], indications[8]; }: 136 bytes. */
export const IEEE_PFC_LEN = 136;

export interface IeeePfc {
  /** Traffic classes that can have PFC enabled. */
  pfcCap: number;
  /** Bit per priority: PFC enabled. */
  pfcEn: number;
  /** PFC frames sent, per priority (requests[]: pause requests this device sent). */
  requests: bigint[];
  /** PFC frames received, per priority (indications[]: pause requests from the link partner). */
  indications: bigint[];
}

const align4 = (n: number) => (n + 3) & ~3;

function attr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(4 + payload.byteLength));
  const dv = new DataView(out.buffer);
  dv.setUint16(0, 4 + payload.byteLength, true);
  dv.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

/** RTM_GETDCB DCB_CMD_IEEE_GET for `ifname`, asking for an ACK so that the reply's end is seen. */
export function dcbIeeeGetRequest(ifname: string, seq = 1): Uint8Array<ArrayBuffer> {
  const name = new TextEncoder().encode(`${ifname}\0`);
  const a = attr(DCB_ATTR_IFNAME, name);
  const out = new Uint8Array(NLMSG_HDRLEN + DCBMSG_LEN + a.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, out.byteLength, true);
  dv.setUint16(4, RTM_GETDCB, true);
  dv.setUint16(6, NLM_F_REQUEST | NLM_F_ACK, true);
  dv.setUint32(8, seq >>> 0, true);
  out[NLMSG_HDRLEN] = 0; // AF_UNSPEC
  out[NLMSG_HDRLEN + 1] = DCB_CMD_IEEE_GET;
  out.set(a, NLMSG_HDRLEN + DCBMSG_LEN);
  return out;
}

/** Decodes struct ieee_pfc. */
export function parseIeeePfc(b: Uint8Array): IeeePfc {
  if (b.byteLength < IEEE_PFC_LEN) {
    throw new NetlinkParseError(
      `DCB_ATTR_IEEE_PFC: ${b.byteLength} bytes, struct ieee_pfc needs ${IEEE_PFC_LEN}`,
    );
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u64s = (off: number) =>
    Array.from({ length: DCB_PRIORITIES }, (_, i) => dv.getBigUint64(off + i * 8, true));
  return { pfcCap: b[0], pfcEn: b[1], requests: u64s(8), indications: u64s(8 + 8 * DCB_PRIORITIES) };
}

/**
 * The PFC state of a DCB_CMD_IEEE_GET reply (the datagrams of one request):
 * undefined when the device answers without DCB_ATTR_IEEE_PFC (its driver has
 * no ieee_getpfc). An error reply throws ErrnoError with the kernel's errno.
 */
export function parseDcbIeeeReply(chunks: readonly Uint8Array[]): IeeePfc | undefined {
  let pfc: IeeePfc | undefined;
  let replied = false;
  for (const chunk of chunks) {
    for (const m of parseMessages(chunk)) {
      if (m.type === NLMSG_ERROR) {
        const errno = parseErrorMessage(m.payload);
        if (errno !== 0) throw new ErrnoError("RTM_GETDCB DCB_CMD_IEEE_GET", errno);
        continue;
      }
      if (m.type !== RTM_GETDCB) continue;
      if (m.payload.byteLength < DCBMSG_LEN || m.payload[1] !== DCB_CMD_IEEE_GET) {
        throw new NetlinkParseError(`RTM_GETDCB reply is not DCB_CMD_IEEE_GET (cmd ${m.payload[1]})`);
      }
      replied = true;
      const ieee = parseAttributes(m.payload, DCBMSG_LEN, "DCB attribute").get(DCB_ATTR_IEEE);
      if (ieee === undefined) continue;
      const raw = parseAttributes(ieee, 0, "DCB_ATTR_IEEE attribute").get(DCB_ATTR_IEEE_PFC);
      if (raw !== undefined) pfc = parseIeeePfc(raw);
    }
  }
  if (!replied) throw new NetlinkParseError("RTM_GETDCB: no reply message");
  return pfc;
}

/**
 * A DCB_CMD_IEEE_GET reply as the kernel's dcbnl_ieee_fill builds it
 * (IFNAME, IEEE { ETS, PFC, APP_TABLE }, DCBX), then the ACK: for fixtures of
 * devices this machine does not have (no DCB-capable NIC here).
 */
export function buildDcbIeeeReply(ifname: string, pfc: IeeePfc, seq = 1, pid = 0): Uint8Array<ArrayBuffer> {
  const p = new Uint8Array(IEEE_PFC_LEN);
  const pdv = new DataView(p.buffer);
  p[0] = pfc.pfcCap;
  p[1] = pfc.pfcEn;
  for (let i = 0; i < DCB_PRIORITIES; i++) {
    pdv.setBigUint64(8 + i * 8, pfc.requests[i], true);
    pdv.setBigUint64(8 + 8 * DCB_PRIORITIES + i * 8, pfc.indications[i], true);
  }
  const nested = [
    attr(DCB_ATTR_IEEE_ETS, new Uint8Array(59)),
    attr(DCB_ATTR_IEEE_PFC, p),
    attr(DCB_ATTR_IEEE_APP_TABLE, new Uint8Array()),
  ];
  const ieeeBody = concat(nested);
  const body = concat([
    new Uint8Array([0, DCB_CMD_IEEE_GET, 0, 0]),
    attr(DCB_ATTR_IFNAME, new TextEncoder().encode(`${ifname}\0`)),
    attr(DCB_ATTR_IEEE | 0x8000, ieeeBody), // NLA_F_NESTED, as nla_nest_start sets it
    attr(DCB_ATTR_DCBX, new Uint8Array([0x08])), // DCB_CAP_DCBX_VER_IEEE
  ]);
  return concat([message(RTM_GETDCB, 0, seq, pid, body), ack(seq, pid)]);
}

function message(type: number, flags: number, seq: number, pid: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(NLMSG_HDRLEN + align4(body.byteLength));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, NLMSG_HDRLEN + body.byteLength, true);
  dv.setUint16(4, type, true);
  dv.setUint16(6, flags, true);
  dv.setUint32(8, seq, true);
  dv.setUint32(12, pid, true);
  out.set(body, NLMSG_HDRLEN);
  return out;
}

/** NLMSG_ERROR 0 echoing the request header (capped: NETLINK_CAP_ACK-style, 16 bytes). */
function ack(seq: number, pid: number): Uint8Array {
  const body = new Uint8Array(4 + NLMSG_HDRLEN);
  const dv = new DataView(body.buffer);
  dv.setInt32(0, 0, true);
  dv.setUint32(4, NLMSG_HDRLEN + 12, true);
  dv.setUint16(8, RTM_GETDCB, true);
  dv.setUint16(10, NLM_F_REQUEST | NLM_F_ACK, true);
  dv.setUint32(12, seq, true);
  return message(NLMSG_ERROR, 0x100, /* NLM_F_CAPPED */ seq, pid, body);
}

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
