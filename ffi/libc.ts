// libc bindings for the few syscalls Deno has no API for (netlink sockets,
// sysconf). The library is opened lazily on first use, so importing
// this module costs nothing and needs no --allow-ffi until a call is made.
// FFI facts (docs/architecture.md): 64-bit results come back as BigInt, and errno
// must be read through __errno_location() right after the failing call.

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  sysconf: { parameters: ["i32"], result: "i64" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  // Event buffers (ffi/ringbuf.ts, ffi/perfbuf.ts): mapping BPF ring buffers
  // and perf rings, perf_event_open through syscall(), PERF_EVENT_IOC_*.
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  syscall: { parameters: ["i64", "buffer", "i64", "i64", "i64", "u64"], result: "i64" },
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
  getppid: { parameters: [], result: "i32" },
  gettid: { parameters: [], result: "i32" },
  // Clocks (net_rx_latency: CLOCK_REALTIME - CLOCK_MONOTONIC for BPF programs).
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  // Hands malloc's free pages back to the kernel (libbpf frees vmlinux BTF after each load).
  malloc_trim: { parameters: ["usize"], result: "i32" },
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
  // RLIMIT_NOFILE (the API server's connection cap derives from it).
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Libc | undefined;

function libc(): Libc {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

// Socket constants (x86_64 / generic Linux ABI).
export const AF_UNSPEC = 0;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_ROUTE = 0;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
export const SOL_NETLINK = 270;
export const MSG_TRUNC = 0x20;
export const _SC_PAGESIZE = 30;

export const EINTR = 4;
export const EAGAIN = 11;

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  20: "ENOTDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  28: "ENOSPC",
  32: "EPIPE",
  38: "ENOSYS",
  61: "ENODATA",
  75: "EOVERFLOW",
  88: "ENOTSOCK",
  90: "EMSGSIZE",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  105: "ENOBUFS",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
};

const FAMILY_NAMES: Record<number, string> = { 0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6" };
FAMILY_NAMES[AF_NETLINK] = "AF_NETLINK";
FAMILY_NAMES[AF_PACKET] = "AF_PACKET";

/** Symbolic name of an errno value, e.g. 1 → "EPERM"; unknown values → "errno 123". */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** A failed libc call (or a netlink error reply); `errno` is positive. */
export class ErrnoError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${errnoName(errno)} (${strerror(errno)})`);
    this.name = "ErrnoError";
  }

  get code(): string {
    return errnoName(this.errno);
  }
}

/** The calling thread's errno; only meaningful right after a failed call. */
export function errno(): number {
  const p = libc().__errno_location();
  if (p === null) return 0;
  return new Deno.UnsafePointerView(p).getInt32(0);
}

export function strerror(n: number): string {
  // strerror is not thread safe, but Deno runs FFI calls on the JS thread.
  const p = libc().strerror(n);
  if (p === null) return `Unknown error ${n}`;
  return Deno.UnsafePointerView.getCString(p);
}

function fail(call: string): never {
  throw new ErrnoError(call, errno());
}

export function socket(domain: number, type: number, protocol: number): number {
  const fd = libc().socket(domain, type, protocol);
  if (fd < 0) fail(`socket(${FAMILY_NAMES[domain] ?? domain})`);
  return fd;
}

export function bind(fd: number, addr: Uint8Array<ArrayBuffer>): void {
  if (libc().bind(fd, addr, addr.byteLength) < 0) fail("bind");
}

/** Sends `buf` to `addr` (null for a connected socket); returns bytes sent. Retries on EINTR. */
export function sendto(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  flags: number,
  addr: Uint8Array<ArrayBuffer> | null,
): number {
  for (;;) {
    const n = libc().sendto(fd, buf, BigInt(buf.byteLength), flags, addr, addr?.byteLength ?? 0);
    if (n >= 0n) return Number(n);
    const e = errno();
    if (e !== EINTR) throw new ErrnoError("sendto", e);
  }
}

/** Receives one datagram into `buf`; returns its length (the full length with MSG_TRUNC). Retries on EINTR. */
export function recv(fd: number, buf: Uint8Array<ArrayBuffer>, flags: number): number {
  for (;;) {
    const n = libc().recvfrom(fd, buf, BigInt(buf.byteLength), flags, null, null);
    if (n >= 0n) return Number(n);
    const e = errno();
    if (e !== EINTR) throw new ErrnoError("recvfrom", e);
  }
}

export function close(fd: number): void {
  if (libc().close(fd) < 0) fail("close");
}

export function setsockopt(fd: number, level: number, name: number, value: Uint8Array<ArrayBuffer>): void {
  if (libc().setsockopt(fd, level, name, value, value.byteLength) < 0) fail(`setsockopt(${level}, ${name})`);
}

/** setsockopt with one native int value. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  setsockopt(fd, level, name, new Uint8Array(new Int32Array([value]).buffer));
}

export function sysconf(name: number): number {
  const v = libc().sysconf(name);
  if (v < 0n) fail(`sysconf(${name})`);
  return Number(v);
}

let cachedPageSize: number | undefined;

export function pageSize(): number {
  cachedPageSize ??= sysconf(_SC_PAGESIZE);
  return cachedPageSize;
}

// ---------------------------------------------------------------------------
// Memory mappings, perf events (ffi/ringbuf.ts, ffi/perfbuf.ts).

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const ENODEV = 19;

// (void *)-1
const MAP_FAILED = 0xffffffffffffffffn;

/** mmap(NULL, length, prot, flags, fd, offset); throws ErrnoError on MAP_FAILED. */
export function mmap(
  length: number,
  prot: number,
  flags: number,
  fd: number,
  offset: number,
): Deno.PointerObject {
  const p = libc().mmap(null, BigInt(length), prot, flags, fd, BigInt(offset));
  if (p === null || BigInt(Deno.UnsafePointer.value(p)) === MAP_FAILED) {
    fail(`mmap(fd ${fd}, ${length} bytes)`);
  }
  return p;
}

export function munmap(addr: Deno.PointerObject, length: number): void {
  if (libc().munmap(addr, BigInt(length)) < 0) fail("munmap");
}

// __NR_perf_event_open.
const SYS_PERF_EVENT_OPEN = Deno.build.arch === "aarch64" ? 241n : 298n;

/** perf_event_open(2); returns the fd, throws ErrnoError (e.g. ENODEV for an offline CPU). */
export function perfEventOpen(
  attr: Uint8Array<ArrayBuffer>,
  pid: number,
  cpu: number,
  groupFd: number,
  flags: number,
): number {
  const fd = libc().syscall(
    SYS_PERF_EVENT_OPEN,
    attr,
    BigInt(pid),
    BigInt(cpu),
    BigInt(groupFd),
    BigInt(flags),
  );
  if (fd < 0n) fail(`perf_event_open(cpu ${cpu})`);
  return Number(fd);
}

/** ioctl with an integer argument; returns the (non-negative) result. */
export function ioctl(fd: number, request: number, arg: number | bigint = 0): number {
  const r = libc().ioctl(fd, BigInt(request), BigInt(arg));
  if (r < 0) fail(`ioctl(fd ${fd}, 0x${request.toString(16)})`);
  return r;
}

/** getppid(2): also the cheap syscall the flood BPF test program hooks. */
export function getppid(): number {
  return libc().getppid();
}

/** gettid(2): the calling thread's id (glibc 2.30+). */
export function gettid(): number {
  return libc().gettid();
}

/** The raw getppid symbol, for tight loops without a wrapper frame. */
export function getppidSymbol(): () => number {
  return libc().getppid;
}

// ---------------------------------------------------------------------------
// Receive timestamps and clocks (src/features/net_rx_latency/net_rx_latency.ts).

export const AF_INET = 2;
export const SOCK_DGRAM = 2;
/** SO_TIMESTAMPNS (the "old" 64-bit-time value on x86_64 and aarch64). */
export const SO_TIMESTAMPNS = 35;
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;

const timespecBuf = new BigInt64Array(2);
const timespecBytes = new Uint8Array(timespecBuf.buffer);

/** clock_gettime(2) in nanoseconds (glibc's vDSO path: no syscall). */
export function clockGettimeNs(clock: number): bigint {
  if (libc().clock_gettime(clock, timespecBytes) < 0) fail(`clock_gettime(${clock})`);
  return timespecBuf[0] * 1_000_000_000n + timespecBuf[1];
}

/**
 * Holds the kernel's receive timestamping on (skb->tstamp set for every
 * received packet) while the returned fd is open: a UDP socket with
 * SO_TIMESTAMPNS takes a reference on netstamp_needed_key (net_enable_timestamp),
 * which closing it drops. The socket is never bound and receives nothing.
 */
export function holdRxTimestamps(): number {
  const fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  try {
    setsockoptInt(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
  } catch (err) {
    close(fd);
    throw err;
  }
  return fd;
}

/**
 * Returns free malloc memory to the kernel (glibc malloc_trim(0): the heap top
 * and, since glibc 2.8, free pages inside the heap). libbpf parses the kernel's
 * BTF (~5 MB) for every object it loads and frees it after; glibc keeps those
 * pages otherwise. True when memory was released.
 */
export function mallocTrim(): boolean {
  try {
    return libc().malloc_trim(0n) === 1;
  } catch {
    return false; // not glibc
  }
}

const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

/**
 * Fixes glibc's mmap threshold (and with it the trim threshold). By default
 * glibc raises the threshold to the size of each large block freed, so after
 * the first 5 MB file read (kernel BTF, kallsyms) later ones come from the
 * main heap and stay resident after they are freed. With fixed thresholds,
 * blocks of `mmapBytes` or more are mmapped and unmapped on free, and free
 * memory over `trimBytes` at the heap top is returned. Returns false when the
 * libc is not glibc (no mallopt).
 */
export function fixMallocThresholds(mmapBytes = 256 << 10, trimBytes = 1 << 20): boolean {
  try {
    const l = libc();
    return l.mallopt(M_MMAP_THRESHOLD, mmapBytes) === 1 && l.mallopt(M_TRIM_THRESHOLD, trimBytes) === 1;
  } catch {
    return false;
  }
}

const RLIMIT_NOFILE = 7;

export interface NofileLimit {
  soft: number;
  hard: number;
}

/**
 * Raises the soft RLIMIT_NOFILE to the hard limit (as Go's runtime and
 * node_exporter do) and returns the limits in force afterwards.
 */
export function raiseNofileLimit(): NofileLimit {
  const buf = new BigUint64Array(2);
  const bytes = new Uint8Array(buf.buffer);
  if (libc().getrlimit(RLIMIT_NOFILE, bytes) !== 0) fail("getrlimit(RLIMIT_NOFILE)");
  if (buf[0] < buf[1]) {
    buf[0] = buf[1];
    if (libc().setrlimit(RLIMIT_NOFILE, bytes) !== 0) fail("setrlimit(RLIMIT_NOFILE)");
  }
  // RLIM_INFINITY (2^64-1) does not fit a number: clamp to what the kernel allows (fs.nr_open ≤ 2^30).
  const clamp = (v: bigint) => Number(v > 1n << 40n ? 1n << 40n : v);
  return { soft: clamp(buf[0]), hard: clamp(buf[1]) };
}
