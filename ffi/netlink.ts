// NETLINK_ROUTE socket I/O: this file only moves datagrams and checks the dump
// protocol (sequence numbers, NLMSG_ERROR, NLMSG_DONE, interrupted dumps) with
// ffi/nlmsg.ts. Requests are built and replies parsed above ffi/, in
// src/host/rtnetlink.ts; src/host/rtnetlink_read.ts puts the two together.

import {
  NLM_F_DUMP_INTR,
  type NlMessage,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_OVERRUN,
  parseErrorMessage,
  parseMessages,
} from "./nlmsg.ts";
import { cString } from "./cstring.ts";
import { EAGAIN, errno, ioctl } from "./libc.ts";
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

  /**
   * Sends one request that asks for an acknowledgement (NLM_F_ACK, e.g.
   * RTM_GETDCB) and returns the reply datagrams as received, up to and with
   * the NLMSG_ERROR that ends it (0 = ACK after the reply, else the errno the
   * request failed with: the caller's parser tells which). The request's
   * sequence number is replaced with this socket's own.
   */
  request(request: Uint8Array): Uint8Array[] {
    if (this.#fd < 0) throw new Error("RtNetlink: socket is closed");
    const seq = this.#seq = (this.#seq + 1) >>> 0;
    const req = new Uint8Array(request);
    new DataView(req.buffer).setUint32(8, seq, true);
    sendto(this.#fd, req, 0, sockaddrNl());
    const chunks: Uint8Array[] = [];
    for (;;) {
      const n = recv(this.#fd, this.#buf, MSG_TRUNC);
      if (n > this.#buf.byteLength) {
        throw new Error(`netlink: datagram of ${n} bytes exceeds the ${this.#buf.byteLength}-byte buffer`);
      }
      const chunk = this.#buf.slice(0, n);
      const mine = parseMessages(chunk).filter((m) => m.seq === seq);
      if (mine.length > 0) chunks.push(chunk);
      if (mine.some((m) => m.type === NLMSG_ERROR)) return chunks;
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

// poll(2) runs on one of Deno's blocking-pool threads (`nonblocking: true`),
// so the JS thread never blocks and is woken the moment a notification is
// queued. Measured (6.18, 2 vCPU): the event reached JS 3-19 ms after spawning
// `ip link set` (process start included; before its exit was seen), and an
// idle monitor used 0 CPU ticks in 5 s, against 18 ticks (3.6 % of a core) for
// a 10 ms timer calling recv(). An eventfd in the same poll set wakes it for
// close(). Bound here rather than in ffi/libc.ts: only this socket needs it.
const WAIT_SYMBOLS = {
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
} as const;

let waitLib: Deno.DynamicLibrary<typeof WAIT_SYMBOLS>["symbols"] | undefined;

function waitSymbols(): Deno.DynamicLibrary<typeof WAIT_SYMBOLS>["symbols"] {
  waitLib ??= Deno.dlopen("libc.so.6", WAIT_SYMBOLS).symbols;
  return waitLib;
}

const SOCK_NONBLOCK = 0o4000;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLNVAL = 0x20;
const ENOBUFS = 105;
/** Consecutive failed poll(2) calls (EINTR is the only expected one) before giving up. */
const MAX_POLL_FAILURES = 100;
const MONITOR_RCVBUF = 1 << 20;

/** What one read() of a multicast socket found. */
export interface MonitorBatch {
  /** Notifications in arrival order. */
  messages: NlMessage[];
  /**
   * The kernel dropped notifications since the last read (ENOBUFS: the socket
   * buffer was full), or one was larger than the receive buffer: the reader
   * must re-read the state it tracks.
   */
  overrun: boolean;
}

/**
 * A non-blocking NETLINK_ROUTE socket subscribed to multicast groups (e.g.
 * RTMGRP_LINK), opened in the calling thread's net namespace. wait() resolves
 * when notifications are queued; read() then drains them on the JS thread.
 */
export class RtNetlinkMonitor {
  #fd: number;
  #efd: number;
  /** struct pollfd[2] { i32 fd; i16 events; i16 revents; }: the socket, the wake-up eventfd. */
  readonly #pollfds = new Uint8Array(16);
  readonly #buf = sharedRecvBuffer();
  #pending?: Promise<boolean>;
  #closing = false;

  /** `rcvbuf`: the socket buffer the kernel queues notifications in (bytes; capped by net.core.rmem_max). */
  constructor(groups: number, opts: { rcvbuf?: number } = {}) {
    const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    try {
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, opts.rcvbuf ?? MONITOR_RCVBUF);
      bind(fd, sockaddrNl(0, groups));
      const efd = waitSymbols().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (efd < 0) throw new ErrnoError("eventfd", errno());
      this.#efd = efd;
    } catch (err) {
      close(fd);
      throw err;
    }
    this.#fd = fd;
    const dv = new DataView(this.#pollfds.buffer);
    dv.setInt32(0, fd, true);
    dv.setInt16(4, POLLIN, true);
    dv.setInt32(8, this.#efd, true);
    dv.setInt16(12, POLLIN, true);
  }

  /**
   * Resolves true when the socket has something to read (notifications or a
   * pending ENOBUFS), false once close() was called. One wait at a time.
   */
  wait(): Promise<boolean> {
    if (this.#pending) throw new Error("RtNetlinkMonitor: wait() already pending");
    const p = this.#wait();
    this.#pending = p;
    return p.finally(() => {
      if (this.#pending === p) this.#pending = undefined;
    });
  }

  async #wait(): Promise<boolean> {
    const dv = new DataView(this.#pollfds.buffer);
    let failures = 0;
    while (!this.#closing) {
      dv.setInt16(6, 0, true);
      dv.setInt16(14, 0, true);
      const n = await waitSymbols().poll(this.#pollfds, 2n, -1);
      if (this.#closing || dv.getInt16(14, true) !== 0) return false;
      if (n < 0) {
        // errno lives on the pool thread; EINTR is the one failure a valid poll set can see.
        if (++failures >= MAX_POLL_FAILURES) throw new Error(`poll(netlink socket) failed ${failures} times`);
        continue;
      }
      failures = 0;
      const revents = dv.getInt16(6, true);
      if (revents & POLLNVAL) {
        throw new Error("poll(netlink socket): POLLNVAL, socket closed under the monitor");
      }
      if (revents & (POLLIN | POLLERR)) return true;
    }
    return false;
  }

  /** Drains every queued datagram without blocking. */
  read(): MonitorBatch {
    if (this.#fd < 0) throw new Error("RtNetlinkMonitor: socket is closed");
    const messages: NlMessage[] = [];
    let overrun = false;
    for (;;) {
      let n: number;
      try {
        n = recv(this.#fd, this.#buf, MSG_TRUNC);
      } catch (err) {
        if (err instanceof ErrnoError && err.errno === EAGAIN) break;
        // The kernel reports a full socket buffer once, then delivers what it kept.
        if (err instanceof ErrnoError && err.errno === ENOBUFS) {
          overrun = true;
          continue;
        }
        throw err;
      }
      if (n > this.#buf.byteLength) {
        overrun = true; // truncated: this notification is lost
        continue;
      }
      for (const m of parseMessages(this.#buf.slice(0, n))) {
        if (m.type === NLMSG_OVERRUN) overrun = true;
        else messages.push(m);
      }
    }
    return { messages, overrun };
  }

  /** Wakes a pending wait(), waits for it to return, and closes both descriptors. */
  async close(): Promise<void> {
    if (this.#closing) {
      await this.#pending?.catch(() => {});
      return;
    }
    this.#closing = true;
    const one = new BigUint64Array([1n]);
    waitSymbols().write(this.#efd, new Uint8Array(one.buffer), 8n);
    await this.#pending?.catch(() => {});
    close(this.#fd);
    close(this.#efd);
    this.#fd = -1;
    this.#efd = -1;
  }
}

// linux/sockios.h, linux/ethtool.h
const SIOCETHTOOL = 0x8946;
const ETHTOOL_GDRVINFO = 0x00000003;
const IFNAMSIZ = 16;
/** sizeof(struct ethtool_drvinfo). */
export const ETHTOOL_DRVINFO_SIZE = 196;

/** struct ethtool_drvinfo's strings (`ethtool -i`). */
export interface EthtoolDriverInfo {
  driver: string;
  version: string;
  firmwareVersion: string;
  busInfo: string;
}

/** Decodes struct ethtool_drvinfo { u32 cmd; char driver[32], version[32], fw_version[32], bus_info[32]; ... }. */
export function parseEthtoolDrvinfo(b: Uint8Array): EthtoolDriverInfo {
  if (b.byteLength < 132) throw new RangeError(`ethtool_drvinfo: ${b.byteLength} bytes, need 132`);
  return {
    driver: cString(b.subarray(4, 36)),
    version: cString(b.subarray(36, 68)),
    firmwareVersion: cString(b.subarray(68, 100)),
    busInfo: cString(b.subarray(100, 132)),
  };
}

/** Runs one SIOCETHTOOL command on `ifname` with `data` as ifr_data; false when the device is gone or does not support it. */
function ethtoolIoctl(ifname: string, data: Uint8Array<ArrayBuffer>): boolean {
  const name = new TextEncoder().encode(ifname);
  if (name.byteLength >= IFNAMSIZ || name.byteLength === 0) return false;
  // struct ifreq { char ifr_name[16]; union { void *ifr_data; ... } } (40 bytes)
  const ifr = new Uint8Array(40);
  ifr.set(name);
  const ptr = Deno.UnsafePointer.value(Deno.UnsafePointer.of(data));
  new DataView(ifr.buffer).setBigUint64(IFNAMSIZ, BigInt(ptr), true);
  // Any socket reaches dev_ioctl; NETLINK_ROUTE exists wherever this agent runs (ethtool falls back to it too).
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  try {
    const ifrPtr = Deno.UnsafePointer.value(Deno.UnsafePointer.of(ifr));
    ioctl(fd, SIOCETHTOOL, BigInt(ifrPtr));
  } catch (err) {
    if (err instanceof ErrnoError && (err.code === "ENODEV" || err.code === "EOPNOTSUPP")) return false;
    throw err;
  } finally {
    close(fd);
  }
  return true;
}

function drvinfo(ifname: string): Uint8Array<ArrayBuffer> | undefined {
  const info = new Uint8Array(ETHTOOL_DRVINFO_SIZE);
  new DataView(info.buffer).setUint32(0, ETHTOOL_GDRVINFO, true);
  return ethtoolIoctl(ifname, info) ? info : undefined;
}

/**
 * Driver name, version and firmware of a device (SIOCETHTOOL ETHTOOL_GDRVINFO,
 * what `ethtool -i` shows), in the calling thread's net namespace. Undefined
 * when the device is gone (ENODEV) or reports no driver (EOPNOTSUPP, e.g. lo).
 */
export function ethtoolDriverInfo(ifname: string): EthtoolDriverInfo | undefined {
  const info = drvinfo(ifname);
  return info && parseEthtoolDrvinfo(info);
}

// linux/ethtool.h
const ETHTOOL_GSTRINGS = 0x0000001b;
const ETHTOOL_GSTATS = 0x0000001d;
const ETH_SS_STATS = 1;
export const ETH_GSTRING_LEN = 32;
/** struct ethtool_drvinfo's n_stats: ETH_SS_STATS' count when the call was made. */
const DRVINFO_N_STATS = 180;
/**
 * Room for counters added between the count and the read: both calls write as
 * many as the driver has at that moment, whatever the caller allocated
 * (virtio_net's per-queue counters grow with `ethtool -L`).
 */
const STATS_SLACK = 256;

/** The names of struct ethtool_gstrings { u32 cmd; u32 string_set; u32 len; u8 data[len][32]; }. */
export function parseEthtoolStrings(b: Uint8Array): string[] {
  const len = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(8, true);
  if (12 + len * ETH_GSTRING_LEN > b.byteLength) {
    throw new RangeError(`ethtool_gstrings: ${len} strings overflow`);
  }
  return Array.from({ length: len }, (_, i) => cString(b.subarray(12 + i * 32, 12 + (i + 1) * 32)));
}

/** The values of struct ethtool_stats { u32 cmd; u32 n_stats; u64 data[n_stats]; }. */
export function parseEthtoolStatValues(b: Uint8Array): bigint[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = dv.getUint32(4, true);
  if (8 + n * 8 > b.byteLength) throw new RangeError(`ethtool_stats: ${n} values overflow`);
  return Array.from({ length: n }, (_, i) => dv.getBigUint64(8 + i * 8, true));
}

/**
 * The driver's own statistics (`ethtool -S`: ETHTOOL_GSTRINGS ETH_SS_STATS and
 * ETHTOOL_GSTATS), name → value, in the calling thread's net namespace.
 * Undefined when the device is gone or its driver has none; an empty map when
 * the count changed between the two reads (the next scrape reads again).
 */
export function ethtoolStats(ifname: string): Map<string, bigint> | undefined {
  const info = drvinfo(ifname);
  if (!info) return undefined;
  const n = new DataView(info.buffer).getUint32(DRVINFO_N_STATS, true);
  if (n === 0) return undefined;
  const room = n + STATS_SLACK;
  const strings = new Uint8Array(12 + room * ETH_GSTRING_LEN);
  const sdv = new DataView(strings.buffer);
  sdv.setUint32(0, ETHTOOL_GSTRINGS, true);
  sdv.setUint32(4, ETH_SS_STATS, true);
  sdv.setUint32(8, n, true);
  const values = new Uint8Array(8 + room * 8);
  const vdv = new DataView(values.buffer);
  vdv.setUint32(0, ETHTOOL_GSTATS, true);
  vdv.setUint32(4, n, true);
  if (!ethtoolIoctl(ifname, strings) || !ethtoolIoctl(ifname, values)) return undefined;
  const names = parseEthtoolStrings(strings);
  const nums = parseEthtoolStatValues(values);
  const out = new Map<string, bigint>();
  if (names.length !== nums.length) return out;
  names.forEach((name, i) => out.set(name, nums[i]));
  return out;
}
