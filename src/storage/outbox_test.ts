import { createLogger, type Logger } from "../log/logger.ts";
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../../testing/assert.ts";
import { newDocument } from "../core/document.ts";
import { countNewlines, documentId, Outbox, type OutboxBatch, segmentName } from "./outbox.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** A fixed time keeps every line the same length (uploaded_time trims trailing zeros). */
const FIXED = new Date(Date.UTC(2025, 5, 11, 8, 5, 16, 251));

function line(seq: number, pad = 0): Uint8Array {
  const doc = newDocument({
    hostname: "h",
    region: "r",
    tracerName: "oom",
    tracerType: "auto",
    data: { seq, pad: "x".repeat(pad) },
    now: FIXED,
    offsetMinutes: 480,
  });
  return enc.encode(JSON.stringify(doc) + "\n");
}

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: "Debug", write: (l) => lines.push(l) }), lines };
}

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-outbox-" });
  try {
    await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function seqOf(b: OutboxBatch): number[] {
  return b.docs.map((d) =>
    (JSON.parse(dec.decode(d.line)) as { tracer_data: { seq: number } }).tracer_data.seq
  );
}

/** Reads and commits everything queued; returns the seq numbers in order. */
async function drain(box: Outbox, maxLines = 1000, maxBytes = 1 << 30): Promise<number[]> {
  const out: number[] = [];
  for (let b = await box.readBatch(maxLines, maxBytes); b; b = await box.readBatch(maxLines, maxBytes)) {
    out.push(...seqOf(b));
    box.commit(b);
  }
  return out;
}

function segments(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".seg")).sort();
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

Deno.test("countNewlines and documentId", () => {
  assertEquals(countNewlines(enc.encode("a\nb\n\nc")), 3);
  assertEquals(countNewlines(enc.encode("a\nb\n\nc"), 2, 4), 1);
  assertEquals(countNewlines(new Uint8Array(0)), 0);
  assertEquals(documentId(enc.encode('{"tracer_id":"abc","x":1}')), "abc");
  assertEquals(documentId(enc.encode('{"tracer_id":"abc","x":')), undefined, "cut short");
  assertEquals(documentId(enc.encode('{"x":1}')), undefined, "no id");
  assertEquals(documentId(enc.encode('{"tracer_id":""}')), undefined, "empty id");
  assertEquals(documentId(enc.encode('{"tracer_id":7}')), undefined, "not a string");
  assertEquals(documentId(enc.encode(`{"tracer_id":"${"a".repeat(513)}"}`)), undefined, "over 512 bytes");
  assertEquals(documentId(enc.encode("[1]")), undefined);
  // A whole line is trusted by its shape; a tail a crash may have cut is parsed in full.
  const cut = '{"tracer_id":"abc","tracer_data":{"a":{"b":1}';
  assertEquals(documentId(enc.encode(cut + "}")), "abc");
  assertEquals(documentId(enc.encode(cut), true), undefined);
  assertEquals(documentId(enc.encode('{"x":"\\"tracer_id\\":\\"no\\"","tracer_id":"yes"}')), "yes");
  assertEquals(documentId(enc.encode('{"tracer_id":"a\\u0062"}')), "ab", "escaped ids take the full parse");
  assertEquals(documentId(enc.encode("\u0000garbage")), undefined);
});

Deno.test("outbox: appended lines come back in order with their tracer_id; commit persists the cursor", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    const lines = range(0, 10).map((i) => line(i));
    for (const l of lines) assert(box.append(l));
    assertEquals(box.queuedDocuments, 10);
    const b = await box.readBatch(4, 1 << 20);
    assert(b);
    assertEquals(seqOf(b), [0, 1, 2, 3]);
    assertEquals(b.docs[0].id, JSON.parse(dec.decode(lines[0])).tracer_id);
    assertEquals(b.corrupt, 0);
    assertEquals(box.queuedDocuments, 10, "the batch in flight is still queued");
    const ahead = await box.readBatch(2, 1 << 20); // one read ahead is allowed
    assertEquals(seqOf(ahead!), [4, 5]);
    await assertRejects(() => box.readBatch(4, 1 << 20), /already 2 batches outstanding/);
    assertThrows(() => box.commit(ahead!), /out of order/);
    box.commit(b);
    box.commit(ahead!);
    assertEquals(box.queuedDocuments, 4);
    box.releaseAll();
    box.close();
  });
});

Deno.test("outbox: commit persists the cursor", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    const lines = range(0, 10).map((i) => line(i));
    for (const l of lines) box.append(l);
    const b = (await box.readBatch(4, 1 << 20))!;
    box.commit(b);
    assertEquals(box.queuedDocuments, 6);
    const cursor = JSON.parse(Deno.readTextFileSync(`${dir}/cursor`));
    assertEquals(cursor, { segment: 1, offset: lines.slice(0, 4).reduce((n, l) => n + l.length, 0) });
    assertEquals(await drain(box), range(4, 10));
    assertEquals(box.queuedDocuments, 0);
    assertEquals(await box.readBatch(4, 1 << 20), undefined);
    box.close();
  });
});

Deno.test("outbox: a batch stops at maxBytes (but takes at least one line); a line larger than a read chunk is whole", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 64 << 20, log: capture().log });
    const big = line(1, 700_000); // > the 256 KiB read chunk
    box.append(line(0));
    box.append(big);
    box.append(line(2));
    const b1 = await box.readBatch(100, 10);
    assertEquals(seqOf(b1!), [0], "maxBytes reached after the first line");
    box.commit(b1!);
    const b2 = await box.readBatch(100, 10);
    assertEquals(seqOf(b2!), [1]);
    assertEquals(b2!.docs[0].line.length, big.length - 1);
    box.commit(b2!);
    assertEquals(await drain(box), [2]);
    box.close();
  });
});

Deno.test("outbox: segments rotate at segmentBytes, batches never span two, finished segments are removed", async () => {
  await withDir(async (dir) => {
    const one = line(0).length;
    const box = Outbox.open({ dir, maxBytes: 1 << 20, segmentBytes: one * 3, log: capture().log });
    for (const i of range(0, 8)) box.append(line(i));
    assertEquals(segments(dir), [segmentName(1), segmentName(2), segmentName(3)]);
    const b = await box.readBatch(100, 1 << 20);
    assertEquals(seqOf(b!), [0, 1, 2], "one segment per batch");
    box.commit(b!);
    assertEquals(segments(dir), [segmentName(2), segmentName(3)], "segment 1 removed once settled");
    assertEquals(await drain(box), range(3, 8));
    assertEquals(segments(dir), [segmentName(3)], "the active segment stays");
    box.close();
  });
});

Deno.test("outbox: a restart resumes after the cursor and appends to a new segment", async () => {
  await withDir(async (dir) => {
    const { log, lines } = capture();
    let box = Outbox.open({ dir, maxBytes: 1 << 20, log });
    for (const i of range(0, 6)) box.append(line(i));
    const b = await box.readBatch(2, 1 << 20);
    box.commit(b!);
    box.close();

    box = Outbox.open({ dir, maxBytes: 1 << 20, log });
    assertEquals(box.queuedDocuments, 4);
    assertMatch(lines.join(""), /documents from an earlier run will be sent.*documents=4/);
    box.append(line(6));
    assertEquals(segments(dir), [segmentName(1), segmentName(2)]);
    assertEquals(await drain(box), range(2, 7));
    assertEquals(segments(dir), [segmentName(2)], "the old run's segment is removed when done");
    box.close();

    box = Outbox.open({ dir, maxBytes: 1 << 20, log });
    assertEquals(box.queuedDocuments, 0);
    assertEquals(await box.readBatch(10, 1 << 20), undefined);
    box.close();
  });
});

Deno.test("outbox: a batch read but not committed before a crash is read again (resent, never lost)", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    for (const i of range(0, 5)) box.append(line(i));
    box.commit((await box.readBatch(2, 1 << 20))!);
    await box.readBatch(2, 1 << 20); // in flight when the process dies: no commit, no close
    const again = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    assertEquals(again.queuedDocuments, 3);
    assertEquals(await drain(again), [2, 3, 4]);
    again.close();
    box.close();
  });
});

Deno.test("outbox: a line cut short by a crash is skipped with a log line; the others are delivered", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    for (const i of range(0, 3)) box.append(line(i));
    box.close();
    // The crash: half of a fourth line, no newline.
    const half = line(3).subarray(0, 40);
    Deno.writeFileSync(`${dir}/${segmentName(1)}`, half, { append: true });

    const { log, lines } = capture();
    const again = Outbox.open({ dir, maxBytes: 1 << 20, log });
    assertEquals(again.queuedDocuments, 4, "the fragment counts as one line until skipped");
    const b = await again.readBatch(100, 1 << 20);
    assertEquals(seqOf(b!), [0, 1, 2]);
    assertEquals(b!.corrupt, 1);
    assertEquals(b!.lines, 4);
    again.commit(b!);
    assertEquals(again.queuedDocuments, 0);
    assertMatch(lines.join(""), /level=warn msg="outbox: skipped a line that is not a document.*segment=1/);
    again.append(line(9));
    assertEquals(await drain(again), [9]);
    again.close();
  });
});

Deno.test("outbox: garbage in the middle of a segment is skipped; an unreadable cursor resends from the oldest", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    box.append(line(0));
    box.append(enc.encode("not json\n"));
    box.append(line(2));
    box.commit((await box.readBatch(1, 1 << 20))!);
    box.close();
    Deno.writeTextFileSync(`${dir}/cursor`, "{garbage");
    const { log, lines } = capture();
    const again = Outbox.open({ dir, maxBytes: 1 << 20, log });
    assertEquals(again.queuedDocuments, 3);
    const b = await again.readBatch(100, 1 << 20);
    assertEquals(seqOf(b!), [0, 2]);
    assertEquals(b!.corrupt, 1);
    again.commit(b!);
    assertMatch(lines.join(""), /unreadable cursor, resending from the oldest segment/);
    again.close();
  });
});

Deno.test("outbox: a line longer than maxLineBytes is skipped and counted, wherever it is", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 1 << 30, log: capture().log });
    box.append(line(0));
    box.close();
    // Written by something else (the agent refuses such lines): 3 MiB without a newline, spanning many
    // read chunks, then a newline, a good line, and an over-long unterminated tail.
    const path = `${dir}/${segmentName(1)}`;
    Deno.writeFileSync(path, new Uint8Array(3 * 1024 * 1024).fill(0x61), { append: true });
    Deno.writeFileSync(path, enc.encode("\n"), { append: true });
    Deno.writeFileSync(path, line(2), { append: true });
    Deno.writeFileSync(path, new Uint8Array(200 * 1024).fill(0x62), { append: true });
    const size = Deno.statSync(path).size;

    const { log, lines } = capture();
    const again = Outbox.open({ dir, maxBytes: 1 << 30, maxLineBytes: 64 * 1024, log });
    assertEquals(again.queuedDocuments, 4);
    const b = await again.readBatch(100, 1 << 30);
    assertEquals(seqOf(b!), [0, 2]);
    assertEquals([b!.lines, b!.corrupt, b!.end], [4, 2, size]);
    again.commit(b!);
    assertEquals(again.queuedDocuments, 0);
    const warns = lines.filter((l) => l.includes("skipped a line longer than the longest document"));
    assertEquals(warns.length, 2);
    assertMatch(warns[0], new RegExp(`offset=${line(0).length} bytes=${3 * 1024 * 1024} max_bytes=65536`));
    assertMatch(warns[1], / bytes=204800 /);
    again.close();
  });
});

Deno.test("outbox: a line just under maxLineBytes is read whole; batches around a skipped line stay in order", async () => {
  await withDir(async (dir) => {
    const max = 64 * 1024;
    const big = line(1, max - line(1).length - 100);
    assert(big.length < max);
    const box = Outbox.open({ dir, maxBytes: 1 << 30, maxLineBytes: max, log: capture().log });
    box.append(line(0));
    box.append(big);
    box.close();
    Deno.writeFileSync(`${dir}/${segmentName(1)}`, new Uint8Array(max + 1).fill(0x20), { append: true });
    Deno.writeFileSync(`${dir}/${segmentName(1)}`, enc.encode("\n"), { append: true });
    Deno.writeFileSync(`${dir}/${segmentName(1)}`, line(3), { append: true });
    const again = Outbox.open({ dir, maxBytes: 1 << 30, maxLineBytes: max, log: capture().log });
    const b1 = await again.readBatch(2, 1 << 30);
    assertEquals(seqOf(b1!), [0, 1]);
    again.commit(b1!);
    const b2 = await again.readBatch(2, 1 << 30);
    assertEquals(seqOf(b2!), [3]);
    assertEquals(b2!.corrupt, 1);
    again.commit(b2!);
    assertEquals(await again.readBatch(2, 1 << 30), undefined);
    again.close();
  });
});

Deno.test("outbox: append refuses a document over maxLineBytes (dropped, logged); a huge cursor is unreadable", async () => {
  await withDir(async (dir) => {
    const { log, lines } = capture();
    const box = Outbox.open({ dir, maxBytes: 1 << 30, maxLineBytes: 1024, log });
    assertEquals(box.append(line(0, 2000)), false);
    assertEquals(box.droppedTotal, 1);
    assertMatch(lines.join(""), /document of \d+ bytes exceeds 1024/);
    assert(box.append(line(1)));
    box.close();
    Deno.writeFileSync(`${dir}/cursor`, new Uint8Array(1024 * 1024).fill(0x20));
    const c = capture();
    const again = Outbox.open({ dir, maxBytes: 1 << 30, log: c.log });
    assertMatch(c.lines.join(""), /unreadable cursor, resending from the oldest segment.*larger than 4 KiB/);
    assertEquals(await drain(again), [1]);
    again.close();
  });
});

Deno.test("outbox: beyond maxBytes the oldest segment is dropped and its unsent documents counted", async () => {
  await withDir(async (dir) => {
    const one = line(0).length;
    const { log, lines } = capture();
    // 4 lines per segment, at most 10 lines on disk.
    const box = Outbox.open({ dir, maxBytes: one * 10, segmentBytes: one * 4, log });
    for (const i of range(0, 12)) box.append(line(i));
    // Segments: [0-3] [4-7] [8-11] = 12 lines > 10: [0-3] dropped.
    assertEquals(box.droppedTotal, 4);
    assertEquals(box.queuedDocuments, 8);
    assert(box.queuedBytes <= one * 10);
    assertMatch(lines.join(""), /outbox: full, dropped the oldest unsent documents.*dropped=4/);
    assertEquals(await drain(box), range(4, 12));
    assertEquals(box.queuedDocuments, 0);
    box.close();
  });
});

Deno.test("outbox: dropping the segment of the batch in flight counts only the documents after it", async () => {
  await withDir(async (dir) => {
    const one = line(0).length;
    const box = Outbox.open({ dir, maxBytes: one * 10, segmentBytes: one * 4, log: capture().log });
    for (const i of range(0, 8)) box.append(line(i));
    const inflight = await box.readBatch(3, 1 << 20); // lines 0-2 of segment 1
    assertEquals(seqOf(inflight!), [0, 1, 2]);
    for (const i of range(8, 12)) box.append(line(i)); // overflow: segment 1 dropped
    assertEquals(box.droppedTotal, 1, "only line 3 was neither sent nor in flight");
    assertEquals(box.queuedDocuments, 11, "3 in flight + 8 queued");
    box.commit(inflight!); // acknowledged by the store after all
    assertEquals(box.queuedDocuments, 8);
    assertEquals(await drain(box), range(4, 12));
    assertEquals(box.queuedDocuments, 0);
    box.close();
    const again = Outbox.open({ dir, maxBytes: one * 10, segmentBytes: one * 4, log: capture().log });
    assertEquals(again.queuedDocuments, 0);
    again.close();
  });
});

Deno.test("outbox: a failed write is counted as dropped and logged, not thrown", async () => {
  await withDir((dir) => {
    const { log, lines } = capture();
    const box = Outbox.open({ dir: `${dir}/box`, maxBytes: 1 << 20, log });
    // The directory disappears under the agent (and a file takes its name): new segments cannot be created.
    Deno.removeSync(`${dir}/box`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/box`, "");
    assertEquals(box.append(line(0)), false);
    assertEquals(box.droppedTotal, 1);
    assertEquals(box.queuedDocuments, 0);
    assertMatch(lines.join(""), /level=error msg="outbox: document not queued/);
    box.close();
  });
});

Deno.test("outbox: nextAppend resolves on the next append and is shared by waiters", async () => {
  await withDir(async (dir) => {
    const box = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    const a = box.nextAppend();
    assert(a === box.nextAppend(), "one promise per wait");
    let resolved = false;
    a.then(() => resolved = true);
    await new Promise((r) => setTimeout(r, 10));
    assertEquals(resolved, false);
    box.append(line(0));
    await a;
    assert(box.nextAppend() !== a, "a new wait after the append");
    box.close();
  });
});

Deno.test("outbox: read-ahead into the next segment; the finished one goes when the cursor passes it", async () => {
  await withDir(async (dir) => {
    const one = line(0).length;
    const box = Outbox.open({ dir, maxBytes: 1 << 20, segmentBytes: one * 3, log: capture().log });
    for (const i of range(0, 3)) box.append(line(i)); // segment 1, still active
    const b1 = (await box.readBatch(100, 1 << 20))!;
    assertEquals(seqOf(b1), [0, 1, 2]);
    assertEquals(await box.readBatch(100, 1 << 20), undefined, "nothing more yet");
    for (const i of range(3, 5)) box.append(line(i)); // seals segment 1, opens 2
    const b2 = (await box.readBatch(100, 1 << 20))!;
    assertEquals(seqOf(b2), [3, 4], "read ahead from segment 2 while segment 1's batch is out");
    assertEquals(b2.segment, 2);
    box.commit(b1);
    assertEquals(segments(dir), [segmentName(2)], "segment 1 removed at its last commit");
    box.commit(b2);
    assertEquals(box.queuedDocuments, 0);
    box.close();
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/cursor`)), { segment: 2, offset: one * 2 });
  });
});

Deno.test("outbox: a batch that ends a segment sealed after it was read: its commit removes the segment", async () => {
  await withDir(async (dir) => {
    const one = line(0).length;
    const box = Outbox.open({ dir, maxBytes: 1 << 20, segmentBytes: one * 2, log: capture().log });
    box.append(line(0));
    box.append(line(1));
    const b1 = (await box.readBatch(100, 1 << 20))!;
    box.append(line(2)); // seals segment 1 (full)
    const b2 = (await box.readBatch(100, 1 << 20))!;
    box.commit(b1);
    box.commit(b2);
    assertEquals(segments(dir), [segmentName(2)]);
    // Commits close together persist the cursor once, a little later (a crash meanwhile only resends).
    await new Promise((r) => setTimeout(r, 150));
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/cursor`)), { segment: 2, offset: one });
    const again = Outbox.open({ dir, maxBytes: 1 << 20, log: capture().log });
    assertEquals(again.queuedDocuments, 0);
    again.close();
    box.close();
  });
});

Deno.test("outbox: released batches (shutdown) are read again; two outstanding in a dropped segment", async () => {
  await withDir(async (dir) => {
    const one = line(0).length;
    const box = Outbox.open({ dir, maxBytes: one * 10, segmentBytes: one * 4, log: capture().log });
    for (const i of range(0, 8)) box.append(line(i));
    const b1 = (await box.readBatch(1, 1 << 20))!;
    const b2 = (await box.readBatch(1, 1 << 20))!;
    assertEquals([...seqOf(b1), ...seqOf(b2)], [0, 1]);
    box.releaseAll();
    const again = (await box.readBatch(2, 1 << 20))!;
    assertEquals(seqOf(again), [0, 1], "released documents come back");
    const ahead = (await box.readBatch(1, 1 << 20))!;
    assertEquals(seqOf(ahead), [2]);
    for (const i of range(8, 12)) box.append(line(i)); // drops segment 1 (0-3): only 3 was not out
    assertEquals(box.droppedTotal, 1);
    box.commit(again);
    box.commit(ahead);
    assertEquals(box.queuedDocuments, 8);
    assertEquals(await drain(box), range(4, 12));
    assertEquals(box.queuedDocuments, 0);
    box.close();
  });
});
