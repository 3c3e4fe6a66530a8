// ELF64 parsing for user-space symbolization, without I/O: each step parses
// the bytes of one part of the file (the header, the program headers, the
// section headers, a note, a symbol table), so the caller reads only those
// parts (src/profile/symbolize.ts) instead of whole binaries. ELF32 files
// are refused (no 32-bit user space on the hosts the agent runs on).

export class ElfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ElfError";
  }
}

export const ELF_HEADER_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;

export const ET_EXEC = 2;
export const ET_DYN = 3;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const SHT_SYMTAB = 2;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const NT_GNU_BUILD_ID = 3;
const SHN_UNDEF = 0;
const SHN_XINDEX = 0xffff;
/** Symbol binding → preference among aliases: global, weak, then local. */
const BINDING_RANK: Record<number, number> = { 1: 0, 2: 1, 0: 2 };

export interface ElfHeader {
  readonly littleEndian: boolean;
  /** ET_EXEC (fixed addresses) or ET_DYN (PIE executables, shared objects), ... */
  readonly type: number;
  readonly machine: number;
  readonly phoff: number;
  readonly phentsize: number;
  readonly phnum: number;
  readonly shoff: number;
  readonly shentsize: number;
  /** 0 with shoff set: the real count is section 0's sh_size (more than 0xff00 sections). */
  readonly shnum: number;
  /** SHN_XINDEX: the real index is section 0's sh_link. */
  readonly shstrndx: number;
}

export interface ProgramHeader {
  readonly type: number;
  readonly flags: number;
  readonly offset: number;
  readonly vaddr: number;
  readonly filesz: number;
  readonly memsz: number;
}

export interface SectionHeader {
  /** Offset of the name in the section name table; `name` once sectionNames() ran. */
  readonly nameOffset: number;
  name: string;
  readonly type: number;
  readonly addr: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly entsize: number;
}

// 64-bit fields as numbers: ELF offsets and user-space addresses stay far below 2^53.
function u64(v: DataView, off: number, le: boolean): number {
  return Number(v.getBigUint64(off, le));
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** The ELF header of the first ELF_HEADER_SIZE bytes; throws ElfError on anything but ELF64. */
export function parseElfHeader(bytes: Uint8Array): ElfHeader {
  if (bytes.length < 16 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new ElfError("not an ELF file");
  }
  if (bytes[4] !== 2) throw new ElfError(`ELF class ${bytes[4]} is not supported (ELF64 only)`);
  if (bytes[5] !== 1 && bytes[5] !== 2) throw new ElfError(`bad ELF data encoding ${bytes[5]}`);
  if (bytes.length < ELF_HEADER_SIZE) throw new ElfError("truncated ELF header");
  const le = bytes[5] === 1;
  const v = view(bytes);
  return {
    littleEndian: le,
    type: v.getUint16(16, le),
    machine: v.getUint16(18, le),
    phoff: u64(v, 32, le),
    shoff: u64(v, 40, le),
    phentsize: v.getUint16(54, le),
    phnum: v.getUint16(56, le),
    shentsize: v.getUint16(58, le),
    shnum: v.getUint16(60, le),
    shstrndx: v.getUint16(62, le),
  };
}

/** Bytes of the program header table: [offset, length]. */
export function programHeadersRange(h: ElfHeader): [number, number] {
  return [h.phoff, h.phnum * h.phentsize];
}

export function parseProgramHeaders(h: ElfHeader, bytes: Uint8Array): ProgramHeader[] {
  if (h.phnum > 0 && h.phentsize < PHDR_SIZE) throw new ElfError(`program header size ${h.phentsize}`);
  const v = view(bytes);
  const le = h.littleEndian;
  const out: ProgramHeader[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const o = i * h.phentsize;
    if (o + PHDR_SIZE > bytes.length) throw new ElfError("truncated program headers");
    out.push({
      type: v.getUint32(o, le),
      flags: v.getUint32(o + 4, le),
      offset: u64(v, o + 8, le),
      vaddr: u64(v, o + 16, le),
      filesz: u64(v, o + 32, le),
      memsz: u64(v, o + 40, le),
    });
  }
  return out;
}

/**
 * Bytes of the section header table: [offset, length], for `count` entries
 * (h.shnum, or section 0's size when h.shnum is 0: read one entry first).
 */
export function sectionHeadersRange(h: ElfHeader, count = h.shnum): [number, number] {
  return [h.shoff, count * h.shentsize];
}

export function parseSectionHeaders(h: ElfHeader, bytes: Uint8Array, count = h.shnum): SectionHeader[] {
  if (count > 0 && h.shentsize < SHDR_SIZE) throw new ElfError(`section header size ${h.shentsize}`);
  const v = view(bytes);
  const le = h.littleEndian;
  const out: SectionHeader[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * h.shentsize;
    if (o + SHDR_SIZE > bytes.length) throw new ElfError("truncated section headers");
    out.push({
      nameOffset: v.getUint32(o, le),
      name: "",
      type: v.getUint32(o + 4, le),
      addr: u64(v, o + 16, le),
      offset: u64(v, o + 24, le),
      size: u64(v, o + 32, le),
      link: v.getUint32(o + 40, le),
      entsize: u64(v, o + 56, le),
    });
  }
  return out;
}

/** The section count and name-table index, resolving the escapes kept in section 0. */
export function sectionCounts(
  h: ElfHeader,
  first: SectionHeader | undefined,
): { count: number; strndx: number } {
  const count = h.shnum === 0 && h.shoff !== 0 ? first?.size ?? 0 : h.shnum;
  const strndx = h.shstrndx === SHN_XINDEX ? first?.link ?? 0 : h.shstrndx;
  return { count, strndx };
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();
const encoder = new TextEncoder();

/** The NUL-terminated string at `off` of a string table ("" when outside). */
export function tableString(table: Uint8Array, off: number, decoder: TextDecoder = utf8): string {
  if (off >= table.length) return "";
  let end = table.indexOf(0, off);
  if (end < 0) end = table.length;
  return decoder.decode(table.subarray(off, end));
}

/** Fills in the section names from the section name table's bytes. */
export function nameSections(sections: SectionHeader[], shstrtab: Uint8Array): void {
  for (const s of sections) s.name = tableString(shstrtab, s.nameOffset, latin1);
}

/** The GNU build-id (lower-case hex) in a run of ELF notes, or undefined. */
export function parseBuildId(notes: Uint8Array, littleEndian: boolean): string | undefined {
  const v = view(notes);
  let o = 0;
  while (o + 12 <= notes.length) {
    const namesz = v.getUint32(o, littleEndian);
    const descsz = v.getUint32(o + 4, littleEndian);
    const type = v.getUint32(o + 8, littleEndian);
    const name = o + 12;
    const desc = name + align4(namesz);
    const next = desc + align4(descsz);
    if (next > notes.length || next <= o) return undefined;
    // name "GNU\0"
    if (
      type === NT_GNU_BUILD_ID && namesz === 4 && notes[name] === 0x47 && notes[name + 1] === 0x4e &&
      notes[name + 2] === 0x55 && descsz > 0
    ) {
      return [...notes.subarray(desc, desc + descsz)].map((b) => b.toString(16).padStart(2, "0")).join("");
    }
    o = next;
  }
  return undefined;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * The file ranges that may hold the build-id note: SHT_NOTE sections when
 * the section headers are known, else PT_NOTE segments.
 */
export function noteRanges(
  phdrs: readonly ProgramHeader[],
  sections?: readonly SectionHeader[],
): [number, number][] {
  const fromSections = (sections ?? []).filter((s) => s.type === SHT_NOTE).map((s): [number, number] => [
    s.offset,
    s.size,
  ]);
  if (fromSections.length > 0) return fromSections;
  return phdrs.filter((p) => p.type === PT_NOTE).map((p): [number, number] => [p.offset, p.filesz]);
}

/**
 * The ELF virtual address of file offset `fileOffset` (an address in a
 * mapping: address - mapping start + mapping file offset) through the
 * PT_LOAD segment holding it; undefined when no segment maps it.
 */
export function fileOffsetToVaddr(phdrs: readonly ProgramHeader[], fileOffset: number): number | undefined {
  for (const p of phdrs) {
    if (p.type === PT_LOAD && fileOffset >= p.offset && fileOffset < p.offset + p.filesz) {
      return fileOffset - p.offset + p.vaddr;
    }
  }
  return undefined;
}

/** The symbol table to read: .symtab when present (not stripped), else .dynsym. */
export function chooseSymbolSection(sections: readonly SectionHeader[]): SectionHeader | undefined {
  return sections.find((s) => s.type === SHT_SYMTAB && s.size > 0) ??
    sections.find((s) => s.type === SHT_DYNSYM && s.size > 0);
}

/**
 * Function symbols sorted by address, for binary search. Names stay UTF-8
 * bytes in one buffer, decoded on lookup: a JS string per symbol costs ~3x
 * the memory, and a cache of tables holds a million symbols.
 */
export class SymbolTable {
  constructor(
    readonly starts: Float64Array,
    readonly ends: Float64Array,
    /** Names, back to back; name i is bytes [nameStarts[i], nameStarts[i + 1]). */
    readonly nameBytes: Uint8Array,
    readonly nameStarts: Uint32Array,
    /** More function symbols were present than the cap allowed. */
    readonly truncated = false,
  ) {}

  /** A table of symbols given as strings (sorted by start). */
  static of(
    starts: Float64Array,
    ends: Float64Array,
    names: readonly string[],
    truncated = false,
  ): SymbolTable {
    const encoded = names.map((n) => encoder.encode(n));
    const nameStarts = new Uint32Array(names.length + 1);
    for (let i = 0; i < encoded.length; i++) nameStarts[i + 1] = nameStarts[i] + encoded[i].length;
    const bytes = new Uint8Array(nameStarts[names.length]);
    encoded.forEach((b, i) => bytes.set(b, nameStarts[i]));
    return new SymbolTable(starts, ends, bytes, nameStarts, truncated);
  }

  static readonly EMPTY = SymbolTable.of(new Float64Array(0), new Float64Array(0), []);

  get size(): number {
    return this.starts.length;
  }

  /** Name of symbol `i` (in address order). */
  name(i: number): string {
    return utf8.decode(this.nameBytes.subarray(this.nameStarts[i], this.nameStarts[i + 1]));
  }

  /** Every name, in address order (for tests and small tables). */
  get names(): string[] {
    return Array.from({ length: this.size }, (_, i) => this.name(i));
  }

  /**
   * The function containing ELF virtual address `vaddr`: the last symbol
   * starting at or below it, when `vaddr` lies within its size (a symbol of
   * size 0 reaches to the next one).
   */
  lookup(vaddr: number): string | undefined {
    const s = this.starts;
    let lo = 0;
    let hi = s.length - 1;
    if (hi < 0 || vaddr < s[0]) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (s[mid] <= vaddr) lo = mid;
      else hi = mid - 1;
    }
    return vaddr < this.ends[lo] ? this.name(lo) : undefined;
  }
}

export interface ParseSymbolsOptions {
  /** Function symbols kept at most (the rest are dropped; the table says so). Default 1,000,000. */
  maxSymbols?: number;
  /**
   * The file's sections: a symbol of size 0 (assembler labels such as _init)
   * then reaches at most to the end of its section, not over the PLT after it.
   */
  sections?: readonly SectionHeader[];
}

/**
 * Function symbols (STT_FUNC, STT_GNU_IFUNC; defined, non-zero address) of a
 * .symtab/.dynsym section's bytes and its string table. Aliases (one address,
 * several names) keep one name: the largest symbol, then global over weak over
 * local, then the name with fewest leading underscores.
 */
export function parseSymbols(
  symtab: Uint8Array,
  strtab: Uint8Array,
  littleEndian: boolean,
  opts: ParseSymbolsOptions = {},
): SymbolTable {
  const max = opts.maxSymbols ?? 1_000_000;
  const v = view(symtab);
  const le = littleEndian;
  const n = Math.floor(symtab.length / SYM_SIZE);
  // Fields of the function symbols, read once (a comparator reading 64-bit fields is ~10x slower).
  const offs: number[] = [];
  const starts: number[] = [];
  const sizes: number[] = [];
  const ranks: number[] = [];
  let truncated = false;
  for (let i = 1; i < n; i++) { // entry 0 is the null symbol
    const o = i * SYM_SIZE;
    const type = symtab[o + 4] & 0xf;
    if (type !== STT_FUNC && type !== STT_GNU_IFUNC) continue;
    if (v.getUint16(o + 6, le) === SHN_UNDEF) continue;
    const start = u64(v, o + 8, le);
    if (start === 0) continue;
    if (offs.length >= max) {
      truncated = true;
      break;
    }
    offs.push(o);
    starts.push(start);
    sizes.push(u64(v, o + 16, le));
    ranks.push(BINDING_RANK[symtab[o + 4] >> 4] ?? 3);
  }
  const order = Uint32Array.from(offs.keys());
  order.sort((a, b) => starts[a] - starts[b] || sizes[b] - sizes[a] || ranks[a] - ranks[b]);
  // A name: its [start, end) in the string table.
  const nameAt = (k: number): [number, number] => {
    const off = Math.min(v.getUint32(offs[k], le), strtab.length);
    const end = strtab.indexOf(0, off);
    return [off, end < 0 ? strtab.length : end];
  };
  const underscores = ([a, b]: [number, number]) => {
    let i = a;
    while (i < b && strtab[i] === 0x5f) i++;
    return i - a;
  };
  const keptStarts: number[] = [];
  const keptSizes: number[] = [];
  const limits: number[] = []; // section end, for symbols of size 0
  const names: [number, number][] = [];
  let kept = -1; // the symbol kept last
  for (const k of order) {
    if (kept >= 0 && starts[kept] === starts[k]) {
      // An alias of the symbol just kept: at the same size and binding rank, the plainer name wins.
      if (sizes[k] === sizes[kept] && ranks[k] === ranks[kept]) {
        const name = nameAt(k);
        if (underscores(name) < underscores(names[names.length - 1])) names[names.length - 1] = name;
      }
      continue;
    }
    kept = k;
    keptStarts.push(starts[k]);
    keptSizes.push(sizes[k]);
    const sec = opts.sections?.[v.getUint16(offs[k] + 6, le)];
    limits.push(sec && sec.size > 0 ? sec.addr + sec.size : Infinity);
    names.push(nameAt(k));
  }
  const st = Float64Array.from(keptStarts);
  const ends = new Float64Array(st.length);
  for (let i = 0; i < st.length; i++) {
    const next = i + 1 < st.length ? st[i + 1] : Infinity;
    ends[i] = keptSizes[i] > 0 ? st[i] + keptSizes[i] : Math.min(next, limits[i]);
  }
  const nameStarts = new Uint32Array(names.length + 1);
  for (let i = 0; i < names.length; i++) nameStarts[i + 1] = nameStarts[i] + names[i][1] - names[i][0];
  const nameBytes = new Uint8Array(nameStarts[names.length]);
  names.forEach(([a, b], i) => nameBytes.set(strtab.subarray(a, b), nameStarts[i]));
  return new SymbolTable(st, ends, nameBytes, nameStarts, truncated);
}

/** What symbolizing addresses in one ELF file needs. */
export interface ElfSymbols {
  readonly type: number;
  readonly buildId?: string;
  /** PT_LOAD segments: file offset → virtual address. */
  readonly loads: readonly ProgramHeader[];
  readonly symbols: SymbolTable;
  /** Which table the symbols came from: ".symtab", ".dynsym" or "" (none). */
  readonly source: string;
}

/**
 * Parses a whole ELF file held in memory (tests, small files); the agent
 * reads the same parts piecewise (src/profile/symbolize.ts).
 */
export function parseElf(bytes: Uint8Array, opts: ParseSymbolsOptions = {}): ElfSymbols {
  const part = ([off, len]: [number, number]) => {
    if (off + len > bytes.length) throw new ElfError(`range [${off}, +${len}) outside the file`);
    return bytes.subarray(off, off + len);
  };
  const h = parseElfHeader(bytes.subarray(0, ELF_HEADER_SIZE));
  const phdrs = parseProgramHeaders(h, part(programHeadersRange(h)));
  let sections: SectionHeader[] = [];
  if (h.shoff !== 0) {
    const first = parseSectionHeaders(h, part(sectionHeadersRange(h, 1)), 1)[0];
    const { count, strndx } = sectionCounts(h, first);
    sections = parseSectionHeaders(h, part(sectionHeadersRange(h, count)), count);
    const names = sections[strndx];
    if (names && names.type !== SHT_NOBITS) nameSections(sections, part([names.offset, names.size]));
  }
  let buildId: string | undefined;
  for (const r of noteRanges(phdrs, sections)) {
    buildId = parseBuildId(part(r), h.littleEndian);
    if (buildId) break;
  }
  const sym = chooseSymbolSection(sections);
  const str = sym ? sections[sym.link] : undefined;
  const symbols = sym && str && str.type !== SHT_NOBITS
    ? parseSymbols(part([sym.offset, sym.size]), part([str.offset, str.size]), h.littleEndian, {
      ...opts,
      sections,
    })
    : SymbolTable.EMPTY;
  return {
    type: h.type,
    buildId,
    loads: phdrs.filter((p) => p.type === PT_LOAD),
    symbols,
    source: sym?.name ?? "",
  };
}
