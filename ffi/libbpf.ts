// A small typed layer over the system libbpf (libbpf.so.1, dlopened lazily
// on first use, so importing this module needs no --allow-ffi).
//
// Lifetimes: a BpfObject owns its programs, maps and links. Their handles
// (and the fds they expose) are valid only while the object is open; after
// close() every operation on them throws instead of touching a stale (and
// possibly reused) fd. Nothing is ever pinned, so if the process dies — even
// by SIGKILL — the kernel frees every program, map and link with its fds.
// closeAll() releases everything still open (call it on shutdown).
//
// FFI facts (docs/architecture.md): 64-bit values are BigInt; int-returning libbpf
// calls return -errno, pointer-returning ones return NULL and set errno; log
// lines reach us through libbpf_set_print and are formatted with vsnprintf.

import { Btf, BTF_KIND } from "./btf.ts";
import { type Libbpf, libbpf, whenLoaded } from "./libbpf_lib.ts";
import { cString } from "./cstring.ts";
import { errno, errnoName, strerror } from "./libc.ts";
import { perCpuStride } from "./percpu.ts";

type Bytes = Uint8Array<ArrayBuffer>;
type Ptr = Deno.PointerValue;

// Our own tiny libc handle: vsnprintf is only needed here (same libc.so.6).
const LIBC_SYMBOLS = {
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
} as const;

let libcFmt: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"] | undefined;

/** libbpf.so.1 cannot be dlopened: every BPF feature is off, for this reason and no other. */
export { ensureLibbpf, libbpf, LibbpfUnavailableError, libbpfUnavailableMessage } from "./libbpf_lib.ts";

function bpf(): Libbpf {
  return libbpf();
}

// ---------------------------------------------------------------------------
// Constants (uapi linux/bpf.h, linux/btf.h, asm-generic/errno*.h).

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
export const BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21;
export const BPF_MAP_TYPE_RINGBUF = 27;

export const BPF_PROG_TYPE_PERF_EVENT = 7;

const PERCPU_MAP_TYPES = new Set([
  BPF_MAP_TYPE_PERCPU_HASH,
  BPF_MAP_TYPE_PERCPU_ARRAY,
  BPF_MAP_TYPE_LRU_PERCPU_HASH,
  BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
]);

const ENOENT = 2;
const EINVAL = 22;
const ENOSPC = 28;
const EOPNOTSUPP = 95;
const ENOTSUPP = 524; // kernel-internal, returned for maps without batch ops

// ---------------------------------------------------------------------------
// Errors.

export interface BpfErrorInit {
  /** Display name of the object: the file's basename, or the openMem name. */
  object: string;
  /** What failed, e.g. "load program", "attach program", "lookup map". */
  op: string;
  program?: string;
  map?: string;
  /** Positive errno, when the failure came from a call. */
  errno?: number;
  /** Text after the errno part (the verifier's last lines, a hint, …). */
  detail?: string;
  /** libbpf log lines (warn/info) captured during the failing call. */
  log?: string[];
}

/** A libbpf/kernel failure, named after the object, the program or map, and the errno. */
export class BpfError extends Error {
  readonly object: string;
  readonly op: string;
  readonly program?: string;
  readonly map?: string;
  readonly errno?: number;
  /** Captured libbpf log lines, including the whole verifier log on a load failure. */
  readonly log: string[];

  constructor(init: BpfErrorInit) {
    super(formatBpfError(init));
    this.name = "BpfError";
    this.object = init.object;
    this.op = init.op;
    this.program = init.program;
    this.map = init.map;
    this.errno = init.errno;
    this.log = init.log ?? [];
  }

  /** The verifier log of the failing program, when libbpf printed one. */
  get verifierLog(): string[] {
    return verifierLog(this.log);
  }
}

function formatBpfError(init: BpfErrorInit): string {
  const subject = init.program ?? init.map;
  let msg = `${init.object}: ${init.op}${subject !== undefined ? ` ${subject}` : ""}`;
  if (init.errno !== undefined) msg += `: ${errnoLabel(init.errno)} (${strerror(init.errno)})`;
  if (init.detail) msg += `: ${init.detail}`;
  return msg;
}

function errnoLabel(e: number): string {
  if (e === ENOTSUPP) return "ENOTSUPP";
  return errnoName(e);
}

// ---------------------------------------------------------------------------
// libbpf log: libbpf_set_print callback, formatted with vsnprintf.

export type LibbpfLogLevel = "warn" | "info" | "debug";
export type LibbpfLogger = (level: LibbpfLogLevel, msg: string) => void;

const LEVELS: readonly LibbpfLogLevel[] = ["warn", "info", "debug"];

// Default mirrors libbpf's own default minus info/debug noise.
const defaultLogger: LibbpfLogger = (level, msg) => {
  if (level === "warn") console.error(msg);
};

let logger: LibbpfLogger = defaultLogger;
// Lines collected while a libbpf call we want to explain is running.
let capture: string[] | null = null;
let printCallback: Deno.UnsafeCallback<typeof PRINT_DEF> | undefined;

const PRINT_DEF = { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const;

/**
 * Routes libbpf's log (warn/info/debug; verifier logs come at warn) to `fn`;
 * `null` restores the default (warnings to stderr). Messages are one call per
 * libbpf print, trailing newline removed (a verifier log is one multi-line message).
 */
export function setLibbpfLogger(fn: LibbpfLogger | null): void {
  logger = fn ?? defaultLogger;
  bpf(); // make sure the callback is installed even before any object is opened
}

// Every message libbpf prints goes through our callback from the moment it is opened.
whenLoaded((l) => installPrintCallback(l));

function installPrintCallback(l: Libbpf): void {
  // Kept for the life of the process: libbpf holds the pointer.
  printCallback = new Deno.UnsafeCallback(PRINT_DEF, onLibbpfPrint);
  l.libbpf_set_print(printCallback.pointer);
}

// Called synchronously on the JS thread from inside libbpf calls; it must never throw.
function onLibbpfPrint(level: number, fmt: Ptr, args: Ptr): number {
  try {
    if (fmt === null) return 0;
    const msg = vformat(fmt, args).replace(/\n+$/, "");
    const lvl = LEVELS[level] ?? "debug";
    if (capture !== null && lvl !== "debug") capture.push(...msg.split("\n"));
    logger(lvl, msg);
  } catch {
    // A failing logger must not unwind through C frames.
  }
  return 0;
}

const decoder = new TextDecoder();
const FMT_BUF_KEEP = 1 << 20;
let fmtBuf: Bytes = new Uint8Array(8192);

// va_list is a small struct that vsnprintf advances in place; saving and
// restoring its bytes is what va_copy does on these ABIs, so we can format
// a second time into a bigger buffer (verifier logs can be megabytes).
const VA_LIST_SIZE = Deno.build.arch === "x86_64" ? 24 : Deno.build.arch === "aarch64" ? 32 : 0;

function vformat(fmt: Deno.PointerObject, args: Ptr): string {
  libcFmt ??= Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  const saved = new Uint8Array(VA_LIST_SIZE);
  if (args !== null && VA_LIST_SIZE > 0) Deno.UnsafePointerView.copyInto(args, saved);
  let n = libcFmt.vsnprintf(fmtBuf, BigInt(fmtBuf.byteLength), fmt, args);
  if (n < 0) return "";
  let buf = fmtBuf;
  if (n >= buf.byteLength && args !== null && VA_LIST_SIZE > 0) {
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(args, VA_LIST_SIZE)).set(saved);
    buf = new Uint8Array(n + 1);
    n = libcFmt.vsnprintf(buf, BigInt(buf.byteLength), fmt, args);
    if (buf.byteLength <= FMT_BUF_KEEP) fmtBuf = buf;
  }
  return decoder.decode(buf.subarray(0, Math.min(Math.max(n, 0), buf.byteLength - 1)));
}

/**
 * Calls a pointer-returning libbpf function with its warn/info lines collected
 * into `lines`; on NULL also returns errno, read before any other JS runs.
 */
function callPtr(lines: string[], fn: () => Ptr): [Deno.PointerObject | null, number] {
  return capturing(lines, () => {
    const p = fn();
    return [p, p === null ? errno() : 0];
  });
}

/** Runs `fn` with libbpf's warn/info lines collected into `lines`. */
function capturing<T>(lines: string[], fn: () => T): T {
  const prev = capture;
  capture = lines;
  try {
    return fn();
  } finally {
    capture = prev;
  }
}

const LOG_BEGIN = "-- BEGIN PROG LOAD LOG --";
const LOG_END = "-- END PROG LOAD LOG --";

function verifierLog(lines: string[]): string[] {
  const begin = lines.findLastIndex((l) => l.includes(LOG_BEGIN));
  if (begin < 0) return [];
  const end = lines.findIndex((l, i) => i > begin && l.includes(LOG_END));
  return lines.slice(begin + 1, end < 0 ? lines.length : end).filter((l) => l.trim() !== "");
}

// The lines that say why: the verifier's last words (minus its statistics),
// else libbpf's last warning.
function explain(lines: string[], max = 3): string {
  const vlog = verifierLog(lines).filter((l) => !/^(processed \d+ insns|verification time)/.test(l));
  if (vlog.length > 0) return vlog.slice(-max).join(" | ");
  // "failed to load object '…'" only repeats what the error already says.
  const warn = lines.filter((l) =>
    l.trim() !== "" && !l.includes(LOG_END) && !/failed to load object/.test(l)
  );
  return warn.slice(-2).map((l) => l.replace(/^libbpf: /, "")).join(" | ");
}

function failedProgram(lines: string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /prog '([^']+)': (?:BPF program load failed|failed to load|-- BEGIN PROG LOAD LOG)/.exec(
      lines[i],
    );
    if (m) return m[1];
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Helpers.

const encoder = new TextEncoder();

function cstr(s: string): Bytes {
  const b = encoder.encode(s);
  const out = new Uint8Array(b.byteLength + 1);
  out.set(b);
  return out;
}

function readCString(p: Ptr): string {
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}

function ptrValue(p: Ptr): bigint {
  return p === null ? 0n : BigInt(Deno.UnsafePointer.value(p));
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let possibleCpus: number | undefined;

/** Number of possible CPUs (sizes per-CPU map values); cached. */
export function numPossibleCpus(): number {
  if (possibleCpus === undefined) {
    const n = bpf().libbpf_num_possible_cpus();
    if (n <= 0) throw new BpfError({ object: "libbpf", op: "num_possible_cpus", errno: -n });
    possibleCpus = n;
  }
  return possibleCpus;
}

/** Whether kernel.bpf_stats_enabled is on (needed for non-zero run_cnt / run_time_ns). */
export function bpfStatsEnabled(procRoot = "/proc"): boolean {
  try {
    return Deno.readTextFileSync(`${procRoot}/sys/kernel/bpf_stats_enabled`).trim() === "1";
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Registry of open objects, for closeAll().

const openObjects = new Set<BpfObject>();

/** Closes every open object (and so every link); safe to call more than once. */
export function closeAll(): void {
  for (const obj of [...openObjects]) obj.close();
}

// ---------------------------------------------------------------------------
// Objects.

export interface OpenOptions {
  /** BTF file used for CO-RE relocations instead of /sys/kernel/btf/vmlinux. */
  btfCustomPath?: string;
}

export type RodataValue = number | bigint | boolean | Uint8Array;

/** opened → loaded (or failed: only close() is allowed then) → closed. */
export type BpfObjectState = "opened" | "loaded" | "failed" | "closed";

// struct bpf_object_open_opts, libbpf 1.1 (x86_64/aarch64 LP64), checked with
// offsetof() against /usr/include/bpf/libbpf.h: sz@0, object_name@8,
// relaxed_maps@16, pin_root_path@24, (removed attach_prog_fd)@32, kconfig@40,
// btf_custom_path@48, kernel_log_buf@56, kernel_log_size@64, kernel_log_level@72.
const OPEN_OPTS_SIZE = 80;
const OPEN_OPTS_OBJECT_NAME = 8;
const OPEN_OPTS_BTF_CUSTOM_PATH = 48;

/**
 * One BPF ELF object: open → (setRodata / setAutoload) → load → attachAll → close.
 * Programs, maps and links belong to it and become unusable once it is closed.
 */
export class BpfObject {
  #ptr: Deno.PointerObject | null;
  #state: BpfObjectState = "opened";
  #links = new Set<BpfLink>();
  #programs: BpfProgram[] = [];
  #maps: BpfMap[] = [];
  // Keeps the ELF bytes alive while libbpf may still point at them.
  #keepAlive: unknown;

  private constructor(
    ptr: Deno.PointerObject,
    readonly name: string,
    readonly path: string | undefined,
    readonly btfCustomPath: string | undefined,
  ) {
    this.#ptr = ptr;
    openObjects.add(this);
    this.#collect();
  }

  /** Opens (parses) an object file; nothing reaches the kernel before load(). */
  static openFile(path: string, opts: OpenOptions = {}): BpfObject {
    const name = basename(path);
    const o = openOpts(undefined, opts);
    const lines: string[] = [];
    const [p, e] = callPtr(lines, () => bpf().bpf_object__open_file(cstr(path), o));
    if (p === null) throw openError(name, e, lines);
    return new BpfObject(p, name, path, opts.btfCustomPath);
  }

  /** Opens an object from memory (e.g. embedded in a compiled binary); `name` names it in errors. */
  static openMem(bytes: Uint8Array, name: string, opts: OpenOptions = {}): BpfObject {
    const elf: Bytes = new Uint8Array(bytes); // a private copy libbpf may point into
    const o = openOpts(name.replace(/\.(bpf\.)?o$/, ""), opts);
    const lines: string[] = [];
    const [p, e] = callPtr(lines, () => bpf().bpf_object__open_mem(elf, BigInt(elf.byteLength), o));
    if (p === null) throw openError(name, e, lines);
    const obj = new BpfObject(p, name, undefined, opts.btfCustomPath);
    obj.#keepAlive = elf;
    return obj;
  }

  get state(): BpfObjectState {
    return this.#state;
  }

  get programs(): readonly BpfProgram[] {
    return this.#programs;
  }

  get maps(): readonly BpfMap[] {
    return this.#maps;
  }

  /** The program named `name` (its C function name). */
  program(name: string): BpfProgram {
    const p = this.#programs.find((x) => x.name === name);
    if (p) return p;
    const have = this.#programs.map((x) => x.name).join(", ") || "none";
    throw new BpfError({ object: this.name, op: "no program", program: name, detail: `programs: ${have}` });
  }

  /** The map named `name` (its C variable name; internal maps are e.g. "<obj>.rodata"). */
  map(name: string): BpfMap {
    const m = this.#maps.find((x) => x.name === name);
    if (m) return m;
    const have = this.#maps.map((x) => x.name).join(", ") || "none";
    throw new BpfError({ object: this.name, op: "no map", map: name, detail: `maps: ${have}` });
  }

  /**
   * Sets `const volatile` globals (the .rodata section) before load. Numbers
   * and bigints are written as integers of the variable's size, booleans as
   * 0/1, byte arrays must match the size exactly.
   */
  setRodata(values: Record<string, RodataValue>): void {
    this.#expect("opened", "set rodata");
    const vars = this.#datasecVars(".rodata");
    const data = this.#rodataBytes();
    // Encode into a copy first so a bad value leaves .rodata untouched.
    const next = data.slice();
    for (const [name, value] of Object.entries(values)) {
      const v = vars.get(name);
      if (v === undefined) {
        const have = [...vars.keys()].join(", ") || "none";
        throw new BpfError({
          object: this.name,
          op: "set rodata",
          detail: `unknown variable '${name}' (.rodata has: ${have})`,
        });
      }
      if (v.offset + v.size > data.byteLength) {
        throw new BpfError({
          object: this.name,
          op: "set rodata",
          detail: `variable '${name}' lies outside .rodata`,
        });
      }
      const err = writeValue(next.subarray(v.offset, v.offset + v.size), value);
      if (err) {
        throw new BpfError({ object: this.name, op: "set rodata", detail: `variable '${name}': ${err}` });
      }
    }
    data.set(next);
  }

  /** Enables or disables loading of one program (before load). */
  setAutoload(program: string | BpfProgram, autoload: boolean): void {
    this.#expect("opened", "set autoload");
    const p = typeof program === "string" ? this.program(program) : program;
    const r = bpf().bpf_program__set_autoload(p.handle, autoload);
    if (r < 0) throw new BpfError({ object: this.name, op: "set autoload", program: p.name, errno: -r });
  }

  /** Loads maps and programs into the kernel; a verifier rejection throws with its log. */
  load(): void {
    this.#expect("opened", "load");
    const lines: string[] = [];
    const r = capturing(lines, () => bpf().bpf_object__load(this.handle));
    if (r < 0) {
      this.#state = "failed"; // libbpf allows only close() after a failed load
      const program = failedProgram(lines);
      const op = program !== undefined ? "load program" : "load";
      let detail = explain(lines);
      if (this.btfCustomPath !== undefined && /target BTF/.test(detail)) {
        detail += ` (custom BTF ${this.btfCustomPath})`;
      }
      throw new BpfError({ object: this.name, op, program, errno: -r, detail, log: lines });
    }
    this.#state = "loaded";
    for (const p of this.#programs) p.refresh();
    for (const m of this.#maps) m.refresh();
  }

  /**
   * Attaches every loaded program by its section (tp/, raw_tp/, tp_btf/,
   * kprobe/, …); perf_event programs are skipped (use attachPerfEvent).
   * All or nothing: on a failure the links made here are destroyed.
   */
  attachAll(): BpfLink[] {
    this.#expect("loaded", "attach");
    const made: BpfLink[] = [];
    try {
      for (const p of this.#programs) {
        if (p.fd < 0 || p.type === BPF_PROG_TYPE_PERF_EVENT) continue;
        made.push(p.attach());
      }
    } catch (e) {
      for (const l of made) l.destroy();
      throw e;
    }
    return made;
  }

  /** Destroys every link, then frees the object (kernel side too); idempotent. */
  close(): void {
    if (this.#ptr === null) return;
    for (const l of [...this.#links]) l.destroy();
    for (const p of this.#programs) p.invalidate();
    for (const m of this.#maps) m.invalidate();
    bpf().bpf_object__close(this.#ptr);
    this.#ptr = null;
    this.#state = "closed";
    this.#keepAlive = undefined;
    openObjects.delete(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal the live bpf_object pointer. */
  get handle(): Deno.PointerObject {
    if (this.#ptr === null) throw new BpfError({ object: this.name, op: "use after close" });
    return this.#ptr;
  }

  /** @internal called by links. */
  trackLink(l: BpfLink, add: boolean): void {
    if (add) this.#links.add(l);
    else this.#links.delete(l);
  }

  #expect(state: BpfObjectState, op: string): void {
    if (this.#state !== state) {
      throw new BpfError({ object: this.name, op, detail: `object is ${this.#state}, needs ${state}` });
    }
  }

  #collect(): void {
    const l = bpf();
    for (
      let p = l.bpf_object__next_program(this.handle, null);
      p !== null;
      p = l.bpf_object__next_program(this.handle, p)
    ) {
      this.#programs.push(new BpfProgram(this, p));
    }
    for (
      let m = l.bpf_object__next_map(this.handle, null);
      m !== null;
      m = l.bpf_object__next_map(this.handle, m)
    ) {
      this.#maps.push(new BpfMap(this, m));
    }
  }

  // Variables of a DATASEC from the object's BTF: name → offset/size.
  #datasecVars(section: string): Map<string, { offset: number; size: number }> {
    const vars = new Map<string, { offset: number; size: number }>();
    const p = bpf().bpf_object__btf(this.handle);
    if (p === null) return vars;
    const btf = Btf.borrow(p);
    const id = btf.find(section, BTF_KIND.DATASEC);
    if (id === undefined) return vars;
    for (const v of btf.datasec(id)) vars.set(btf.type(v.type).name, { offset: v.offset, size: v.size });
    return vars;
  }

  // The writable initial image of the .rodata map (libbpf's mmap, pre-load).
  #rodataBytes(): Bytes {
    const m = this.#maps.find((x) => x.name.endsWith(".rodata"));
    if (m === undefined) {
      throw new BpfError({ object: this.name, op: "set rodata", detail: "object has no .rodata map" });
    }
    const size = new BigUint64Array(1);
    const p = bpf().bpf_map__initial_value(m.handle, new Uint8Array(size.buffer));
    if (p === null || size[0] === 0n) {
      throw new BpfError({ object: this.name, op: "set rodata", detail: "no initial value for .rodata" });
    }
    return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, Number(size[0])));
  }
}

// The opts struct with its strings stored in the same buffer after it, so
// they live exactly as long as the buffer passed to libbpf (which copies them).
function openOpts(objectName: string | undefined, opts: OpenOptions): Bytes {
  const strs: [number, Uint8Array][] = [];
  if (objectName !== undefined) strs.push([OPEN_OPTS_OBJECT_NAME, encoder.encode(objectName)]);
  if (opts.btfCustomPath !== undefined) {
    strs.push([OPEN_OPTS_BTF_CUSTOM_PATH, encoder.encode(opts.btfCustomPath)]);
  }
  const buf = new Uint8Array(OPEN_OPTS_SIZE + strs.reduce((n, [, b]) => n + b.byteLength + 1, 0));
  const dv = new DataView(buf.buffer);
  dv.setBigUint64(0, BigInt(OPEN_OPTS_SIZE), LITTLE_ENDIAN); // sz: libbpf reads only this much
  const base = ptrValue(Deno.UnsafePointer.of(buf));
  let at = OPEN_OPTS_SIZE;
  for (const [field, bytes] of strs) {
    buf.set(bytes, at); // NUL follows: the buffer is zeroed
    dv.setBigUint64(field, base + BigInt(at), LITTLE_ENDIAN);
    at += bytes.byteLength + 1;
  }
  return buf;
}

function openError(name: string, e: number, lines: string[]): BpfError {
  return new BpfError({
    object: name,
    op: "open",
    errno: e || undefined,
    detail: explain(lines),
    log: lines,
  });
}

// Encodes `value` into `dst` (host byte order); returns an error text or "".
function writeValue(dst: Bytes, value: RodataValue): string {
  const size = dst.byteLength;
  if (value instanceof Uint8Array) {
    if (value.byteLength !== size) return `size is ${size} bytes, got ${value.byteLength}`;
    dst.set(value);
    return "";
  }
  let big: bigint;
  if (typeof value === "boolean") big = value ? 1n : 0n;
  else if (typeof value === "bigint") big = value;
  else if (Number.isSafeInteger(value)) big = BigInt(value);
  else return `${value} is not an integer`;
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
    return `size is ${size} bytes, not an integer variable`;
  }
  const bits = BigInt(size * 8);
  if (big >= 1n << bits || big < -(1n << (bits - 1n))) return `${value} does not fit in ${size} bytes`;
  const u = BigInt.asUintN(size * 8, big);
  const dv = new DataView(dst.buffer, dst.byteOffset, size);
  if (size === 1) dv.setUint8(0, Number(u));
  else if (size === 2) dv.setUint16(0, Number(u), LITTLE_ENDIAN);
  else if (size === 4) dv.setUint32(0, Number(u), LITTLE_ENDIAN);
  else dv.setBigUint64(0, u, LITTLE_ENDIAN);
  return "";
}

// ---------------------------------------------------------------------------
// Programs.

// struct bpf_prog_info (linux/bpf.h, 232 bytes), offsets checked with
// offsetof(): type@0 id@4 name@64[16] run_time_ns@192 run_cnt@200
// recursion_misses@208 verified_insns@216.
const PROG_INFO_SIZE = 232;

export interface BpfProgramInfo {
  id: number;
  type: number;
  name: string;
  /** Cumulative run time and count; only counted while kernel.bpf_stats_enabled=1. */
  runTimeNs: bigint;
  runCnt: bigint;
  recursionMisses: bigint;
  /** Instructions the verifier processed (kernel 5.16+). */
  verifiedInsns?: number;
}

/** A program of a BpfObject; valid only while the object is open. */
export class BpfProgram {
  readonly name: string;
  readonly section: string;
  readonly type: number;
  #ptr: Deno.PointerObject | null;
  #fd = -1;

  /** @internal */
  constructor(readonly object: BpfObject, ptr: Deno.PointerObject) {
    const l = bpf();
    this.#ptr = ptr;
    this.name = readCString(l.bpf_program__name(ptr));
    this.section = readCString(l.bpf_program__section_name(ptr));
    this.type = l.bpf_program__type(ptr);
  }

  /** The program fd after a successful load, else -1. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether load() will (or did) load this program. */
  get autoload(): boolean {
    return bpf().bpf_program__autoload(this.handle);
  }

  /** Attaches by section name (tracepoint, raw_tp, tp_btf, kprobe, …). */
  attach(): BpfLink {
    this.#loaded("attach program");
    const lines: string[] = [];
    const [p, e] = callPtr(lines, () => bpf().bpf_program__attach(this.handle));
    if (p === null) throw this.#attachError(e, lines);
    return new BpfLink(this.object, p, this.name);
  }

  /**
   * Attaches to an open perf event (perf_event_open fd). On success the link
   * owns `perfFd` (destroying the link closes it); on failure it stays yours.
   */
  attachPerfEvent(perfFd: number): BpfLink {
    this.#loaded("attach program");
    const lines: string[] = [];
    const [p, e] = callPtr(lines, () => bpf().bpf_program__attach_perf_event(this.handle, perfFd));
    if (p === null) throw this.#attachError(e, lines);
    return new BpfLink(this.object, p, this.name);
  }

  /** Kernel-side info (bpf_obj_get_info_by_fd on the program fd). */
  info(): BpfProgramInfo {
    this.#loaded("get info of program");
    const buf = new Uint8Array(PROG_INFO_SIZE);
    const len = new Uint32Array([PROG_INFO_SIZE]);
    const r = bpf().bpf_obj_get_info_by_fd(this.#fd, buf, new Uint8Array(len.buffer));
    if (r < 0) {
      throw new BpfError({
        object: this.object.name,
        op: "get info of program",
        program: this.name,
        errno: -r,
      });
    }
    const dv = new DataView(buf.buffer);
    return {
      type: dv.getUint32(0, LITTLE_ENDIAN),
      id: dv.getUint32(4, LITTLE_ENDIAN),
      name: cString(buf.subarray(64, 80)),
      runTimeNs: dv.getBigUint64(192, LITTLE_ENDIAN),
      runCnt: dv.getBigUint64(200, LITTLE_ENDIAN),
      recursionMisses: dv.getBigUint64(208, LITTLE_ENDIAN),
      verifiedInsns: len[0] >= 220 ? dv.getUint32(216, LITTLE_ENDIAN) : undefined,
    };
  }

  /** @internal */
  get handle(): Deno.PointerObject {
    if (this.#ptr === null) {
      throw new BpfError({ object: this.object.name, op: "use after close of program", program: this.name });
    }
    return this.#ptr;
  }

  /** @internal re-reads the fd after load. */
  refresh(): void {
    const fd = bpf().bpf_program__fd(this.handle);
    this.#fd = fd >= 0 ? fd : -1;
  }

  /** @internal the object was closed. */
  invalidate(): void {
    this.#ptr = null;
    this.#fd = -1;
  }

  #loaded(op: string): void {
    if (this.#ptr === null || this.#fd < 0) {
      const why = this.#ptr === null ? "object is closed" : "program is not loaded";
      throw new BpfError({ object: this.object.name, op, program: this.name, detail: why });
    }
  }

  #attachError(e: number, lines: string[]): BpfError {
    let detail = explain(lines);
    if (e === ENOENT && /^(tp|tracepoint)\//.test(this.section)) {
      detail += `${detail ? "; " : ""}is tracefs mounted at /sys/kernel/tracing?`;
    }
    return new BpfError({
      object: this.object.name,
      op: "attach program",
      program: this.name,
      errno: e || undefined,
      detail: `${this.section}${detail ? `: ${detail}` : ""}`,
      log: lines,
    });
  }
}

// ---------------------------------------------------------------------------
// Links.

/** An attachment; destroy() detaches (idempotent). Closed with its object. */
export class BpfLink {
  #ptr: Deno.PointerObject | null;

  /** @internal */
  constructor(readonly object: BpfObject, ptr: Deno.PointerObject, readonly program: string) {
    this.#ptr = ptr;
    object.trackLink(this, true);
  }

  get destroyed(): boolean {
    return this.#ptr === null;
  }

  destroy(): void {
    if (this.#ptr === null) return;
    const p = this.#ptr;
    this.#ptr = null;
    this.object.trackLink(this, false);
    bpf().bpf_link__destroy(p); // frees the link even when detaching reports an error
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

// ---------------------------------------------------------------------------
// Maps.

export interface BatchResult {
  /** count × keySize bytes. */
  keys: Uint8Array;
  /** count × valueStride bytes (perCpuValueSize for per-CPU maps). */
  values: Uint8Array;
  count: number;
}

/**
 * A map of a BpfObject; valid only while the object is open. Key/value
 * buffers are checked against the map's sizes before every call, so the
 * kernel can never write past a JS buffer.
 */
export class BpfMap {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly isPerCpu: boolean;
  #ptr: Deno.PointerObject | null;
  #fd = -1;
  #maxEntries: number;
  // Reused by lookupBatch.
  #batchKeys: Bytes = new Uint8Array(0);
  #batchValues: Bytes = new Uint8Array(0);
  #batchCap = 0; // entries the batch buffers hold

  /** @internal */
  constructor(readonly object: BpfObject, ptr: Deno.PointerObject) {
    const l = bpf();
    this.#ptr = ptr;
    this.name = readCString(l.bpf_map__name(ptr));
    this.type = l.bpf_map__type(ptr);
    this.keySize = l.bpf_map__key_size(ptr);
    this.valueSize = l.bpf_map__value_size(ptr);
    this.#maxEntries = l.bpf_map__max_entries(ptr);
    this.isPerCpu = PERCPU_MAP_TYPES.has(this.type);
  }

  /** max_entries (a ring buffer's size in bytes). */
  get maxEntries(): number {
    return this.#maxEntries;
  }

  /**
   * Resizes the map before its object loads (libbpf-tools style: a ring sized
   * from the config). Ring buffers need a power-of-2 multiple of the page size.
   */
  setMaxEntries(n: number): void {
    if (this.#ptr === null) {
      throw new BpfError({
        object: this.object.name,
        op: "set max_entries",
        map: this.name,
        detail: "map closed",
      });
    }
    const rc = bpf().bpf_map__set_max_entries(this.#ptr, n);
    if (rc < 0) {
      throw new BpfError({
        object: this.object.name,
        op: `set max_entries to ${n}`,
        map: this.name,
        errno: -rc,
      });
    }
    this.#maxEntries = bpf().bpf_map__max_entries(this.#ptr);
  }

  /** The map fd after load, else -1. */
  get fd(): number {
    return this.#fd;
  }

  /** Bytes of one per-CPU value: possible CPUs × round_up(valueSize, 8). */
  get perCpuValueSize(): number {
    return numPossibleCpus() * perCpuStride(this.valueSize);
  }

  /** Bytes a lookup writes per entry: perCpuValueSize for per-CPU maps, else valueSize. */
  get valueStride(): number {
    return this.isPerCpu ? this.perCpuValueSize : this.valueSize;
  }

  /** Copies the value of `key` into `value`; false when there is no such key. */
  lookup(key: Bytes, value: Bytes): boolean {
    const fd = this.#ready("lookup", key, value);
    const r = bpf().bpf_map_lookup_elem(fd, key, value);
    if (r === -ENOENT) return false;
    if (r < 0) throw this.#error("lookup", -r);
    return true;
  }

  update(key: Bytes, value: Bytes, flags: number = BPF_ANY): void {
    const fd = this.#ready("update", key, value);
    const r = bpf().bpf_map_update_elem(fd, key, value, BigInt(flags));
    if (r < 0) throw this.#error("update", -r);
  }

  /** Deletes `key`; false when it was not there. */
  delete(key: Bytes): boolean {
    const fd = this.#ready("delete", key);
    const r = bpf().bpf_map_delete_elem(fd, key);
    if (r === -ENOENT) return false;
    if (r < 0) throw this.#error("delete", -r);
    return true;
  }

  /** Every key (a fresh copy each) via bpf_map_get_next_key. */
  *keys(): Generator<Uint8Array> {
    let prev: Bytes | null = null;
    for (;;) {
      const fd = this.#ready("iterate"); // re-checked: the object may close between yields
      const next: Bytes = new Uint8Array(this.keySize);
      const r = bpf().bpf_map_get_next_key(fd, prev, next);
      if (r === -ENOENT) return;
      if (r < 0) throw this.#error("iterate", -r);
      yield next;
      prev = next;
    }
  }

  /**
   * Reads all entries with bpf_map_lookup_batch (falls back to get_next_key
   * when the kernel or map type has no batch ops). The returned arrays are
   * views into buffers this map reuses: valid until its next lookupBatch().
   * `chunk` is entries per syscall; `batch: false` forces the fallback.
   */
  lookupBatch(opts: { chunk?: number; batch?: boolean } = {}): BatchResult {
    const fd = this.#ready("batch lookup");
    const batched = opts.batch === false ? null : this.#batchRead(fd, Math.max(1, opts.chunk ?? 1024));
    const count = batched ?? this.#iterRead(fd);
    return {
      keys: this.#batchKeys.subarray(0, count * this.keySize),
      values: this.#batchValues.subarray(0, count * this.valueStride),
      count,
    };
  }

  // Batch reads into the reused buffers; null when batch ops are unsupported.
  #batchRead(fd: number, chunk: number): number | null {
    const l = bpf();
    const tokenSize = Math.max(this.keySize, 8);
    let inTok: Bytes | null = null;
    let outTok: Bytes = new Uint8Array(tokenSize);
    const cnt = new Uint32Array(1);
    const cntBytes = new Uint8Array(cnt.buffer);
    let n = 0;
    for (;;) {
      this.#reserve(n + chunk);
      cnt[0] = chunk;
      const r = l.bpf_map_lookup_batch(
        fd,
        inTok,
        outTok,
        this.#batchKeys.subarray(n * this.keySize),
        this.#batchValues.subarray(n * this.valueStride),
        cntBytes,
        null,
      );
      n += cnt[0]; // entries are returned even with -ENOENT (end of map)
      if (r === -ENOENT) return n;
      if (r === -ENOSPC && cnt[0] === 0) {
        chunk *= 2; // a hash bucket holds more than `chunk` entries
        continue;
      }
      if (r < 0) {
        const e = -r;
        if (inTok === null && n === 0 && (e === EINVAL || e === ENOTSUPP || e === EOPNOTSUPP)) return null;
        throw this.#error("batch lookup", e);
      }
      inTok ??= new Uint8Array(tokenSize);
      [inTok, outTok] = [outTok, inTok];
    }
  }

  // The get_next_key + lookup fallback, into the same reused buffers.
  #iterRead(fd: number): number {
    const l = bpf();
    const ks = this.keySize;
    const vs = this.valueStride;
    let n = 0;
    let prev: Bytes | null = null;
    for (;;) {
      this.#reserve(n + 1);
      const next = this.#batchKeys.subarray(n * ks, (n + 1) * ks);
      const r = l.bpf_map_get_next_key(fd, prev, next);
      if (r === -ENOENT) return n;
      if (r < 0) throw this.#error("iterate", -r);
      const lr = l.bpf_map_lookup_elem(fd, next, this.#batchValues.subarray(n * vs, (n + 1) * vs));
      if (lr === 0) n++;
      else if (lr !== -ENOENT) throw this.#error("lookup", -lr); // ENOENT: deleted meanwhile
      prev = next;
    }
  }

  // Grows the batch buffers to hold `entries` (doubling; contents kept).
  #reserve(entries: number): void {
    if (this.#batchCap >= entries) return;
    const cap = Math.max(entries, Math.min(this.maxEntries, 1024), this.#batchCap * 2);
    const keys = new Uint8Array(cap * this.keySize);
    const values = new Uint8Array(cap * this.valueStride);
    keys.set(this.#batchKeys);
    values.set(this.#batchValues);
    this.#batchKeys = keys;
    this.#batchValues = values;
    this.#batchCap = cap;
  }

  /** @internal */
  get handle(): Deno.PointerObject {
    if (this.#ptr === null) {
      throw new BpfError({ object: this.object.name, op: "use after close of map", map: this.name });
    }
    return this.#ptr;
  }

  /** @internal re-reads the fd after load. */
  refresh(): void {
    const fd = bpf().bpf_map__fd(this.handle);
    this.#fd = fd >= 0 ? fd : -1;
  }

  /** @internal the object was closed. */
  invalidate(): void {
    this.#ptr = null;
    this.#fd = -1;
  }

  // Returns the fd after checking state and buffer sizes.
  #ready(op: string, key?: Bytes, value?: Bytes): number {
    if (this.#fd < 0) {
      const why = this.#ptr === null ? "object is closed" : "map is not loaded";
      throw new BpfError({ object: this.object.name, op: `${op} map`, map: this.name, detail: why });
    }
    if (key !== undefined && key.byteLength < this.keySize) {
      throw new BpfError({
        object: this.object.name,
        op: `${op} map`,
        map: this.name,
        detail: `key buffer is ${key.byteLength} bytes, map key is ${this.keySize}`,
      });
    }
    if (value !== undefined && value.byteLength < this.valueStride) {
      throw new BpfError({
        object: this.object.name,
        op: `${op} map`,
        map: this.name,
        detail: `value buffer is ${value.byteLength} bytes, needs ${this.valueStride}` +
          (this.isPerCpu ? " (per-CPU: possible CPUs × round_up(value size, 8))" : ""),
      });
    }
    return this.#fd;
  }

  #error(op: string, e: number): BpfError {
    return new BpfError({ object: this.object.name, op: `${op} map`, map: this.name, errno: e });
  }
}
