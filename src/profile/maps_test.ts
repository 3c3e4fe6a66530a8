// The /proc/<pid>/maps and perf JIT map parsers, on text as the kernel and
// JITs write it, and /proc/self/maps of this very process.

import { assert, assertEquals } from "../../testing/assert.ts";
import { baseName, findMapping, isFileBacked, namespacePid, parsePerfMap, parseProcMaps } from "./maps.ts";

const MAPS = `55d0c8a00000-55d0c8a02000 r--p 00000000 fd:01 1234567                    /usr/bin/cat
55d0c8a02000-55d0c8a07000 r-xp 00002000 fd:01 1234567                    /usr/bin/cat
55d0c9e3e000-55d0c9e5f000 rw-p 00000000 00:00 0                          [heap]
7f1e2c000000-7f1e2c021000 rwxp 00000000 00:00 0 
7f1e2d228000-7f1e2d3a2000 r-xp 00028000 08:02 2885                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2d500000-7f1e2d501000 r-xp 00001000 00:2a 77                         /tmp/my lib.so (deleted)
7ffd8e5f1000-7ffd8e5f5000 r--p 00000000 00:00 0                          [vvar]
7ffd8e5f5000-7ffd8e5f7000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
garbage line
`;

Deno.test("parseProcMaps: files, offsets, anonymous and pseudo mappings, deleted files, spaces in paths", () => {
  const maps = parseProcMaps(MAPS);
  assertEquals(maps.length, 9);
  assertEquals(maps[1], {
    start: 0x55d0c8a02000,
    end: 0x55d0c8a07000,
    perms: "r-xp",
    offset: 0x2000,
    dev: "fd:01",
    inode: 1234567,
    path: "/usr/bin/cat",
    deleted: false,
  });
  assertEquals(maps[3].path, "");
  assertEquals(maps[5].path, "/tmp/my lib.so");
  assertEquals(maps[5].deleted, true);
  assertEquals(maps[8].start, 0xffffffffff600000);
  assertEquals(maps.map(isFileBacked), [true, true, false, false, true, true, false, false, false]);
  assertEquals(findMapping(maps, 0x55d0c8a02000)?.perms, "r-xp");
  assertEquals(findMapping(maps, 0x55d0c8a06fff)?.path, "/usr/bin/cat");
  assertEquals(findMapping(maps, 0x7f1e2d300000)?.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
  assertEquals(findMapping(maps, 0x7ffd8e5f6000)?.path, "[vdso]");
  assertEquals(findMapping(maps, 0x1000), undefined);
  assertEquals(findMapping(maps, 0x55d0c8a07000), undefined, "end is exclusive");
  assertEquals(findMapping([], 0x1000), undefined);
  assertEquals(baseName("/usr/lib/x86_64-linux-gnu/libc.so.6"), "libc.so.6");
  assertEquals(baseName("noslash"), "noslash");
});

Deno.test("parseProcMaps: /proc/self/maps of this process finds the deno binary's text", () => {
  const maps = parseProcMaps(Deno.readTextFileSync("/proc/self/maps"));
  assert(maps.length > 10);
  for (let i = 1; i < maps.length; i++) assert(maps[i - 1].start < maps[i].start, "ascending");
  const exe = Deno.realPathSync("/proc/self/exe");
  assert(maps.some((m) => m.path === exe && m.perms.includes("x")), `no executable mapping of ${exe}`);
});

Deno.test("parsePerfMap: hex with or without 0x, names with spaces; a later entry at one address wins", () => {
  const t = parsePerfMap(
    [
      "7f0000001000 40 LazyCompile:~main /app/index.js:1",
      "0x7f0000002000 0x10 Builtin:ArgumentsAdaptorTrampoline",
      "not a line",
      "7f0000001000 20 LazyCompile:*main /app/index.js:1", // recompiled at the same address
      "7f0000003000 8 py::hot:/app/x.py",
      "",
    ].join("\n"),
  );
  assertEquals(t.size, 3);
  assertEquals(t.lookup(0x7f0000001010), "LazyCompile:*main /app/index.js:1");
  assertEquals(t.lookup(0x7f0000001030), undefined, "the later entry is 0x20 long");
  assertEquals(t.lookup(0x7f000000200f), "Builtin:ArgumentsAdaptorTrampoline");
  assertEquals(t.lookup(0x7f0000003004), "py::hot:/app/x.py");
  assertEquals(t.lookup(0x7f0000000fff), undefined);
  const capped = parsePerfMap("1000 10 a\n2000 10 b\n3000 10 c\n", { maxEntries: 2 });
  assertEquals([capped.size, capped.truncated], [2, true]);
});

Deno.test("namespacePid: the last NSpid, the pid a JIT names its map after", () => {
  assertEquals(namespacePid("Name:\tnode\nPid:\t4242\nNSpid:\t4242\t17\nNSpgid:\t4242\t17\n"), 17);
  assertEquals(namespacePid("Name:\tcat\nNSpid:\t99\n"), 99);
  assertEquals(namespacePid("Name:\told kernel\n"), undefined);
});
