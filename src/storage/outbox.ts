// The durable outbox of Storage.ES: every document is appended (synchronously,
// one JSON line) to segment files, and a persisted cursor marks how far the
// store has acknowledged them. Documents survive store outages and agent
// restarts; a restart resends from the cursor (at most one bulk batch twice,
// which _id = tracer_id makes harmless). Disk use is bounded: beyond maxBytes
// the oldest segment is dropped and its unsent documents counted.
//
// Layout of the directory:
//   0000000000000001.seg …  documents, one JSON line each, appended in order
//   cursor                  {"segment":N,"offset":B}: everything before byte B
//                           of segment N (and every older segment) is done
//
// Single-threaded by design: append() runs on the tracer's path (small sync
// write), readBatch()/commit() on the shipper's (async reads), at most two
// batches out at a time (one in flight, one read ahead), so at most two
// batches of documents are ever held in memory.

import { readFileBoundedSync, ReadLimitError } from "../io/read.ts";
import type { Logger } from "../log/logger.ts";

export interface OutboxOptions {
  dir: string;
  /** Bound on the segment files' total size; beyond it the oldest segment is dropped. */
  maxBytes: number;
  /** Rotation size of a segment; by default maxBytes/16 within [4 KiB, 64 MiB]. */
  segmentBytes?: number;
  /** Longest document line read back; a longer (corrupt) one is skipped without being held whole. */
  maxLineBytes?: number;
  log: Logger;
}

/** One document ready to ship: its _id and its JSON line (no newline). */
export interface OutboxDoc {
  readonly id: string;
  readonly line: Uint8Array;
}

/** A run of consecutive lines of one segment, handed out by readBatch() and settled by commit(). */
export interface OutboxBatch {
  readonly segment: number;
  readonly start: number;
  readonly end: number;
  /** Lines consumed: the documents plus corrupt lines (skipped). */
  readonly lines: number;
  readonly docs: readonly OutboxDoc[];
  /** Lines that were not a JSON document with a tracer_id (e.g. cut short by a crash). */
  readonly corrupt: number;
  /** Bytes of the documents' lines. */
  readonly bytes: number;
}

interface Segment {
  readonly seq: number;
  bytes: number;
  /** Lines, counting an unterminated tail (crash) as one. */
  lines: number;
  sealed: boolean;
}

interface Position {
  segment: number;
  offset: number;
}

const SEGMENT_RE = /^(\d{16})\.seg$/;
const CURSOR = "cursor";
const MIN_SEGMENT = 4096;
const MAX_SEGMENT = 64 * 1024 * 1024;
const READ_CHUNK = 256 * 1024;
/**
 * The longest document line: events with big stacks are tens of KB. A line beyond it is corrupt (or
 * written by something else) and skipped while reading it back, so it never sits whole in memory.
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
/** The cursor file holds one small JSON object. */
const MAX_CURSOR_BYTES = 4096;
/** One batch in flight and one read ahead: never more in memory. */
export const MAX_OUTSTANDING = 2;
const CURSOR_PERSIST_MS = 100;
const NEWLINE = 0x0a;
/** An _id is at most 512 bytes in Elasticsearch/OpenSearch. */
const MAX_ID_BYTES = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function segmentName(seq: number): string {
  return `${String(seq).padStart(16, "0")}.seg`;
}

/** Number of newline bytes in data[from, to). */
export function countNewlines(data: Uint8Array, from = 0, to = data.length): number {
  let n = 0;
  for (let i = data.indexOf(NEWLINE, from); i !== -1 && i < to; i = data.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
/** A plain id (no JSON escapes) as newTracerId() makes them: matched without parsing the whole line. */
const ID_RE = /"tracer_id":"([\w.:-]{1,512})"/;
/** tracer_id comes before tracer_data in every document, within the first few hundred bytes. */
const ID_PREFIX_BYTES = 2048;

/**
 * The tracer_id of a document line, or undefined when the line is not a JSON document that has one.
 * A newline-terminated line was written whole by one sync write, so it only needs to look like an object
 * and show its top-level tracer_id (the store rejects anything else with a 400, counted and logged);
 * `full` (for a tail a crash may have cut) parses the whole line.
 */
export function documentId(line: Uint8Array, full = false): string | undefined {
  if (!full && line[0] === OPEN_BRACE && line[line.length - 1] === CLOSE_BRACE) {
    // Usually within the first 512 bytes (after hostname, region, the times and the container fields).
    for (const prefix of [512, ID_PREFIX_BYTES]) {
      const m = ID_RE.exec(decoder.decode(line.subarray(0, prefix)));
      if (m) return m[1];
      if (line.length <= prefix) break;
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(line));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const id = (value as { tracer_id?: unknown }).tracer_id;
  if (typeof id !== "string" || id === "" || encoder.encode(id).length > MAX_ID_BYTES) return undefined;
  return id;
}

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Counts lines of a file synchronously (startup only): newlines, and lines before `offset`. */
function scanFile(path: string, offset: number): { bytes: number; lines: number; before: number } {
  const file = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(1024 * 1024);
    let pos = 0;
    let lines = 0;
    let before = 0;
    let last = NEWLINE;
    for (;;) {
      const n = file.readSync(buf);
      if (n === null || n === 0) break;
      const chunk = buf.subarray(0, n);
      const count = countNewlines(chunk);
      lines += count;
      if (pos + n <= offset) before += count;
      else if (pos < offset) before += countNewlines(chunk, 0, offset - pos);
      last = chunk[n - 1];
      pos += n;
    }
    // An unterminated tail is a line cut short by a crash: it is read (and skipped) as one.
    if (last !== NEWLINE) lines++;
    return { bytes: pos, lines, before };
  } finally {
    file.close();
  }
}

/** Calls `fn` at most once per `ms`, counting the calls it swallowed. */
function throttle(ms: number): (fn: (suppressed: number) => void) => void {
  let lastAt = -Infinity;
  let suppressed = 0;
  return (fn) => {
    const now = performance.now();
    if (now - lastAt < ms) {
      suppressed++;
      return;
    }
    lastAt = now;
    fn(suppressed);
    suppressed = 0;
  };
}

export class Outbox {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly maxLineBytes: number;
  readonly #log: Logger;
  /** Live segments, oldest first; the cursor is in the first one. */
  readonly #segments: Segment[] = [];
  #cursor: Position;
  /** Lines of the head segment before the cursor. */
  #ackedLines = 0;
  #nextSeq: number;
  #active: { seg: Segment; file: Deno.FsFile } | undefined;
  #reader: { seq: number; file: Deno.FsFile } | undefined;
  /** Batches handed out and not yet committed, oldest first. */
  #outstanding: OutboxBatch[] = [];
  /** readBatch() calls reading right now (they become outstanding). */
  #reading = 0;
  /** Where the next batch starts: the cursor, or the end of the last outstanding batch. */
  #readPos: Position;
  #totalBytes = 0;
  #persistedAt = -Infinity;
  #persistTimer: ReturnType<typeof setTimeout> | undefined;
  #queued = 0;
  #dropped = 0;
  /** One shared promise per wait, so an idle reader polling with timeouts leaves nothing behind. */
  #appended: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly #warnDrop = throttle(60_000);
  readonly #warnWrite = throttle(60_000);

  private constructor(opts: OutboxOptions, cursor: Position, nextSeq: number) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
    this.segmentBytes = opts.segmentBytes ??
      Math.min(MAX_SEGMENT, Math.max(MIN_SEGMENT, Math.floor(opts.maxBytes / 16)));
    this.#log = opts.log;
    this.#cursor = cursor;
    this.#readPos = { ...cursor };
    this.#nextSeq = nextSeq;
  }

  /**
   * Opens (creating) the outbox directory and recovers its state: segments
   * behind the cursor are removed, the others counted. Throws when the
   * directory cannot be created or read.
   */
  static open(opts: OutboxOptions): Outbox {
    Deno.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const seqs: number[] = [];
    for (const e of Deno.readDirSync(opts.dir)) {
      const m = SEGMENT_RE.exec(e.name);
      if (m && e.isFile) seqs.push(Number(m[1]));
    }
    seqs.sort((a, b) => a - b);
    const saved = Outbox.#readCursor(opts.dir, opts.log);
    const cursor: Position = saved ?? { segment: seqs[0] ?? 1, offset: 0 };
    // A new segment never takes the number of the saved cursor's: its offset would skip data.
    const nextSeq = Math.max((seqs.at(-1) ?? 0) + 1, saved ? saved.segment + 1 : 1);
    const box = new Outbox(opts, cursor, nextSeq);
    for (const seq of seqs) {
      const path = `${opts.dir}/${segmentName(seq)}`;
      if (seq < cursor.segment) {
        Deno.removeSync(path);
        continue;
      }
      const head = seq === cursor.segment;
      const scan = scanFile(path, head ? cursor.offset : 0);
      if (head) {
        // A cursor past the end (the file was cut) means the whole segment is done.
        cursor.offset = Math.min(cursor.offset, scan.bytes);
        box.#ackedLines = cursor.offset === scan.bytes ? scan.lines : scan.before;
      }
      // Segments from an earlier run are never appended to again: a new run starts a new one.
      box.#segments.push({ seq, bytes: scan.bytes, lines: scan.lines, sealed: true });
      box.#totalBytes += scan.bytes;
      box.#queued += scan.lines - (head ? box.#ackedLines : 0);
    }
    box.#normalizeCursor();
    if (box.#queued > 0) {
      opts.log.info("outbox: documents from an earlier run will be sent", {
        dir: opts.dir,
        documents: box.#queued,
        bytes: box.#totalBytes,
      });
    }
    return box;
  }

  static #readCursor(dir: string, log: Logger): Position | undefined {
    let text: string;
    try {
      text = decoder.decode(readFileBoundedSync(`${dir}/${CURSOR}`, MAX_CURSOR_BYTES));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      if (!(err instanceof ReadLimitError)) throw err;
      text = "(larger than 4 KiB)";
    }
    try {
      const v = JSON.parse(text) as { segment?: unknown; offset?: unknown };
      if (Number.isSafeInteger(v.segment) && Number.isSafeInteger(v.offset)) {
        const segment = v.segment as number;
        const offset = v.offset as number;
        if (segment >= 0 && offset >= 0) return { segment, offset };
      }
    } catch { /* reported below */ }
    // Resending from the oldest segment is safe (_id makes it idempotent); losing data is not.
    log.warn("outbox: unreadable cursor, resending from the oldest segment", {
      dir,
      cursor: text.slice(0, 100),
    });
    return undefined;
  }

  /** Documents appended and not yet acknowledged, failed or dropped (including the batch in flight). */
  get queuedDocuments(): number {
    return this.#queued;
  }

  /** Bytes of the segment files on disk. */
  get queuedBytes(): number {
    return this.#totalBytes;
  }

  /** Documents lost before they were sent: outbox over maxBytes, or the outbox write failed. */
  get droppedTotal(): number {
    return this.#dropped;
  }

  get segmentCount(): number {
    return this.#segments.length;
  }

  /**
   * Appends one document line (with its trailing newline) synchronously.
   * Returns false, counting the document as dropped, when the write failed.
   */
  append(line: Uint8Array): boolean {
    if (line.length > this.maxLineBytes) {
      // It would be skipped when read back: refuse it now, counted as dropped.
      return this.#writeFailed(new Error(`document of ${line.length} bytes exceeds ${this.maxLineBytes}`));
    }
    let active = this.#active;
    try {
      if (!active || (active.seg.bytes > 0 && active.seg.bytes + line.length > this.segmentBytes)) {
        active = this.#rotate();
      }
    } catch (err) {
      return this.#writeFailed(err);
    }
    const seg = active.seg;
    try {
      writeAll(active.file, line);
    } catch (err) {
      this.#recoverPartialWrite(active, err);
      return this.#writeFailed(err);
    }
    seg.bytes += line.length;
    seg.lines++;
    this.#totalBytes += line.length;
    this.#queued++;
    this.#enforceLimit();
    this.#signalAppended();
    return true;
  }

  /** Resolves at the next append (or close). */
  nextAppend(): Promise<void> {
    if (!this.#appended) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      this.#appended = { promise, resolve };
    }
    return this.#appended.promise;
  }

  #signalAppended(): void {
    const a = this.#appended;
    this.#appended = undefined;
    a?.resolve();
  }

  /**
   * Reads the next batch after those outstanding: up to maxLines lines and
   * about maxBytes bytes (at least one line), never across segments. Returns
   * undefined when nothing more is queued. At most MAX_OUTSTANDING batches
   * may be outstanding (one in flight, one read ahead).
   */
  async readBatch(maxLines: number, maxBytes: number): Promise<OutboxBatch | undefined> {
    if (this.#reading > 0) throw new Error("outbox: readBatch() while another one is reading");
    if (this.#outstanding.length >= MAX_OUTSTANDING) {
      throw new Error(`outbox: already ${MAX_OUTSTANDING} batches outstanding`);
    }
    for (;;) {
      if (this.#outstanding.length === 0 && this.#reading === 0) {
        // Nothing handed out: reading starts at the cursor; finished sealed segments go.
        this.#readPos = { ...this.#cursor };
        if (this.#headDone()) {
          while (this.#headDone()) this.#removeHead();
          this.#readPos = { ...this.#cursor };
          this.#persistCursor();
        }
      }
      const pos = this.#readPos;
      const i = this.#segments.findIndex((sg) => sg.seq >= pos.segment);
      if (i === -1) return undefined;
      const seg = this.#segments[i];
      if (seg.seq !== pos.segment) {
        this.#readPos = { segment: seg.seq, offset: 0 };
        continue;
      }
      if (pos.offset >= seg.bytes) {
        if (!seg.sealed || i + 1 >= this.#segments.length) return undefined;
        this.#readPos = { segment: this.#segments[i + 1].seq, offset: 0 };
        continue;
      }
      this.#reading++;
      let batch: OutboxBatch;
      try {
        batch = await this.#readLines(seg.seq, pos.offset, seg.bytes, seg.sealed, maxLines, maxBytes);
      } finally {
        this.#reading--;
      }
      // The segment may have been dropped (outbox full) while we read: its documents are counted as dropped.
      if (this.#readPos !== pos || !this.#segments.includes(seg)) continue;
      if (batch.lines === 0) return undefined;
      this.#readPos = { segment: seg.seq, offset: batch.end };
      this.#outstanding.push(batch);
      return batch;
    }
  }

  /**
   * The store has settled every document of `batch` (acknowledged or failed
   * for good): move the cursor past it. Batches are committed in the order
   * they were read.
   */
  commit(batch: OutboxBatch): void {
    if (this.#outstanding[0] !== batch) throw new Error("outbox: commit out of order or of an unknown batch");
    this.#outstanding.shift();
    this.#queued -= batch.lines;
    // Finished segments before the batch's (the cursor reached their end while they were still active) go first.
    while (this.#headDone() && this.#segments[0].seq < batch.segment) this.#removeHead();
    const head = this.#segments[0];
    if (head && head.seq === batch.segment && this.#cursor.segment === batch.segment) {
      this.#cursor.offset = batch.end;
      this.#ackedLines += batch.lines;
    }
    // Otherwise the segment was dropped while the batch was out and the cursor is already past it.
    while (this.#headDone()) this.#removeHead();
    this.#persistCursorSoon();
  }

  /** The cursor is at the end of a sealed head segment: nothing in it is left. */
  #headDone(): boolean {
    const h = this.#segments[0];
    return h !== undefined && h.sealed && this.#cursor.segment === h.seq && this.#cursor.offset >= h.bytes;
  }

  /** Gives every outstanding batch back unsettled (shutdown): their documents stay queued, read again next time. */
  releaseAll(): void {
    this.#outstanding = [];
    this.#readPos = { ...this.#cursor };
  }

  /** Persists the cursor and closes the files; the outbox is reopened with open(). */
  close(): void {
    this.#persistCursor();
    this.#active?.file.close();
    this.#active = undefined;
    this.#closeReader();
    this.#signalAppended();
  }

  #rotate(): { seg: Segment; file: Deno.FsFile } {
    if (this.#active) {
      this.#active.seg.sealed = true;
      this.#active.file.close();
      this.#active = undefined;
    }
    const seg: Segment = { seq: this.#nextSeq++, bytes: 0, lines: 0, sealed: false };
    const file = Deno.openSync(`${this.dir}/${segmentName(seg.seq)}`, {
      append: true,
      create: true,
      mode: 0o600,
    });
    this.#segments.push(seg);
    this.#active = { seg, file };
    this.#normalizeCursor();
    return this.#active;
  }

  /** After a failed write, cut the partial line off; when even that fails, seal the segment as it is. */
  #recoverPartialWrite(active: { seg: Segment; file: Deno.FsFile }, err: unknown): void {
    try {
      active.file.truncateSync(active.seg.bytes);
      return;
    } catch { /* sealed below */ }
    const seg = active.seg;
    try {
      const size = Deno.statSync(`${this.dir}/${segmentName(seg.seq)}`).size;
      if (size > seg.bytes) {
        // The partial line stays in the file: it is read as one corrupt line and skipped.
        seg.lines++;
        this.#queued++;
        this.#totalBytes += size - seg.bytes;
        seg.bytes = size;
      }
    } catch { /* nothing more to learn */ }
    seg.sealed = true;
    try {
      active.file.close();
    } catch { /* already broken */ }
    this.#active = undefined;
    this.#log.debug("outbox: segment sealed after a failed write", {
      segment: seg.seq,
      error: errMessage(err),
    });
  }

  #writeFailed(err: unknown): false {
    this.#dropped++;
    this.#warnWrite((suppressed) =>
      this.#log.error("outbox: document not queued for Elasticsearch/OpenSearch (it is in the local file)", {
        dir: this.dir,
        error: errMessage(err),
        more_failures: suppressed || undefined,
      })
    );
    return false;
  }

  #enforceLimit(): void {
    let lost = 0;
    let freed = 0;
    while (this.#totalBytes > this.maxBytes && this.#segments.length > 1) {
      const head = this.#segments[0];
      let handedOut = 0;
      for (const b of this.#outstanding) if (b.segment === head.seq) handedOut += b.lines;
      const unsent = head.lines - this.#ackedLines - handedOut;
      lost += unsent;
      freed += head.bytes;
      this.#queued -= unsent;
      this.#removeHead();
    }
    if (freed === 0) return;
    this.#dropped += lost;
    this.#persistCursor();
    this.#warnDrop((suppressed) =>
      this.#log.warn("outbox: full, dropped the oldest unsent documents (they are in the local files)", {
        dir: this.dir,
        max_bytes: this.maxBytes,
        dropped: lost,
        dropped_total: this.#dropped,
        more_drops: suppressed || undefined,
      })
    );
  }

  /** Deletes the head segment and moves the cursor to the start of the next one. */
  #removeHead(): void {
    const head = this.#segments.shift()!;
    this.#totalBytes -= head.bytes;
    if (this.#reader?.seq === head.seq) this.#closeReader();
    if (this.#active?.seg === head) {
      this.#active.file.close();
      this.#active = undefined;
    }
    try {
      Deno.removeSync(`${this.dir}/${segmentName(head.seq)}`);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        this.#log.warn("outbox: cannot remove a finished segment", {
          segment: head.seq,
          error: errMessage(err),
        });
      }
    }
    this.#cursor = { segment: this.#segments[0]?.seq ?? this.#nextSeq, offset: 0 };
    this.#ackedLines = 0;
    if (this.#readPos.segment <= head.seq) this.#readPos = { ...this.#cursor };
  }

  /** The cursor names the head segment (or the next one to be created when there is none). */
  #normalizeCursor(): void {
    const head = this.#segments[0];
    if (head && this.#cursor.segment < head.seq) {
      this.#cursor = { segment: head.seq, offset: 0 };
      this.#ackedLines = 0;
    }
  }

  /**
   * Commits persist the cursor at most every CURSOR_PERSIST_MS (a write and a rename cost about a
   * millisecond, per batch at full speed): a crash then resends at most that much, which _id makes harmless.
   */
  #persistCursorSoon(): void {
    const wait = this.#persistedAt + CURSOR_PERSIST_MS - performance.now();
    if (wait <= 0) {
      this.#persistCursor();
      return;
    }
    if (this.#persistTimer !== undefined) return;
    const timer = setTimeout(() => {
      this.#persistTimer = undefined;
      this.#persistCursor();
    }, wait);
    // A pending cursor write must not keep the process alive; close() writes it anyway.
    Deno.unrefTimer(timer);
    this.#persistTimer = timer;
  }

  #persistCursor(): void {
    clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    this.#persistedAt = performance.now();
    const path = `${this.dir}/${CURSOR}`;
    try {
      // Write-then-rename: a crash leaves the old cursor or the new one, never half of one.
      Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(this.#cursor) + "\n", { mode: 0o600 });
      Deno.renameSync(`${path}.tmp`, path);
    } catch (err) {
      // An old cursor only means resending (idempotent); keep going.
      this.#log.warn("outbox: cannot persist the cursor", { path, error: errMessage(err) });
    }
  }

  #closeReader(): void {
    try {
      this.#reader?.file.close();
    } catch { /* already closed */ }
    this.#reader = undefined;
  }

  async #readAt(seq: number, pos: number, buf: Uint8Array): Promise<void> {
    if (this.#reader?.seq !== seq) {
      this.#closeReader();
      this.#reader = { seq, file: await Deno.open(`${this.dir}/${segmentName(seq)}`, { read: true }) };
    }
    const file = this.#reader.file;
    await file.seek(pos, Deno.SeekMode.Start);
    let off = 0;
    while (off < buf.length) {
      const n = await file.read(buf.subarray(off));
      if (n === null) {
        throw new Error(`outbox: segment ${seq} ends at ${pos + off}, expected ${pos + buf.length}`);
      }
      off += n;
    }
  }

  async #readLines(
    seq: number,
    start: number,
    end: number,
    tailIsFinal: boolean,
    maxLines: number,
    maxBytes: number,
  ): Promise<OutboxBatch> {
    const docs: OutboxDoc[] = [];
    let lines = 0;
    let corrupt = 0;
    let bytes = 0;
    let consumed = start;
    let pos = start;
    let carry: Uint8Array | undefined;
    /** Start of an over-long line being skipped: its bytes are scanned for the newline, never kept. */
    let skipFrom: number | undefined;
    const maxLine = this.maxLineBytes;
    const full = () => lines >= maxLines || bytes >= maxBytes;
    const skipped = (at: number, length: number) => {
      lines++;
      corrupt++;
      this.#log.warn("outbox: skipped a line longer than the longest document", {
        segment: seq,
        offset: at,
        bytes: length,
        max_bytes: maxLine,
      });
    };
    const take = (line: Uint8Array, at: number, tail = false) => {
      if (line.length > maxLine) return skipped(at, line.length);
      lines++;
      const id = documentId(line, tail);
      if (id === undefined) {
        corrupt++;
        this.#log.warn("outbox: skipped a line that is not a document with a tracer_id", {
          segment: seq,
          offset: at,
          bytes: line.length,
          head: decoder.decode(line.subarray(0, 80)),
        });
        return;
      }
      docs.push({ id, line });
      bytes += line.length;
    };
    while (pos < end && !full()) {
      // A line longer than a chunk doubles the read instead of growing the carry chunk by chunk; the carry
      // never exceeds maxLine, so neither does a read.
      const n = Math.min(Math.max(READ_CHUNK, carry?.length ?? 0), end - pos);
      const chunk = new Uint8Array(n);
      try {
        await this.#readAt(seq, pos, chunk);
      } catch (err) {
        // The segment vanished (dropped) or shrank under us: stop here; the caller re-checks.
        this.#closeReader();
        this.#log.debug("outbox: read stopped", { segment: seq, error: errMessage(err) });
        break;
      }
      const dataStart = pos - (carry?.length ?? 0);
      const data = carry ? concat(carry, chunk) : chunk;
      pos += n;
      let ls = 0;
      if (skipFrom !== undefined) {
        const nl = data.indexOf(NEWLINE);
        if (nl === -1) {
          if (pos >= end && tailIsFinal) {
            // The over-long line is the unterminated tail of a finished segment.
            skipped(skipFrom, end - skipFrom);
            consumed = end;
            skipFrom = undefined;
          }
          continue;
        }
        skipped(skipFrom, dataStart + nl - skipFrom);
        skipFrom = undefined;
        ls = nl + 1;
        consumed = dataStart + ls;
      }
      for (let nl = data.indexOf(NEWLINE, ls); nl !== -1 && !full(); nl = data.indexOf(NEWLINE, ls)) {
        take(data.subarray(ls, nl), dataStart + ls);
        ls = nl + 1;
        consumed = dataStart + ls;
      }
      carry = ls < data.length ? data.subarray(ls) : undefined;
      if (carry && !full() && carry.length > maxLine) {
        // No newline within maxLine bytes: skip to the next one without keeping what is in between.
        skipFrom = dataStart + ls;
        carry = undefined;
        if (pos >= end && tailIsFinal) {
          skipped(skipFrom, end - skipFrom);
          consumed = end;
          skipFrom = undefined;
        }
        continue;
      }
      if (carry && pos >= end && tailIsFinal && !full()) {
        // The unterminated tail of a finished segment: a line cut short by a crash.
        take(carry, dataStart + ls, true);
        consumed = end;
        carry = undefined;
      }
    }
    return { segment: seq, start, end: consumed, lines, docs, corrupt, bytes };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
