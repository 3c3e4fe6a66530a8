// The ELF parser against real binaries (a C program compiled here as PIE,
// non-PIE and stripped; the system's libc and /bin/ls), checked against
// binutils (nm, readelf), and against hand-made bytes for the edge cases.

import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import { buildWorkload, workloadSkipReason } from "../../testing/profile_workload.ts";
import {
  ELF_HEADER_SIZE,
  ElfError,
  ET_DYN,
  ET_EXEC,
  fileOffsetToVaddr,
  parseBuildId,
  parseElf,
  parseElfHeader,
  parseSymbols,
  PT_LOAD,
  type SectionHeader,
  SymbolTable,
} from "./elf.ts";

const dec = new TextDecoder();

function run(cmd: string, args: string[]): string {
  const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(r.stderr)}`);
  return dec.decode(r.stdout);
}

/** nm -S: name → [address, size] of defined text symbols. */
function nmSymbols(path: string, dynamic = false): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const line of run("nm", [...(dynamic ? ["-D"] : []), "-S", "--defined-only", path]).split("\n")) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) [TtWwi] (\S+)$/.exec(line);
    if (m) out.set(m[3].replace(/@.*$/, ""), [parseInt(m[1], 16), parseInt(m[2], 16)]);
  }
  return out;
}

function readelfBuildId(path: string): string | undefined {
  return /Build ID: ([0-9a-f]+)/.exec(run("readelf", ["-n", path]))?.[1];
}

const skip = workloadSkipReason();

Deno.test({
  name: "parseElf: a PIE C program: ET_DYN, build-id as readelf says, .symtab functions where nm puts them",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-elf-" });
    try {
      const bin = await buildWorkload(dir);
      const elf = parseElf(Deno.readFileSync(bin));
      assertEquals(elf.type, ET_DYN);
      assertEquals(elf.source, ".symtab");
      assertEquals(elf.buildId, readelfBuildId(bin));
      assert(elf.loads.length >= 2 && elf.loads.every((p) => p.type === PT_LOAD));
      const nm = nmSymbols(bin);
      for (const name of ["hot_leaf", "hot_middle", "main", "sys_loop", "tick"]) {
        const [addr, size] = nm.get(name)!;
        assertEquals(elf.symbols.lookup(addr), name, `${name} at its start`);
        assertEquals(elf.symbols.lookup(addr + size - 1), name, `${name} at its last byte`);
      }
      // Past the end of main, in the gap before the next function, nothing: no wrong name.
      const [mainAt, mainSize] = nm.get("main")!;
      const after = elf.symbols.lookup(mainAt + mainSize);
      assert(after !== "main", `main's end resolved to ${after}`);
      // Text: file offset = vaddr for the executable segment of a gcc PIE (p_offset == p_vaddr).
      const text = elf.loads.find((p) => (p.flags & 1) !== 0)!;
      assertEquals(fileOffsetToVaddr(elf.loads, text.offset + 16), text.vaddr + 16);
      assertEquals(fileOffsetToVaddr(elf.loads, 1 << 30), undefined);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "parseElf: non-PIE (ET_EXEC) and stripped builds: .dynsym or nothing, build-id kept",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-elf-" });
    try {
      const fixed = await buildWorkload(dir, ["-no-pie"], "fixed");
      const elf = parseElf(Deno.readFileSync(fixed));
      assertEquals(elf.type, ET_EXEC);
      const [addr] = nmSymbols(fixed).get("hot_leaf")!;
      assert(addr >= 0x400000, `non-PIE text at its link address (0x${addr.toString(16)})`);
      assertEquals(elf.symbols.lookup(addr + 4), "hot_leaf");

      const stripped = `${dir}/stripped`;
      Deno.copyFileSync(await buildWorkload(dir), stripped);
      run("strip", [stripped]);
      const s = parseElf(Deno.readFileSync(stripped));
      assertEquals(s.buildId, readelfBuildId(stripped));
      assert(s.source === ".dynsym" || s.source === "", `stripped table: ${s.source}`);
      assertEquals(s.symbols.lookup(nmSymbols(fixed).get("hot_leaf")![0]), undefined);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** The system's C library, as the dynamic loader would find it. */
function systemLibc(): string | undefined {
  for (
    const p of ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
  ) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  return undefined;
}

Deno.test("parseElf: the system libc (.dynsym) and /bin/ls resolve as nm -D says", () => {
  const libc = systemLibc();
  assert(libc, "no libc.so.6 found");
  const elf = parseElf(Deno.readFileSync(libc));
  assertEquals(elf.type, ET_DYN);
  assertEquals(elf.buildId, readelfBuildId(libc));
  assert(elf.symbols.size > 1000, `${elf.symbols.size} functions in ${elf.source}`);
  const nm = nmSymbols(libc, elf.source === ".dynsym");
  let checked = 0;
  for (const name of ["getppid", "write", "malloc", "qsort", "syscall"]) {
    const at = nm.get(name);
    if (!at) continue;
    const got = elf.symbols.lookup(at[0] + 1);
    // An alias of the same function may be chosen (__getppid for getppid): same address either way.
    const aliases = [...nm].filter(([, [a]]) => a === at[0]).map(([n]) => n);
    assert(got !== undefined && aliases.includes(got), `${name}: got ${got}, aliases ${aliases}`);
    checked++;
  }
  assert(checked >= 4, `only ${checked} libc functions checked`);

  const ls = parseElf(Deno.readFileSync("/bin/ls"));
  assertEquals(ls.buildId, readelfBuildId("/bin/ls"));
  assert(ls.loads.length > 0);
});

Deno.test("parseElfHeader refuses what is not ELF64", () => {
  assertThrows(() => parseElfHeader(new TextEncoder().encode("#!/bin/sh\necho hi\n")), ElfError);
  const h32 = new Uint8Array(ELF_HEADER_SIZE);
  h32.set([0x7f, 0x45, 0x4c, 0x46, 1, 1]);
  assertThrows(() => parseElfHeader(h32), /ELF64 only/);
  const short = new Uint8Array(20);
  short.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
  assertThrows(() => parseElfHeader(short), /truncated/);
  // Big-endian headers parse too.
  const be = new Uint8Array(ELF_HEADER_SIZE);
  be.set([0x7f, 0x45, 0x4c, 0x46, 2, 2]);
  new DataView(be.buffer).setUint16(16, ET_DYN, false);
  new DataView(be.buffer).setUint16(56, 3, false);
  const h = parseElfHeader(be);
  assertEquals([h.littleEndian, h.type, h.phnum], [false, ET_DYN, 3]);
});

/** Notes: [name, type, desc] each, 4-byte aligned. */
function notes(list: [string, number, number[]][]): Uint8Array {
  const parts: number[] = [];
  const pad = (a: number[]) => {
    while (a.length % 4 !== 0) a.push(0);
  };
  for (const [name, type, desc] of list) {
    const n = [...new TextEncoder().encode(name), 0];
    const head = new Uint8Array(12);
    const v = new DataView(head.buffer);
    v.setUint32(0, n.length, true);
    v.setUint32(4, desc.length, true);
    v.setUint32(8, type, true);
    const body = [...n];
    pad(body);
    const d = [...desc];
    pad(d);
    parts.push(...head, ...body, ...d);
  }
  return Uint8Array.from(parts);
}

Deno.test("parseBuildId: the GNU build-id note among others; garbage is undefined", () => {
  const id = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03];
  assertEquals(
    parseBuildId(notes([["GNU", 1, [1, 2, 3, 4]], ["Go", 3, [9]], ["GNU", 3, id]]), true),
    "deadbeef010203",
  );
  assertEquals(parseBuildId(notes([["GNU", 1, [1, 2, 3, 4]]]), true), undefined);
  const bad = notes([["GNU", 3, id]]);
  new DataView(bad.buffer).setUint32(4, 1 << 20, true); // descsz past the end
  assertEquals(parseBuildId(bad, true), undefined);
  assertEquals(parseBuildId(new Uint8Array(5), true), undefined);
});

/** A .symtab of [name, value, size, type, bind, shndx] and its string table. */
function symtab(syms: [string, number, number, number, number, number][]): [Uint8Array, Uint8Array] {
  const strs: number[] = [0];
  const tab = new Uint8Array(24 * (syms.length + 1)); // entry 0: the null symbol
  const v = new DataView(tab.buffer);
  syms.forEach(([name, value, size, type, bind, shndx], i) => {
    const o = 24 * (i + 1);
    v.setUint32(o, strs.length, true);
    strs.push(...new TextEncoder().encode(name), 0);
    tab[o + 4] = (bind << 4) | type;
    v.setUint16(o + 6, shndx, true);
    v.setBigUint64(o + 8, BigInt(value), true);
    v.setBigUint64(o + 16, BigInt(size), true);
  });
  return [tab, Uint8Array.from(strs)];
}

const FUNC = 2, OBJECT = 1, IFUNC = 10;
const LOCAL = 0, GLOBAL = 1, WEAK = 2;

Deno.test("parseSymbols: functions only, sorted; aliases keep one name; size-0 symbols stop at their section's end", () => {
  const [tab, str] = symtab([
    ["zeta", 0x3000, 0x10, FUNC, GLOBAL, 1],
    ["a_var", 0x1000, 0x100, OBJECT, GLOBAL, 1], // not a function
    ["undefined_import", 0, 0, FUNC, GLOBAL, 0],
    ["__getppid", 0x2000, 0x20, FUNC, GLOBAL, 1],
    ["getppid", 0x2000, 0x20, FUNC, WEAK, 1], // weak alias: the global one stays
    ["__memcpy", 0x2100, 0x40, IFUNC, GLOBAL, 1],
    ["memcpy", 0x2100, 0x40, IFUNC, GLOBAL, 1], // same rank: fewer underscores win
    ["_init", 0x1000, 0, FUNC, GLOBAL, 2], // size 0 in .init, which ends at 0x1018
    ["static_helper", 0x2200, 0x8, FUNC, LOCAL, 1],
  ]);
  const sections = [
    { type: 0, addr: 0, size: 0 },
    { type: 1, addr: 0x2000, size: 0x2000 },
    { type: 1, addr: 0x1000, size: 0x18 },
  ].map((s) => ({ ...s, nameOffset: 0, name: "", offset: 0, link: 0, entsize: 0 } as SectionHeader));
  const t = parseSymbols(tab, str, true, { sections });
  assertEquals(t.names, ["_init", "__getppid", "memcpy", "static_helper", "zeta"]);
  assertEquals(t.lookup(0x0fff), undefined);
  assertEquals(t.lookup(0x1017), "_init");
  assertEquals(t.lookup(0x1018), undefined, "not past .init (the PLT follows)");
  assertEquals(t.lookup(0x201f), "__getppid");
  assertEquals(t.lookup(0x2020), undefined);
  assertEquals(t.lookup(0x213f), "memcpy");
  assertEquals(t.lookup(0x3008), "zeta");
  assertEquals(t.lookup(0x3010), undefined);
  assertEquals(t.truncated, false);

  const capped = parseSymbols(tab, str, true, { maxSymbols: 2 });
  assertEquals(capped.truncated, true);
  assertEquals(capped.size, 2);
  assertEquals(SymbolTable.EMPTY.lookup(0x1000), undefined);
});
