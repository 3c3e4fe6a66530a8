// The symbolizer on live processes: a PIE C program compiled here and the
// system libc (addresses computed from nm and the process's maps, the way a
// sampled stack holds them), a deleted binary (through map_files), a JIT map,
// the vDSO, an exited process, the cache, and kernel frames from kallsyms.

import { assert, assertEquals } from "../../testing/assert.ts";
import {
  buildWorkload,
  startWorkload,
  stopWorkload,
  workloadSkipReason,
} from "../../testing/profile_workload.ts";
import { kernelSymbols } from "../bpf/ksyms.ts";
import { parseElf } from "./elf.ts";
import { type Mapping, parseProcMaps } from "./maps.ts";
import { Symbolizer, UNKNOWN_FRAME } from "./symbolize.ts";

const dec = new TextDecoder();
const skip = workloadSkipReason();
const rootSkip = skip ?? (Deno.uid() !== 0 ? "needs root (map_files, kallsyms addresses)" : undefined);
if (rootSkip) console.warn(`symbolize_test: some tests ignored: ${rootSkip}`);

/** nm: name → ELF virtual address of defined functions of `path`. */
function nm(path: string, dynamic = false): Map<string, number> {
  const r = new Deno.Command("nm", {
    args: [...(dynamic ? ["-D"] : []), "--defined-only", path],
    stdout: "piped",
  })
    .outputSync();
  const out = new Map<string, number>();
  for (const line of dec.decode(r.stdout).split("\n")) {
    const m = /^([0-9a-f]+) [TtWwi] (\S+)$/.exec(line);
    if (m) out.set(m[2].replace(/@.*$/, ""), parseInt(m[1], 16));
  }
  return out;
}

/** Where ELF address `vaddr` of file `path` sits in a process with `maps`. */
function runtimeAddress(path: string, maps: Mapping[], vaddr: number): bigint {
  const elf = parseElf(Deno.readFileSync(path));
  const seg = elf.loads.find((p) => vaddr >= p.vaddr && vaddr < p.vaddr + p.filesz);
  if (!seg) throw new Error(`0x${vaddr.toString(16)} is in no PT_LOAD of ${path}`);
  const fileOffset = vaddr - seg.vaddr + seg.offset;
  const real = Deno.realPathSync(path);
  const m = maps.find((x) =>
    (x.path === real || x.path === path) && fileOffset >= x.offset && fileOffset < x.offset + x.end - x.start
  );
  if (!m) throw new Error(`file offset 0x${fileOffset.toString(16)} of ${path} is not mapped`);
  return BigInt(m.start + fileOffset - m.offset);
}

async function mapsOf(pid: number): Promise<Mapping[]> {
  // The dynamic loader maps libraries after exec: wait until libc is there.
  for (let i = 0; i < 100; i++) {
    const maps = parseProcMaps(await Deno.readTextFile(`/proc/${pid}/maps`));
    if (maps.some((m) => /\/libc[.-]/.test(m.path))) return maps;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} never mapped libc`);
}

function libcPath(maps: Mapping[]): string {
  const m = maps.find((x) => /\/libc[.-]/.test(x.path));
  if (!m) throw new Error("no libc mapping");
  return m.path;
}

Deno.test({
  name: "userStacks: a PIE program's functions and libc's, innermost first; return addresses inside the call",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-sym-" });
    const bin = await buildWorkload(dir);
    const child = startWorkload(bin, "spin", { seconds: 30 });
    try {
      const maps = await mapsOf(child.pid);
      const syms = nm(bin);
      const at = (name: string, plus: number) => runtimeAddress(bin, maps, syms.get(name)! + plus);
      const libc = libcPath(maps);
      const libcSyms = nm(libc, true);
      const getppid = runtimeAddress(libc, maps, libcSyms.get("getppid")! + 2);
      // A return address just past a call that ends its function belongs to the caller: looked up at addr - 1.
      const next = [...syms.values()].filter((a) => a > syms.get("hot_leaf")!).sort((a, b) => a - b)[0];
      const atEnd = runtimeAddress(bin, maps, next);
      const s = new Symbolizer();
      const [stack, edge, leafOnly] = await s.userStacks(child.pid, [
        [getppid, at("hot_leaf", 5), at("hot_middle", 9), at("main", 30)],
        [getppid, atEnd],
        [atEnd],
      ]);
      assert(["getppid", "__getppid"].includes(stack[0]), `libc frame: ${stack[0]}`);
      assertEquals(stack.slice(1), ["hot_leaf", "hot_middle", "main"]);
      assertEquals(edge[1], "hot_leaf", "return address at the next function's start");
      assert(leafOnly[0] !== "hot_leaf", "the interrupted address itself is not adjusted");
      // Outside any mapping (and no JIT map): unknown.
      const [[none]] = await s.userStacks(child.pid, [[0x10n]]);
      assertEquals(none, UNKNOWN_FRAME);
      // Cached: a second process of the same files parses nothing new.
      const parsed = s.stats.filesParsed;
      assert(parsed >= 2, `parsed ${parsed}`);
      const again = await s.userStacks(child.pid, [[at("hot_leaf", 5)]]);
      assertEquals(again, [["hot_leaf"]]);
      assertEquals(s.stats.filesParsed, parsed);
      assert(s.stats.cacheHits > 0);
      // Within one capture, a second process of the same files opens none of them again.
      const twin = startWorkload(bin, "spin", { seconds: 30 });
      try {
        const twinMaps = await mapsOf(twin.pid);
        const twinLeaf = runtimeAddress(bin, twinMaps, syms.get("hot_leaf")! + 5);
        const seen = new Map();
        await s.userStacks(child.pid, [[getppid, at("hot_leaf", 5)]], seen);
        const opened = s.stats.cacheHits + s.stats.filesParsed;
        const libcTwin = runtimeAddress(libc, twinMaps, libcSyms.get("getppid")! + 2);
        const [[l, h]] = await s.userStacks(twin.pid, [[libcTwin, twinLeaf]], seen);
        assertEquals([h, s.stats.cacheHits + s.stats.filesParsed], ["hot_leaf", opened]);
        assert(["getppid", "__getppid"].includes(l));
      } finally {
        await stopWorkload(twin);
      }
    } finally {
      await stopWorkload(child);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "userStacks: a deleted binary resolves through map_files; a process gone gives [unknown]",
  ignore: rootSkip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-sym-" });
    const bin = await buildWorkload(dir);
    const child = startWorkload(bin, "spin", { seconds: 30 });
    let exited = false;
    try {
      const maps = await mapsOf(child.pid);
      const leaf = runtimeAddress(bin, maps, nm(bin).get("hot_leaf")! + 5);
      await Deno.remove(bin);
      const deleted = parseProcMaps(await Deno.readTextFile(`/proc/${child.pid}/maps`));
      assert(deleted.some((m) => m.deleted && m.path === bin), "maps shows the binary deleted");
      const s = new Symbolizer();
      assertEquals(await s.userStacks(child.pid, [[leaf]]), [["hot_leaf"]]);
      await stopWorkload(child);
      exited = true;
      assertEquals(await new Symbolizer().userStacks(child.pid, [[leaf, leaf]]), [[
        UNKNOWN_FRAME,
        UNKNOWN_FRAME,
      ]]);
    } finally {
      if (!exited) await stopWorkload(child);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "userStacks: an exited process resolves through the executable maps kept while it ran (host paths)",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-sym-" });
    const bin = await buildWorkload(dir);
    const child = startWorkload(bin, "spin", { seconds: 30 });
    try {
      const maps = await mapsOf(child.pid);
      const leaf = runtimeAddress(bin, maps, nm(bin).get("hot_leaf")! + 5);
      const s = new Symbolizer();
      const kept = s.executableMaps(child.pid);
      assert(kept && kept.length > 0 && kept.every((m) => m.perms[2] === "x"));
      await stopWorkload(child);
      assertEquals(await s.userStacks(child.pid, [[leaf, 0x10n]], new Map(), kept), [[
        "hot_leaf",
        UNKNOWN_FRAME,
      ]]);
      assertEquals(s.executableMaps(child.pid), undefined);
    } finally {
      await stopWorkload(child);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "userStacks: anonymous code resolves through /tmp/perf-<pid>.map; the vDSO through its own ELF image",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-sym-" });
    const bin = await buildWorkload(dir);
    const child = startWorkload(bin, "spin", { seconds: 30 });
    const perfMap = `/tmp/perf-${child.pid}.map`;
    try {
      const maps = await mapsOf(child.pid);
      const anon = maps.find((m) =>
        m.inode === 0 && (m.path === "" || m.path === "[heap]" || m.path === "[stack]")
      );
      assert(anon, "an anonymous mapping");
      const jit = anon.start + 0x40;
      await Deno.writeTextFile(perfMap, `${jit.toString(16)} 20 JIT:hot_lambda\n`);
      const s = new Symbolizer();
      const [[named, outside]] = await s.userStacks(child.pid, [[BigInt(jit + 8), BigInt(jit + 0x21)]]);
      assertEquals(named, "JIT:hot_lambda");
      assertEquals(outside, UNKNOWN_FRAME, "past the entry's size (looked up at addr - 1)");

      const vdso = maps.find((m) => m.path === "[vdso]");
      if (vdso) {
        using mem = await Deno.open(`/proc/${child.pid}/mem`);
        await mem.seek(vdso.start, Deno.SeekMode.Start);
        const image = new Uint8Array(vdso.end - vdso.start);
        let got = 0;
        while (got < image.length) got += (await mem.read(image.subarray(got))) ?? image.length;
        const elf = parseElf(image);
        const names = elf.symbols.names;
        const fn = names.findIndex((n) => /clock_gettime/.test(n));
        assert(fn >= 0, `vdso functions: ${names}`);
        const addr = BigInt(
          vdso.start + elf.symbols.starts[fn] - elf.loads[0].vaddr + elf.loads[0].offset + 1,
        );
        assertEquals(await s.userStacks(child.pid, [[addr]]), [[names[fn]]]);
      }
    } finally {
      await Deno.remove(perfMap).catch(() => {});
      await stopWorkload(child);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "kernelStack: kallsyms names, return addresses looked up inside the call, [unknown] below the text",
  ignore: rootSkip !== undefined,
  fn() {
    const k = kernelSymbols();
    const range = k.range("do_syscall_64");
    assert(range, "do_syscall_64 in kallsyms");
    const [start, end] = range;
    const s = new Symbolizer();
    assertEquals(s.kernelStack([start + 4n, end - 1n, 0x10n]), [
      "do_syscall_64",
      "do_syscall_64",
      UNKNOWN_FRAME,
    ]);
    // The second frame is a return address: `end` itself (the next function's first byte) is still the caller.
    assertEquals(s.kernelStack([start, end])[1], "do_syscall_64");
  },
});
