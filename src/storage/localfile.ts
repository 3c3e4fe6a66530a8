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

import type { Config } from "../config/schema.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import type { EventDocument } from "../core/document.ts";

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
}

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

  constructor(opts: LocalFileOptions) {
    this.enabled = opts.path !== "";
    this.#dir = opts.path;
    this.#limit = opts.rotationBytes ?? opts.rotationSize * MB;
    this.#maxRotation = Math.max(0, Math.floor(opts.maxRotation));
    this.#log = opts.log ?? silentLogger;
    this.#now = opts.now ?? (() => performance.now());
  }

  static fromConfig(config: Config, log?: Logger): LocalFileStore {
    return new LocalFileStore({ ...localFileOptions(config), log });
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
    try {
      this.#writeLine(name, encoder.encode(JSON.stringify(doc) + "\n"));
    } catch (err) {
      this.#failed(name, state, err);
      return false;
    }
    state.written++;
    if (state.failing) this.#recovered(name, state);
    return true;
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

  #writeLine(name: string, line: Uint8Array): void {
    checkTracerName(name);
    let open = this.#open(name);
    // Rotate only a non-empty file, so a line larger than the limit still lands.
    if (open.size > 0 && open.size + line.length > this.#limit) {
      this.#rotate(name);
      open = this.#open(name);
    }
    this.#append(name, open, line);
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
