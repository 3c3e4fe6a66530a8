// Kernel symbols from /proc/kallsyms, for turning the instruction pointers a
// BPF program captured (bpf_get_stack) into "symbol+0xoff/0xsize" lines, the
// format the kernel itself prints in backtraces.
//
// Loaded once, lazily (the file is ~10 MB of text with ~200k text symbols);
// lookups are a binary search over a sorted BigUint64Array.

export interface KernelSymbol {
  name: string;
  /** Offset of the address from the symbol start. */
  offset: bigint;
  /** Distance to the next symbol: the symbol's size as far as kallsyms tells. */
  size: bigint;
  /** Module name for symbols of loadable modules ("[xfs]" in kallsyms), else undefined. */
  module?: string;
}

/**
 * Text symbols (t/T/w/W) of /proc/kallsyms bytes, sorted by address. Names stay
 * bytes in one buffer (decoded on lookup): a JS string per symbol, or the
 * whole file as one string, cost ~10 MB of heap and ~40 MB of RSS growth.
 * Exported for tests.
 */
export function parseKallsyms(
  bytes: Uint8Array,
): { addrs: BigUint64Array; names: Uint8Array; starts: Uint32Array } {
  // Typed arrays only while parsing: no BigInt or string per line (122k symbols
  // here), which kept the parse from growing RSS by ~40 MB.
  let lines = 1;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) lines++;
  const hiOf = new Uint32Array(lines);
  const loOf = new Uint32Array(lines);
  const nameStart = new Uint32Array(lines);
  const nameEnd = new Uint32Array(lines);
  let count = 0;
  let pos = 0;
  const n = bytes.length;
  while (pos < n) {
    let eol = bytes.indexOf(0x0a, pos);
    if (eol < 0) eol = n;
    // "ffffffff81000000 T _stext" or "ffffffffc0a01000 t xfs_foo\t[xfs]"
    const sp1 = bytes.indexOf(0x20, pos);
    if (sp1 > pos && sp1 + 3 < eol) {
      const kind = bytes[sp1 + 1] | 0x20; // lower-case
      if (kind === 0x74 /* t */ || kind === 0x77 /* w */) {
        let hi = 0;
        let lo = 0;
        for (let i = pos; i < sp1; i++) {
          const c = bytes[i];
          const d = c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
          hi = (hi * 16 + Math.floor(lo / 0x10000000)) >>> 0;
          lo = ((lo % 0x10000000) * 16 + d) >>> 0;
        }
        if (hi !== 0 || lo !== 0) { // kptr_restrict hides addresses from non-root readers
          hiOf[count] = hi;
          loOf[count] = lo;
          nameStart[count] = sp1 + 3;
          nameEnd[count] = eol;
          count++;
        }
      }
    }
    pos = eol + 1;
  }
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  order.sort((a, b) => (hiOf[a] - hiOf[b]) || (loOf[a] - loOf[b]));
  const addrs = new BigUint64Array(count);
  const words = new Uint32Array(addrs.buffer); // little-endian: [lo, hi] per address
  const starts = new Uint32Array(count + 1);
  let total = 0;
  for (let k = 0; k < count; k++) total += nameEnd[order[k]] - nameStart[order[k]];
  const names = new Uint8Array(total);
  let at = 0;
  for (let k = 0; k < count; k++) {
    const i = order[k];
    words[2 * k] = loOf[i];
    words[2 * k + 1] = hiOf[i];
    starts[k] = at;
    names.set(bytes.subarray(nameStart[i], nameEnd[i]), at);
    at += nameEnd[i] - nameStart[i];
  }
  starts[count] = at;
  return { addrs, names, starts };
}

const latin1 = new TextDecoder("latin1");

export class KernelSymbols {
  constructor(
    private readonly addrs: BigUint64Array,
    private readonly names: Uint8Array,
    private readonly starts: Uint32Array,
  ) {}

  static fromBytes(bytes: Uint8Array): KernelSymbols {
    const { addrs, names, starts } = parseKallsyms(bytes);
    return new KernelSymbols(addrs, names, starts);
  }

  static fromText(text: string): KernelSymbols {
    return KernelSymbols.fromBytes(new TextEncoder().encode(text));
  }

  static load(path = "/proc/kallsyms"): KernelSymbols {
    return KernelSymbols.fromBytes(Deno.readFileSync(path));
  }

  /** The full kallsyms name of symbol i: "name" or "name\t[module]". */
  #name(i: number): string {
    return latin1.decode(this.names.subarray(this.starts[i], this.starts[i + 1]));
  }

  /** Number of text symbols known (0 when kallsyms hid the addresses). */
  get size(): number {
    return this.addrs.length;
  }

  /** The symbol containing addr, or undefined when it lies before the first symbol or nothing is known. */
  resolve(addr: bigint): KernelSymbol | undefined {
    const a = this.addrs;
    let lo = 0;
    let hi = a.length - 1;
    if (hi < 0 || addr < a[0]) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (a[mid] <= addr) lo = mid;
      else hi = mid - 1;
    }
    const full = this.#name(lo);
    const sp = full.search(/[\t ]/);
    const name = sp < 0 ? full : full.slice(0, sp);
    const module = sp < 0 ? undefined : full.slice(sp + 1).trim().replace(/^\[|\]$/g, "");
    const next = lo + 1 < a.length ? a[lo + 1] : a[lo];
    return { name, offset: addr - a[lo], size: next - a[lo], module };
  }

  /** [start, end) of the text symbol `name` (end: the next symbol), or undefined when unknown. */
  range(name: string): [bigint, bigint] | undefined {
    const want = new TextEncoder().encode(name);
    for (let i = 0; i + 1 < this.addrs.length; i++) {
      const a = this.starts[i];
      const len = this.starts[i + 1] - a;
      if (len < want.length || (len > want.length && this.names[a + want.length] !== 0x09)) continue;
      let same = true;
      for (let j = 0; j < want.length && same; j++) same = this.names[a + j] === want[j];
      if (same) return [this.addrs[i], this.addrs[i + 1]];
    }
    return undefined;
  }

  /** One frame as the kernel prints it: "tcp_v4_rcv+0x1a/0x3c0 [module]", or the raw address. */
  formatFrame(addr: bigint): string {
    const s = this.resolve(addr);
    if (!s) return `0x${addr.toString(16)}`;
    const mod = s.module ? ` [${s.module}]` : "";
    return `${s.name}+0x${s.offset.toString(16)}/0x${s.size.toString(16)}${mod}`;
  }

  /** Newline-joined frames, innermost first; the first zero address ends the stack. */
  formatStack(addrs: Iterable<bigint>): string {
    const lines: string[] = [];
    for (const a of addrs) {
      if (a === 0n) break;
      lines.push(this.formatFrame(a));
    }
    return lines.join("\n");
  }
}

let shared: KernelSymbols | undefined;

/** The host's kernel symbols, loaded on first use (root sees real addresses; others get raw hex frames). */
export function kernelSymbols(): KernelSymbols {
  if (!shared) {
    try {
      shared = KernelSymbols.load();
    } catch {
      shared = new KernelSymbols(new BigUint64Array(0), new Uint8Array(0), new Uint32Array(1));
    }
  }
  return shared;
}
