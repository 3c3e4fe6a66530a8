// Storage.LocalFile: one JSON document per line in <Path>/<tracer_name>, kept
// on the host for troubleshooting, size-rotated per tracer.
//
// Layout of Path:
//   <tracer>      the live file, appended to; every line is one whole document
//   <tracer>.N    rotated files, newest in .1, at most MaxRotation of them
//
// A line is whole or absent: a failed or short write (ENOSPC, EIO) is cut
// back off the file, and a live file that does not end in "\n" (a crash in
// the middle of a write) loses its unterminated tail when it is next opened.
// Failures never reach the tracer: they are counted per tracer
// (storage_local_failed_total, see metrics.ts) and logged once per streak —
// ERROR with the cause at the first failure, INFO with the number of lost
// documents when writing works again.
//
// Finding a document by tracer_id (GET /v1/flamegraph/{tracer_id}) reads one
// line, not the files: the store indexes the documents of the tracers it is
// told to (the AutoTracing ones: a capture every few minutes at most, where
// event tracers can write thousands a second and would push them out), the
// most recent 10 000 of them, by tracer file generation and byte offset (see
// doc_index.ts). An id it has not indexed (written by an earlier run, or
// pushed out) is looked for by one scan of those tracers' files, which also
// indexes what it passes; after a scan that saw every line without pushing
// any id out, an unknown id is answered from memory. One scan runs at a time.

import type { Config } from "../config/schema.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import type { EventDocument } from "../core/document.ts";
import { fileKind } from "../io/read.ts";
import { DocIndex, type DocLocation, scanLines, tracerIdOf } from "./doc_index.ts";

export interface LocalFileOptions {
  /** Directory for the record files; "" disables the store. */
  path: string;
  /** Rotation threshold in MB (config units). */
  rotationSize: number;
  /** Old files kept per tracer (<name>.1 … <name>.N); 0 keeps none. */
  maxRotation: number;
  /** Exact threshold in bytes; overrides rotationSize so tests can use tiny limits. */
  rotationBytes?: number;
  /** Where failures, recoveries and repairs are logged; silent by default. */
  log?: Logger;
  /** Monotonic milliseconds, for the ERROR rate limit (tests). */
  now?: () => number;
  /** Tracers whose documents find() can return (the AutoTracing ones); none by default. */
  indexTracers?: Iterable<string>;
  /** Documents indexed, the most recent first (DEFAULT_INDEX_CAPACITY). */
  indexCapacity?: number;
  /** find() never reads a line longer than this (DEFAULT_MAX_READ_LINE). */
  maxReadLine?: number;
}

export const DEFAULT_INDEX_CAPACITY = 10_000;
/** A flamedata document of a busy host is a few MB; a line past this is not read back. */
export const DEFAULT_MAX_READ_LINE = 64 * 1024 * 1024;

/** Documents of one tracer, since the store was created. */
export interface LocalFileTracerStats {
  written: number;
  failed: number;
}

interface OpenFile {
  file: Deno.FsFile;
  /** Bytes on disk, tracked in memory so writes need no stat. */
  size: number;
}

interface TracerState extends LocalFileTracerStats {
  /** In a failure streak: the last write of this tracer failed. */
  failing: boolean;
  /** Whether this streak's first failure was logged (not suppressed by the rate limit). */
  reported: boolean;
  /** Documents lost since the last INFO recovery line (suppressed streaks included). */
  lostUnreported: number;
  lastErrorLogAt: number;
}

const MB = 1024 * 1024;
const NEWLINE = 0x0a;
/**
 * A tracer whose disk flaps between full and not (a nearly full disk takes
 * small documents and refuses large ones) starts a new streak per success:
 * its ERROR line is repeated at most once a minute.
 */
const ERROR_LOG_INTERVAL_MS = 60_000;
/** How far back the tail repair reads at a time. */
const TAIL_CHUNK = 64 * 1024;
const encoder = new TextEncoder();

export function localFileOptions(config: Config): LocalFileOptions {
  const c = config.Storage.LocalFile;
  return { path: c.Path, rotationSize: c.RotationSize, maxRotation: c.MaxRotation };
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wraps an fs error so the message names the path the caller must look at. */
function fsError(op: string, path: string, err: unknown): Error {
  return new Error(`localfile: ${op} ${path}: ${errMessage(err)}`, { cause: err });
}

function removeIfExists(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw fsError("remove", path, err);
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    Deno.renameSync(from, to);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw fsError("rename", from, err);
  }
}

/** Tracer names become file names, so reject anything that could escape Path. */
function checkTracerName(name: string): void {
  if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name)) {
    throw new Error(`localfile: invalid tracer name ${JSON.stringify(name)}`);
  }
}

/**
 * Writes all of `data` (writeSync may write fewer bytes than asked); on an
 * error, says how many bytes reached the file before it, so they can be cut.
 */
function writeAll(file: Deno.FsFile, data: Uint8Array): { written: number; error?: unknown } {
  let off = 0;
  try {
    while (off < data.length) off += file.writeSync(data.subarray(off));
  } catch (error) {
    return { written: off, error };
  }
  return { written: off };
}

/**
 * The length of a file's complete lines: `size` when it ends in "\n", else
 * the offset just past its last "\n" (0 when it has none). Reads backwards.
 */
export function completeLinesLength(file: Deno.FsFile, size: number): number {
  const buf = new Uint8Array(TAIL_CHUNK);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - TAIL_CHUNK);
    const chunk = buf.subarray(0, end - start);
    file.seekSync(start, Deno.SeekMode.Start);
    let got = 0;
    while (got < chunk.length) {
      const n = file.readSync(chunk.subarray(got));
      if (n === null || n === 0) break;
      got += n;
    }
    const nl = chunk.subarray(0, got).lastIndexOf(NEWLINE);
    if (nl !== -1) return start + nl + 1;
    end = start;
  }
  return 0;
}

export class LocalFileStore {
  readonly enabled: boolean;
  readonly #dir: string;
  readonly #limit: number;
  readonly #maxRotation: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #files = new Map<string, OpenFile>();
  readonly #tracers = new Map<string, TracerState>();
  readonly #indexTracers: ReadonlySet<string>;
  readonly #index: DocIndex;
  readonly #maxReadLine: number;
  /** Rotations per tracer since the store was created: <name>.k holds generation (this − k). */
  readonly #generations = new Map<string, number>();
  #scan: Promise<void> | undefined;
  /** Ids find() waits for the running scan to locate. */
  readonly #wanted = new Set<string>();

  constructor(opts: LocalFileOptions) {
    this.enabled = opts.path !== "";
    this.#dir = opts.path;
    this.#limit = opts.rotationBytes ?? opts.rotationSize * MB;
    this.#maxRotation = Math.max(0, Math.floor(opts.maxRotation));
    this.#log = opts.log ?? silentLogger;
    this.#now = opts.now ?? (() => performance.now());
    this.#indexTracers = new Set(opts.indexTracers ?? []);
    for (const name of this.#indexTracers) checkTracerName(name);
    this.#index = new DocIndex(opts.indexCapacity ?? DEFAULT_INDEX_CAPACITY);
    this.#maxReadLine = opts.maxReadLine ?? DEFAULT_MAX_READ_LINE;
  }

  static fromConfig(
    config: Config,
    log?: Logger,
    extra: Pick<LocalFileOptions, "indexTracers"> = {},
  ): LocalFileStore {
    return new LocalFileStore({ ...localFileOptions(config), log, ...extra });
  }

  /** Path of the live record file for a tracer. */
  filePath(tracerName: string): string {
    return `${this.#dir}/${tracerName}`;
  }

  /**
   * Start-up check: creates Path when missing and proves a file can be
   * created and written in it. A problem is logged as one WARN naming Path
   * and the cause, and returned; the store keeps trying at every document,
   * so writing starts once the cause goes away.
   */
  check(): string | undefined {
    if (!this.enabled) return undefined;
    const probe = `${this.#dir}/.huatuo-bamai-write-test.${Deno.pid}`;
    let problem: string | undefined;
    try {
      Deno.mkdirSync(this.#dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      problem = `cannot create the directory: ${errMessage(err)}`;
    }
    if (problem === undefined) {
      try {
        const f = Deno.openSync(probe, { write: true, createNew: true, mode: 0o600 });
        try {
          // One byte: a full disk fails here, not just a read-only one.
          f.writeSync(new Uint8Array([NEWLINE]));
        } finally {
          f.close();
        }
      } catch (err) {
        problem = `cannot write a file in it: ${errMessage(err)}`;
      }
      try {
        Deno.removeSync(probe);
      } catch { /* never created */ }
    }
    if (problem !== undefined) {
      this.#log.warn("Storage.LocalFile.Path is not writable: documents are not stored locally until it is", {
        path: this.#dir,
        error: problem,
      });
    }
    return problem;
  }

  /**
   * Appends `doc` as one line to its tracer's file; the bytes are written
   * before this returns. Returns false when the store is disabled or the
   * write failed (counted and logged here; the file keeps only whole lines).
   * Never throws.
   */
  write(doc: EventDocument): boolean {
    if (!this.enabled) return false;
    const name = doc.tracer_name;
    const state = this.#state(name);
    const line = encoder.encode(JSON.stringify(doc) + "\n");
    let offset: number;
    try {
      offset = this.#writeLine(name, line);
    } catch (err) {
      this.#failed(name, state, err);
      return false;
    }
    if (this.#indexTracers.has(name) && line.length <= this.#maxReadLine) {
      this.#index.put(doc.tracer_id, {
        tracer: name,
        generation: this.#generation(name),
        offset,
        length: line.length,
      });
    }
    state.written++;
    if (state.failing) this.#recovered(name, state);
    return true;
  }

  /**
   * The stored document with this tracer_id among the indexed tracers'
   * files (live and rotated), or undefined. Reads one line when the id is
   * indexed; otherwise waits for (or runs) one scan of those files.
   */
  async find(tracerId: string): Promise<EventDocument | undefined> {
    if (!this.enabled || this.#indexTracers.size === 0) return undefined;
    const hit = await this.#readIndexed(tracerId);
    if (hit) return hit;
    if (!this.#scan && this.#index.complete) return undefined;
    // A running scan answers this request too (rather than a second scan): it looks out for the ids
    // asked for while it runs, and keeps them indexed even when the index is too small for every line.
    this.#wanted.add(tracerId);
    try {
      this.#scan ??= this.#scanAll().finally(() => this.#scan = undefined);
      await this.#scan;
    } finally {
      this.#wanted.delete(tracerId);
    }
    return await this.#readIndexed(tracerId);
  }

  /** Index size and state, for tests and diagnostics. */
  indexStats(): { size: number; evictions: number; complete: boolean } {
    return { size: this.#index.size, evictions: this.#index.evictions, complete: this.#index.complete };
  }

  /** Written and failed documents per tracer, for metrics. */
  stats(): Map<string, LocalFileTracerStats> {
    const out = new Map<string, LocalFileTracerStats>();
    for (const [name, s] of this.#tracers) out.set(name, { written: s.written, failed: s.failed });
    return out;
  }

  close(): void {
    for (const { file } of this.#files.values()) file.close();
    this.#files.clear();
  }

  #state(name: string): TracerState {
    let s = this.#tracers.get(name);
    if (!s) {
      s = {
        written: 0,
        failed: 0,
        failing: false,
        reported: false,
        lostUnreported: 0,
        lastErrorLogAt: -Infinity,
      };
      this.#tracers.set(name, s);
    }
    return s;
  }

  #failed(name: string, s: TracerState, err: unknown): void {
    s.failed++;
    s.lostUnreported++;
    if (s.failing) return;
    s.failing = true;
    const now = this.#now();
    s.reported = now - s.lastErrorLogAt >= ERROR_LOG_INTERVAL_MS;
    const fields = { tracer: name, path: this.filePath(name), error: errMessage(err) };
    if (s.reported) {
      s.lastErrorLogAt = now;
      this.#log.error("documents not written to the local file (logged once until it works again)", fields);
    } else {
      this.#log.debug("documents not written to the local file again", fields);
    }
  }

  #recovered(name: string, s: TracerState): void {
    s.failing = false;
    // A suppressed streak stays quiet; its losses go into the next reported recovery (and the metric).
    if (!s.reported) return;
    this.#log.info("local file written again", {
      tracer: name,
      path: this.filePath(name),
      lost: s.lostUnreported,
    });
    s.lostUnreported = 0;
  }

  /** Appends the line; returns its offset in the live file. */
  #writeLine(name: string, line: Uint8Array): number {
    checkTracerName(name);
    let open = this.#open(name);
    // Rotate only a non-empty file, so a line larger than the limit still lands.
    if (open.size > 0 && open.size + line.length > this.#limit) {
      this.#rotate(name);
      open = this.#open(name);
    }
    const offset = open.size;
    this.#append(name, open, line);
    return offset;
  }

  #generation(name: string): number {
    return this.#generations.get(name) ?? 0;
  }

  /** The file that holds a generation now, or undefined when rotation has dropped it. */
  #pathOf(loc: DocLocation): string | undefined {
    const k = this.#generation(loc.tracer) - loc.generation;
    if (k < 0 || k > this.#maxRotation) return undefined;
    return k === 0 ? this.filePath(loc.tracer) : `${this.filePath(loc.tracer)}.${k}`;
  }

  /** The indexed document, read from its line and checked to be it; a wrong or gone location is forgotten. */
  async #readIndexed(id: string): Promise<EventDocument | undefined> {
    const loc = this.#index.get(id);
    if (!loc) return undefined;
    const path = this.#pathOf(loc);
    const doc = path === undefined ? undefined : await readDocument(path, loc, this.#maxReadLine);
    if (doc?.tracer_id === id) return doc;
    this.#index.delete(id);
    // Rotated away: the document is gone. Anything else: the file changed behind the index, which a scan mends.
    if (path !== undefined) this.#index.complete = false;
    return undefined;
  }

  /** Indexes every line of the indexed tracers' files, oldest file first (so the newest stay indexed). */
  async #scanAll(): Promise<void> {
    const evictions = this.#index.evictions;
    const wanted = new Map<string, DocLocation>();
    let whole = true;
    for (const tracer of this.#indexTracers) {
      const before = this.#generation(tracer);
      for (let k = this.#maxRotation; k >= 0; k--) {
        const path = k === 0 ? this.filePath(tracer) : `${this.filePath(tracer)}.${k}`;
        let file: Deno.FsFile;
        try {
          file = await openRegular(path);
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) continue;
          this.#log.warn("local file: cannot read it to find a document", { path, error: errMessage(err) });
          whole = false;
          continue;
        }
        // At open time: a rotation during the read renames the file, and this handle keeps reading it.
        const generation = this.#generation(tracer) - k;
        try {
          const { skipped } = await scanLines(file, this.#maxReadLine, (offset, line) => {
            const id = tracerIdOf(line);
            if (id === undefined) return;
            const loc = { tracer, generation, offset, length: line.length + 1 };
            this.#index.put(id, loc);
            if (this.#wanted.has(id)) wanted.set(id, loc);
          });
          if (skipped > 0) {
            this.#log.warn("local file: lines too long to read back skipped", { path, lines: skipped });
          }
        } catch (err) {
          this.#log.warn("local file: cannot read it to find a document", { path, error: errMessage(err) });
          whole = false;
        } finally {
          file.close();
        }
      }
      // A rotation in the middle may have moved a file past the loop: this scan cannot vouch for all.
      if (this.#generation(tracer) !== before) whole = false;
    }
    this.#index.complete = whole && this.#index.evictions === evictions;
    // The ids asked for, last: younger than anything the scan indexed, so no later line pushed them out.
    for (const [id, loc] of wanted) this.#index.put(id, loc);
  }

  #open(name: string): OpenFile {
    const cached = this.#files.get(name);
    if (cached) return cached;
    const path = this.filePath(name);
    try {
      Deno.mkdirSync(this.#dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw fsError("mkdir", this.#dir, err);
    }
    let file: Deno.FsFile | undefined;
    try {
      // read: the tail repair looks at the last bytes.
      file = Deno.openSync(path, { read: true, append: true, create: true, mode: 0o644 });
      // Stat once so an existing file's bytes count toward the rotation limit.
      let size = file.statSync().size;
      const whole = size > 0 ? completeLinesLength(file, size) : 0;
      if (whole < size) {
        // An earlier run (or a failed cut) left part of a line: the next line would be glued to it.
        file.truncateSync(whole);
        this.#log.warn("local file: cut an unterminated last line", { path, bytes: size - whole });
        size = whole;
      }
      const open = { file, size };
      this.#files.set(name, open);
      return open;
    } catch (err) {
      file?.close();
      throw fsError("open", path, err);
    }
  }

  #append(name: string, open: OpenFile, line: Uint8Array): void {
    const { written, error } = writeAll(open.file, line);
    if (error === undefined) {
      open.size += line.length;
      return;
    }
    const path = this.filePath(name);
    if (written > 0) {
      // Whole or absent: cut the part of the line that reached the file.
      try {
        // The size on disk rather than the tracked one, in case the file grew behind our back.
        const before = open.file.statSync().size - written;
        open.file.truncateSync(before);
        open.size = before;
      } catch {
        // The cut failed too: drop the handle; reopening cuts the unterminated tail.
        this.#forget(name);
      }
    }
    throw fsError("write", path, error);
  }

  /** <name>.N is dropped, .i → .i+1, <name> → .1; with maxRotation 0 <name> is just removed. */
  #rotate(name: string): void {
    this.#forget(name);
    // Before the renames: a failure half-way leaves fewer files than counted, which a lookup detects.
    this.#generations.set(name, this.#generation(name) + 1);
    const base = this.filePath(name);
    if (this.#maxRotation === 0) {
      removeIfExists(base);
      return;
    }
    removeIfExists(`${base}.${this.#maxRotation}`);
    for (let i = this.#maxRotation - 1; i >= 1; i--) {
      renameIfExists(`${base}.${i}`, `${base}.${i + 1}`);
    }
    renameIfExists(base, `${base}.1`);
  }

  #forget(name: string): void {
    const open = this.#files.get(name);
    if (!open) return;
    this.#files.delete(name);
    try {
      open.file.close();
    } catch {
      // Already closed/broken handles need no further cleanup.
    }
  }
}

/** Opens a file to read that must be a regular one: opening a FIFO would wait for a writer forever. */
async function openRegular(path: string): Promise<Deno.FsFile> {
  const info = await Deno.stat(path);
  if (!info.isFile) throw new Error(`not a regular file (${fileKind(info)})`);
  return await Deno.open(path, { read: true });
}

/** The document on one line of a file, or undefined when the line is not one (the file changed). */
async function readDocument(
  path: string,
  loc: DocLocation,
  maxLine: number,
): Promise<EventDocument | undefined> {
  if (loc.length > maxLine || loc.length < 2) return undefined;
  let file: Deno.FsFile;
  try {
    file = await openRegular(path);
  } catch {
    return undefined;
  }
  try {
    await file.seek(loc.offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(loc.length);
    let got = 0;
    while (got < buf.length) {
      const n = await file.read(buf.subarray(got));
      if (n === null || n === 0) return undefined;
      got += n;
    }
    if (buf[buf.length - 1] !== NEWLINE) return undefined;
    const doc: unknown = JSON.parse(new TextDecoder().decode(buf.subarray(0, buf.length - 1)));
    return typeof doc === "object" && doc !== null && !Array.isArray(doc) ? doc as EventDocument : undefined;
  } catch {
    return undefined;
  } finally {
    file.close();
  }
}
