// Netlink message framing (linux/netlink.h): the header every netlink socket
// speaks, split from the rtnetlink payload parsers in src/host/rtnetlink.ts so
// that the socket layer (ffi/netlink.ts) can check a dump's protocol without
// importing anything above ffi/.

// linux/netlink.h
export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300; // NLM_F_ROOT | NLM_F_MATCH

/** A malformed or truncated netlink buffer. */
export class NetlinkParseError extends Error {
  constructor(message: string) {
    super(`netlink: ${message}`);
    this.name = "NetlinkParseError";
  }
}

export interface NlMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** Bytes after the 16-byte header, up to nlmsg_len. */
  readonly payload: Uint8Array;
}

const align4 = (n: number) => (n + 3) & ~3;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Splits a buffer of back-to-back netlink messages; throws on a bad length. */
export function parseMessages(buf: Uint8Array): NlMessage[] {
  const dv = view(buf);
  const out: NlMessage[] = [];
  let off = 0;
  while (off < buf.byteLength) {
    if (buf.byteLength - off < NLMSG_HDRLEN) {
      throw new NetlinkParseError(`truncated header at offset ${off}: ${buf.byteLength - off} bytes left`);
    }
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > buf.byteLength) {
      throw new NetlinkParseError(
        `message at offset ${off} claims ${len} bytes, ${buf.byteLength - off} available`,
      );
    }
    out.push({
      type: dv.getUint16(off + 4, true),
      flags: dv.getUint16(off + 6, true),
      seq: dv.getUint32(off + 8, true),
      pid: dv.getUint32(off + 12, true),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += Math.min(align4(len), buf.byteLength - off);
  }
  return out;
}

/** Positive errno of an NLMSG_ERROR payload (0 = ACK). */
export function parseErrorMessage(payload: Uint8Array): number {
  if (payload.byteLength < 4) {
    throw new NetlinkParseError(`NLMSG_ERROR payload of ${payload.byteLength} bytes`);
  }
  return -view(payload).getInt32(0, true);
}
