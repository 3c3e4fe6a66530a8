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

/** Parses /proc/kallsyms text: text symbols (t/T/w/W), sorted by address. Exported for tests. */
export function parseKallsyms(text: string): { addrs: BigUint64Array; names: string[] } {
  const entries: { addr: bigint; name: string }[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    // "ffffffff81000000 T _stext" or "ffffffffc0a01000 t xfs_foo\t[xfs]"
    const sp1 = line.indexOf(" ");
    if (sp1 <= 0) continue;
    const kind = line.charCodeAt(sp1 + 1) | 0x20; // lower-case
    if (kind !== 0x74 /* t */ && kind !== 0x77 /* w */) continue;
    const addr = BigInt("0x" + line.slice(0, sp1));
    if (addr === 0n) continue; // kptr_restrict hides addresses from non-root readers
    const name = line.slice(sp1 + 3).replace("\t", " ");
    entries.push({ addr, name });
  }
  entries.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  const addrs = new BigUint64Array(entries.length);
  const names: string[] = new Array(entries.length);
  entries.forEach((e, i) => {
    addrs[i] = e.addr;
    names[i] = e.name;
  });
  return { addrs, names };
}

export class KernelSymbols {
  constructor(private readonly addrs: BigUint64Array, private readonly names: string[]) {}

  static fromText(text: string): KernelSymbols {
    const { addrs, names } = parseKallsyms(text);
    return new KernelSymbols(addrs, names);
  }

  static load(path = "/proc/kallsyms"): KernelSymbols {
    return KernelSymbols.fromText(Deno.readTextFileSync(path));
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
    const full = this.names[lo];
    const sp = full.indexOf(" ");
    const name = sp < 0 ? full : full.slice(0, sp);
    const module = sp < 0 ? undefined : full.slice(sp + 1).replace(/^\[|\]$/g, "");
    const next = lo + 1 < a.length ? a[lo + 1] : a[lo];
    return { name, offset: addr - a[lo], size: next - a[lo], module };
  }

  /** [start, end) of the text symbol `name` (end: the next symbol), or undefined when unknown. */
  range(name: string): [bigint, bigint] | undefined {
    const i = this.names.findIndex((n) => n === name || n.startsWith(`${name} `));
    if (i < 0 || i + 1 >= this.addrs.length) return undefined;
    return [this.addrs[i], this.addrs[i + 1]];
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
      shared = new KernelSymbols(new BigUint64Array(0), []);
    }
  }
  return shared;
}

/** Reads `depth` little-endian u64 instruction pointers at `offset` of `view` (a bpf_get_stack buffer). */
export function stackAddrs(view: DataView, offset: number, depth: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < depth; i++) {
    const a = view.getBigUint64(offset + i * 8, true);
    if (a === 0n) break;
    out.push(a);
  }
  return out;
}
