// Turns the return addresses of sampled stacks into function names.
//
// Kernel frames: /proc/kallsyms (src/bpf/ksyms.ts, loaded once per process).
//
// User frames: /proc/<pid>/maps says which file backs an address and at which
// file offset; the file's PT_LOAD segments turn that offset into an ELF
// virtual address (PIE executables and shared objects load anywhere), and its
// .symtab (else .dynsym, else a debug file under /usr/lib/debug/.build-id)
// names the function. Files are opened through /proc/<pid>/root, so a
// container's own files resolve; when that path holds another file (an
// upgrade replaced it, an overlay shows another inode) or none, through
// /proc/<pid>/map_files/, which is the very file mapped. Only the ELF parts
// needed are read (headers, notes, one symbol table), every read is bounded,
// and parsed tables are cached by build-id, else by (dev, inode, mtime, size).
// Anonymous executable memory (JITs) resolves through /tmp/perf-<pid>.map,
// read in the process's own mount and pid namespaces.
//
// A process that exits before its stacks are symbolized has no maps left: the
// profiler keeps the executable mappings of each process it sees while it
// samples, and an exited process's files then resolve through their host
// paths when the inode still matches (host processes; a container's root is
// gone with its last process), else its user frames are "[unknown]". Stacks
// come from frame pointers, so code built without them gives short user
// stacks.

import { type KernelSymbols, kernelSymbols } from "../bpf/ksyms.ts";
import { MAX_PROC_FILE_BYTES } from "../host/fs.ts";
import { MiB, readTextFileBounded, readTextFileBoundedSync } from "../io/read.ts";
import {
  chooseSymbolSection,
  ELF_HEADER_SIZE,
  ElfError,
  type ElfSymbols,
  ET_EXEC,
  fileOffsetToVaddr,
  nameSections,
  noteRanges,
  parseBuildId,
  parseElf,
  parseElfHeader,
  parseProgramHeaders,
  parseSectionHeaders,
  parseSymbols,
  programHeadersRange,
  PT_LOAD,
  sectionCounts,
  type SectionHeader,
  sectionHeadersRange,
  SHT_NOBITS,
  SHT_SYMTAB,
  SymbolTable,
} from "./elf.ts";
import {
  baseName,
  findMapping,
  isFileBacked,
  type Mapping,
  namespacePid,
  parsePerfMap,
  parseProcMaps,
} from "./maps.ts";

export const UNKNOWN_FRAME = "[unknown]";
const MAX_KERNEL_NAMES = 200_000;

export interface SymbolizerOptions {
  /** Default "/proc". */
  procRoot?: string;
  /** Default: the host's kallsyms (src/bpf/ksyms.ts). */
  kernel?: () => KernelSymbols;
  /** ELF files larger than this are not read (their frames show the module name). Default 512 MiB. */
  maxElfBytes?: number;
  /** A symbol or string table larger than this is not read (it is read whole, once). Default 64 MiB. */
  maxTableBytes?: number;
  /** Function symbols kept per file. Default 1,000,000. */
  maxSymbols?: number;
  /**
   * Symbols held by the cache across captures, over all files (~45 bytes each: names stay UTF-8 bytes).
   * Default 1,000,000; the least recently used files go first.
   */
  maxCachedSymbols?: number;
  /** Perf JIT maps larger than this are not read. Default 64 MiB. */
  maxPerfMapBytes?: number;
  /** Debug files by build-id: <dir>/ab/cdef….debug. Default /usr/lib/debug/.build-id; "" turns it off. */
  debugDir?: string;
  /** Files read at once. Default 8. */
  concurrency?: number;
}

export interface SymbolizerStats {
  /** ELF files parsed (cache misses), and answers from the cache. */
  filesParsed: number;
  cacheHits: number;
  /** Files that could not be used (unreadable, not ELF, over a limit), by why. */
  fileErrors: number;
  /** Processes whose maps could not be read (exited). */
  processesGone: number;
  cachedFiles: number;
  cachedSymbols: number;
}

/** A failed file is cached too (empty table), so it is not read again for every frame or capture. */
const NO_SYMBOLS: ElfSymbols = { type: 0, loads: [], symbols: SymbolTable.EMPTY, source: "" };

export class Symbolizer {
  readonly #proc: string;
  readonly #kernel: () => KernelSymbols;
  readonly #maxElfBytes: number;
  readonly #maxTableBytes: number;
  readonly #maxSymbols: number;
  readonly #maxCachedSymbols: number;
  readonly #maxPerfMapBytes: number;
  readonly #debugDir: string;
  readonly #concurrency: number;
  // File identity → symbols, least recently used first; build-id → symbols.
  readonly #byFile = new Map<string, ElfSymbols>();
  readonly #byBuildId = new Map<string, ElfSymbols>();
  #cachedSymbols = 0;
  #vdso: ElfSymbols | undefined;
  readonly #kernelNames = new Map<bigint, string>();
  readonly #stats = { filesParsed: 0, cacheHits: 0, fileErrors: 0, processesGone: 0 };

  constructor(opts: SymbolizerOptions = {}) {
    this.#proc = opts.procRoot ?? "/proc";
    this.#kernel = opts.kernel ?? kernelSymbols;
    this.#maxElfBytes = opts.maxElfBytes ?? 512 * MiB;
    this.#maxTableBytes = opts.maxTableBytes ?? 64 * MiB;
    this.#maxSymbols = opts.maxSymbols ?? 1_000_000;
    this.#maxCachedSymbols = opts.maxCachedSymbols ?? 1_000_000;
    this.#maxPerfMapBytes = opts.maxPerfMapBytes ?? 64 * MiB;
    this.#debugDir = opts.debugDir ?? "/usr/lib/debug/.build-id";
    this.#concurrency = Math.max(1, opts.concurrency ?? 8);
  }

  get stats(): SymbolizerStats {
    return { ...this.#stats, cachedFiles: this.#byFile.size, cachedSymbols: this.#cachedSymbols };
  }

  /**
   * Names of kernel return addresses, innermost first. Addresses after the
   * first are return addresses: looked up at addr - 1, inside the call.
   */
  kernelStack(addrs: readonly bigint[]): string[] {
    const k = this.#kernel();
    // Stacks share most frames: each address is looked up once (kernel text does not move).
    if (this.#kernelNames.size > MAX_KERNEL_NAMES) this.#kernelNames.clear();
    return addrs.map((a, i) => {
      const at = i === 0 ? a : a - 1n;
      let name = this.#kernelNames.get(at);
      if (name === undefined) this.#kernelNames.set(at, name = k.resolve(at)?.name ?? UNKNOWN_FRAME);
      return name;
    });
  }

  /**
   * Names of the user stacks of process `pid`, innermost first, each stack
   * as given. A frame with no symbol shows its module ("[libc.so.6]"), a
   * frame outside any file "[unknown]". `seen` carries the files resolved
   * for other processes of the same capture, by the device and inode their
   * maps show: libc in fifty processes is opened once.
   */
  async userStacks(
    pid: number,
    stacks: readonly (readonly bigint[])[],
    seen: Map<string, ElfSymbols> = new Map(),
    snapshot?: readonly Mapping[],
  ): Promise<string[][]> {
    let maps: readonly Mapping[];
    let gone = false;
    try {
      maps = parseProcMaps(readProcText(`${this.#proc}/${pid}/maps`));
    } catch {
      this.#stats.processesGone++;
      if (!snapshot) return stacks.map((s) => s.map(() => UNKNOWN_FRAME));
      // Exited: its maps as read while it ran; its files by their paths on the host, when the inode matches.
      maps = snapshot;
      gone = true;
    }
    // Where every frame lies; then each file needed is loaded once.
    const where = stacks.map((s) =>
      s.map((a, i) => {
        const addr = Number(i === 0 ? a : a - 1n);
        return { addr, map: findMapping(maps, addr) };
      })
    );
    const files = new Map<string, Mapping>();
    let needPerfMap = false;
    let needVdso = false;
    for (const s of where) {
      for (const f of s) {
        if (f.map && isFileBacked(f.map)) files.set(fileKey(f.map), f.map);
        else if (f.map?.path === "[vdso]") needVdso = true;
        else if (f.map?.path !== "[vsyscall]") needPerfMap = true;
      }
    }
    const elves = new Map<string, ElfSymbols>();
    await pool([...files], this.#concurrency, async ([key, m]) => {
      const inode = `${m.dev}:${m.inode}`;
      let elf = seen.get(inode);
      if (!elf) seen.set(inode, elf = await this.#mapped(pid, m, gone));
      elves.set(key, elf);
    });
    const perfMap = needPerfMap && !gone ? await this.#perfMap(pid) : undefined;
    const vdso = needVdso && !gone ? await this.#vdsoSymbols(pid, maps) : this.#vdso;
    return where.map((s) =>
      s.map(({ addr, map }) => {
        if (map && isFileBacked(map)) return fileFrame(addr, map, elves.get(fileKey(map)) ?? NO_SYMBOLS);
        if (map?.path === "[vdso]") return vdso ? vdsoFrame(addr, map, vdso) : "[vdso]";
        if (map?.path === "[vsyscall]") return "[vsyscall]";
        return perfMap?.lookup(addr) ?? UNKNOWN_FRAME;
      })
    );
  }

  /**
   * The executable mappings of `pid` now (undefined when it is gone): kept
   * while a capture runs for processes that may exit before it ends.
   */
  executableMaps(pid: number): Mapping[] | undefined {
    try {
      const maps = parseProcMaps(readProcText(`${this.#proc}/${pid}/maps`));
      return maps.filter((m) => m.perms[2] === "x");
    } catch {
      return undefined;
    }
  }

  // The symbols of the file behind mapping `m` of `pid` (`gone`: the process exited, only the host path is left).
  async #mapped(pid: number, m: Mapping, gone = false): Promise<ElfSymbols> {
    const viaRoot = `${this.#proc}/${pid}/root${m.path}`;
    const viaMapFiles = `${this.#proc}/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
    // The root path only when it still holds the mapped inode; map_files is the mapped file itself.
    const candidates = gone ? [m.path] : m.deleted ? [viaMapFiles] : [viaRoot, viaMapFiles];
    for (const [i, path] of candidates.entries()) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true });
      } catch {
        continue;
      }
      try {
        const st = await file.stat();
        const last = i === candidates.length - 1 && !gone;
        if (st.ino !== null && st.ino !== m.inode && !last) continue;
        return await this.#load(file, st);
      } finally {
        file.close();
      }
    }
    this.#stats.fileErrors++;
    return NO_SYMBOLS;
  }

  async #load(file: Deno.FsFile, st: Deno.FileInfo): Promise<ElfSymbols> {
    const identity = `${st.dev}:${st.ino}:${st.mtime?.getTime() ?? 0}:${st.size}`;
    const hit = this.#byFile.get(identity);
    if (hit) {
      this.#byFile.delete(identity); // most recently used last
      this.#byFile.set(identity, hit);
      this.#stats.cacheHits++;
      return hit;
    }
    let elf: ElfSymbols;
    try {
      if (!st.isFile) throw new ElfError("not a regular file");
      if (st.size > this.#maxElfBytes) throw new ElfError(`larger than ${this.#maxElfBytes} bytes`);
      elf = await this.#parse(new FileParts(file, st.size));
      this.#stats.filesParsed++;
    } catch {
      this.#stats.fileErrors++;
      elf = NO_SYMBOLS;
    }
    this.#remember(identity, elf);
    return elf;
  }

  // Headers, notes (build-id), then one symbol table: the parts needed, each bounded.
  async #parse(f: FileParts): Promise<ElfSymbols> {
    const h = parseElfHeader(await f.read(0, ELF_HEADER_SIZE));
    const phdrs = parseProgramHeaders(h, await f.read(...programHeadersRange(h)));
    const loads = phdrs.filter((p) => p.type === PT_LOAD);
    let sections: SectionHeader[] = [];
    if (h.shoff !== 0 && h.shentsize > 0) {
      const first = parseSectionHeaders(h, await f.read(...sectionHeadersRange(h, 1)), 1)[0];
      const { count, strndx } = sectionCounts(h, first);
      sections = parseSectionHeaders(h, await f.read(...sectionHeadersRange(h, count)), count);
      const names = sections[strndx];
      if (names && names.type !== SHT_NOBITS) nameSections(sections, await f.read(names.offset, names.size));
    }
    let buildId: string | undefined;
    for (const [off, len] of noteRanges(phdrs, sections)) {
      if (len > 64 * 1024) continue;
      buildId = parseBuildId(await f.read(off, len), h.littleEndian);
      if (buildId) break;
    }
    if (buildId) {
      const known = this.#byBuildId.get(buildId);
      if (known) {
        this.#stats.cacheHits++;
        return known;
      }
    }
    let symbols = await this.#symbolsOf(f, sections, h.littleEndian);
    let source = symbols.size > 0 ? chooseSymbolSection(sections)?.name ?? "" : "";
    // Stripped (only .dynsym or nothing): a debug file of the same build has the full table.
    if (buildId && this.#debugDir !== "" && !sections.some((s) => s.type === SHT_SYMTAB)) {
      const debug = await this.#debugSymbols(buildId);
      if (debug && debug.size > symbols.size) {
        symbols = debug;
        source = "debug .symtab";
      }
    }
    return { type: h.type, buildId, loads, symbols, source };
  }

  async #symbolsOf(f: FileParts, sections: SectionHeader[], le: boolean): Promise<SymbolTable> {
    const sym = chooseSymbolSection(sections);
    const str = sym ? sections[sym.link] : undefined;
    if (!sym || !str || str.type === SHT_NOBITS || sym.type === SHT_NOBITS) return SymbolTable.EMPTY;
    if (sym.size > this.#maxTableBytes || str.size > this.#maxTableBytes) {
      throw new ElfError(`symbol table over ${this.#maxTableBytes} bytes`);
    }
    return parseSymbols(await f.read(sym.offset, sym.size), await f.read(str.offset, str.size), le, {
      maxSymbols: this.#maxSymbols,
      sections,
    });
  }

  async #debugSymbols(buildId: string): Promise<SymbolTable | undefined> {
    if (buildId.length < 3) return undefined;
    const path = `${this.#debugDir}/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch {
      return undefined;
    }
    try {
      const st = await file.stat();
      if (!st.isFile || st.size > this.#maxElfBytes) return undefined;
      const f = new FileParts(file, st.size);
      const h = parseElfHeader(await f.read(0, ELF_HEADER_SIZE));
      const first = parseSectionHeaders(h, await f.read(...sectionHeadersRange(h, 1)), 1)[0];
      const { count } = sectionCounts(h, first);
      const sections = parseSectionHeaders(h, await f.read(...sectionHeadersRange(h, count)), count);
      return await this.#symbolsOf(f, sections, h.littleEndian);
    } catch {
      return undefined;
    } finally {
      file.close();
    }
  }

  // A table known under two identities (a copy of a file, found by build-id) counts twice: an overestimate.
  #remember(identity: string, elf: ElfSymbols): void {
    this.#byFile.set(identity, elf);
    this.#cachedSymbols += elf.symbols.size;
    if (elf.buildId) this.#byBuildId.set(elf.buildId, elf);
    for (const [key, old] of this.#byFile) {
      if (this.#cachedSymbols <= this.#maxCachedSymbols || this.#byFile.size <= 1) break;
      this.#byFile.delete(key);
      this.#cachedSymbols -= old.symbols.size;
      if (old.buildId && this.#byBuildId.get(old.buildId) === old) this.#byBuildId.delete(old.buildId);
    }
  }

  // The process's JIT map, in its own mount namespace and named by its own pid.
  async #perfMap(pid: number): Promise<SymbolTable | undefined> {
    let nsPid = pid;
    try {
      nsPid = namespacePid(readProcText(`${this.#proc}/${pid}/status`)) ??
        pid;
    } catch {
      return undefined;
    }
    try {
      const path = `${this.#proc}/${pid}/root/tmp/perf-${nsPid}.map`;
      const st = await Deno.stat(path);
      if (!st.isFile) return undefined;
      return parsePerfMap(await readTextFileBounded(path, this.#maxPerfMapBytes));
    } catch {
      return undefined;
    }
  }

  // The vDSO is the kernel's: one image for every process, read once from a process's memory.
  async #vdsoSymbols(pid: number, maps: readonly Mapping[]): Promise<ElfSymbols | undefined> {
    if (this.#vdso) return this.#vdso;
    const m = maps.find((x) => x.path === "[vdso]");
    if (!m || m.end - m.start > 1 * MiB) return undefined;
    try {
      using file = await Deno.open(`${this.#proc}/${pid}/mem`, { read: true });
      const bytes = await new FileParts(file, m.end).read(m.start, m.end - m.start);
      this.#vdso = parseElf(bytes, { maxSymbols: 10_000 });
      return this.#vdso;
    } catch {
      return undefined;
    }
  }
}

/**
 * A /proc file of a process, read synchronously: procfs text is generated in
 * memory (it never waits on a disk), and a capture reads one or two per
 * process, where the async calls' round trips cost more than the reads.
 */
function readProcText(path: string): string {
  return readTextFileBoundedSync(path, MAX_PROC_FILE_BYTES);
}

// One key per file: its several mappings (text, data, ...) share one table.
function fileKey(m: Mapping): string {
  return `${m.dev}:${m.inode}:${m.path}`;
}

/** The frame of `addr` in file-backed mapping `m`: its function, else "[module]". */
function fileFrame(addr: number, m: Mapping, elf: ElfSymbols): string {
  const offset = addr - m.start + m.offset;
  const vaddr = fileOffsetToVaddr(elf.loads, offset) ?? (elf.type === ET_EXEC ? addr : undefined);
  return (vaddr === undefined ? undefined : elf.symbols.lookup(vaddr)) ?? `[${baseName(m.path)}]`;
}

/** The vDSO is mapped from its first byte: address - start is its file offset. */
function vdsoFrame(addr: number, m: Mapping, vdso: ElfSymbols): string {
  const vaddr = fileOffsetToVaddr(vdso.loads, addr - m.start);
  return (vaddr === undefined ? undefined : vdso.symbols.lookup(vaddr)) ?? "[vdso]";
}

/** Positioned, bounded reads of one open file. */
class FileParts {
  constructor(readonly file: Deno.FsFile, readonly size: number) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new ElfError(`range [${offset}, +${length}) outside the file's ${this.size} bytes`);
    }
    const buf = new Uint8Array(length);
    await this.file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await this.file.read(buf.subarray(got));
      if (n === null) throw new ElfError("file ended early");
      got += n;
    }
    return buf;
  }
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
