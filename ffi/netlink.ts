// NETLINK_ROUTE socket I/O. Byte-level building and parsing lives in the pure
// src/host/rtnetlink.ts; this file only moves datagrams and checks the dump
// protocol (sequence numbers, NLMSG_ERROR, NLMSG_DONE, interrupted dumps).

import type { NetDevCounters } from "../src/host/netdev.ts";
import {
  linkDumpRequest,
  type LinkInfo,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_OVERRUN,
  parseErrorMessage,
  parseLinkDump,
  parseMessages,
  parseQdiscDump,
  qdiscDumpRequest,
  type QdiscStats,
} from "../src/host/rtnetlink.ts";
import {
  AF_NETLINK,
  bind,
  close,
  ErrnoError,
  MSG_TRUNC,
  NETLINK_ROUTE,
  recv,
  sendto,
  setsockopt,
  setsockoptInt,
  SO_RCVBUF,
  SO_RCVTIMEO,
  SOCK_CLOEXEC,
  SOCK_RAW,
  socket,
  SOL_SOCKET,
} from "./libc.ts";

// One kernel dump skb is at most a few pages; 1 MiB leaves ample room.
const RECV_BUFFER = 1 << 20;
// A dump is answered at once; the timeout only guards against a stuck read
// blocking the event loop forever.
const RECV_TIMEOUT_SECONDS = 5;
const DUMP_ATTEMPTS = 3;

/** struct sockaddr_nl { u16 family; u16 pad; u32 pid; u32 groups; } */
function sockaddrNl(pid = 0, groups = 0): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(12);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, AF_NETLINK, true);
  dv.setUint32(4, pid, true);
  dv.setUint32(8, groups, true);
  return b;
}

/** Thrown when a dump keeps being interrupted by concurrent changes. */
export class DumpInterruptedError extends Error {
  constructor() {
    super(`netlink dump interrupted by concurrent changes ${DUMP_ATTEMPTS} times`);
    this.name = "DumpInterruptedError";
  }
}

let recvBuffer: Uint8Array<ArrayBuffer> | undefined;

function sharedRecvBuffer(): Uint8Array<ArrayBuffer> {
  recvBuffer ??= new Uint8Array(RECV_BUFFER);
  return recvBuffer;
}

export class RtNetlink {
  #fd: number;
  #seq: number;
  // One receive buffer for every socket: dump() is synchronous on the JS
  // thread, so no two dumps ever use it at once, and a 1 MiB allocation per
  // scrape would grow the process's native memory.
  readonly #buf = sharedRecvBuffer();

  /** Opens the socket in the calling thread's current net namespace. */
  constructor() {
    this.#fd = openRouteSocket();
    // Starting from the clock keeps sequence numbers distinct across sockets.
    this.#seq = (Date.now() & 0x7fffffff) >>> 0;
  }

  /**
   * Sends a dump request and returns the reply datagrams as received (the
   * last one holds NLMSG_DONE). The request's sequence number is replaced with
   * this socket's own; a dump flagged NLM_F_DUMP_INTR is retried.
   */
  dump(request: Uint8Array): Uint8Array[] {
    for (let attempt = 0; attempt < DUMP_ATTEMPTS; attempt++) {
      const { chunks, interrupted } = this.#dumpOnce(request);
      if (!interrupted) return chunks;
    }
    throw new DumpInterruptedError();
  }

  #dumpOnce(request: Uint8Array): { chunks: Uint8Array[]; interrupted: boolean } {
    if (this.#fd < 0) throw new Error("RtNetlink: socket is closed");
    const seq = this.#seq = (this.#seq + 1) >>> 0;
    const req = new Uint8Array(request);
    new DataView(req.buffer).setUint32(8, seq, true);
    sendto(this.#fd, req, 0, sockaddrNl());

    const chunks: Uint8Array[] = [];
    let interrupted = false;
    for (;;) {
      const n = recv(this.#fd, this.#buf, MSG_TRUNC);
      if (n > this.#buf.byteLength) {
        throw new Error(`netlink: datagram of ${n} bytes exceeds the ${this.#buf.byteLength}-byte buffer`);
      }
      const chunk = this.#buf.slice(0, n);
      let done = false;
      let mine = false;
      for (const m of parseMessages(chunk)) {
        // Leftovers of an earlier, abandoned request are not ours: skip them.
        if (m.seq !== seq) continue;
        mine = true;
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NLMSG_ERROR) {
          const errno = parseErrorMessage(m.payload);
          if (errno !== 0) throw new ErrnoError(`netlink dump (type ${reqType(req)})`, errno);
        } else if (m.type === NLMSG_OVERRUN) {
          throw new Error("netlink: NLMSG_OVERRUN, data lost");
        } else if (m.type === NLMSG_DONE) {
          done = true;
        }
      }
      if (mine) chunks.push(chunk);
      if (done) return { chunks, interrupted };
    }
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function reqType(req: Uint8Array): number {
  return new DataView(req.buffer, req.byteOffset).getUint16(4, true);
}

function openRouteSocket(): number {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  try {
    setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, RECV_BUFFER);
    // struct timeval { i64 tv_sec; i64 tv_usec; }
    const tv = new BigInt64Array([BigInt(RECV_TIMEOUT_SECONDS), 0n]);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(tv.buffer));
    bind(fd, sockaddrNl());
  } catch (err) {
    close(fd);
    throw err;
  }
  return fd;
}

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
