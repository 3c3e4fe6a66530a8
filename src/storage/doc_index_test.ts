import { assertEquals } from "../../testing/assert.ts";
import { DocIndex, scanLines, tracerIdOf } from "./doc_index.ts";

const loc = (offset: number) => ({ tracer: "cpusys", generation: 0, offset, length: 10 });

Deno.test("DocIndex keeps the most recent ids; an eviction makes it incomplete", () => {
  const index = new DocIndex(3);
  for (const [i, id] of ["a", "b", "c"].entries()) index.put(id, loc(i));
  index.complete = true;
  index.put("a", loc(9)); // re-put: now the youngest
  assertEquals([index.size, index.evictions, index.complete], [3, 0, true]);
  index.put("d", loc(3));
  assertEquals([index.get("b"), index.get("a")?.offset, index.size], [undefined, 9, 3]);
  assertEquals([index.evictions, index.complete], [1, false]);
  index.delete("a");
  assertEquals(index.get("a"), undefined);
});

Deno.test("tracerIdOf reads the envelope's id, also past the head of a long line", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assertEquals(tracerIdOf(enc('{"hostname":"h","tracer_id":"abc123","tracer_data":{}}')), "abc123");
  assertEquals(tracerIdOf(enc(`{"pad":"${"x".repeat(5000)}","tracer_id" : "late"}`)), "late");
  assertEquals(tracerIdOf(enc('{"tracer_name":"x"}')), undefined);
  // An escaped quote inside a string is no key.
  assertEquals(tracerIdOf(enc('{"note":"\\"tracer_id\\":\\"fake\\"","tracer_id":"real"}')), "real");
});

async function scan(text: Uint8Array, maxLine: number) {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, text);
    using file = await Deno.open(path);
    const lines: [number, number, number][] = [];
    const { skipped } = await scanLines(
      file,
      maxLine,
      (offset, line) => lines.push([offset, line.length, line[0] ?? -1]),
    );
    return { lines, skipped };
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("scanLines: whole lines with their offsets, across read chunks; long and unterminated ones skipped", async () => {
  const MiB = 1024 * 1024;
  const parts = [
    new Uint8Array([0x61, 0x0a]), // "a\n" at 0
    new Uint8Array([0x0a]), // an empty line at 2
    new Uint8Array(2.5 * MiB).fill(0x62), // a 2.5 MiB line at 3, over three reads
    new Uint8Array([0x0a]),
    new Uint8Array(5 * MiB).fill(0x63), // over the limit
    new Uint8Array([0x0a, 0x64, 0x0a]), // "d\n"
    new Uint8Array([0x65, 0x65]), // an unterminated tail
  ];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
  const { lines, skipped } = await scan(all, 4 * MiB);
  const dAt = 3 + 2.5 * MiB + 1 + 5 * MiB + 1;
  assertEquals(lines, [[0, 1, 0x61], [2, 0, -1], [3, 2.5 * MiB, 0x62], [dAt, 1, 0x64]]);
  assertEquals(skipped, 1);
  assertEquals(all[dAt], 0x64);
});
