// Storage.LocalFile: one JSON document per line in <Path>/<tracer_name>, kept
// on the host for troubleshooting, size-rotated per tracer.

import type { Config } from "../config/schema.ts";
import type { EventDocument } from "./document.ts";

export interface LocalFileOptions {
  /** Directory for the record files; "" disables the store. */
  path: string;
  /** Rotation threshold in MB (config units). */
  rotationSize: number;
  /** Old files kept per tracer (<name>.1 … <name>.N); 0 keeps none. */
  maxRotation: number;
  /** Exact threshold in bytes; overrides rotationSize so tests can use tiny limits. */
  rotationBytes?: number;
}

interface OpenFile {
  file: Deno.FsFile;
  /** Bytes on disk, tracked in memory so writes need no stat. */
  size: number;
}

const MB = 1024 * 1024;
const encoder = new TextEncoder();

export function localFileOptions(config: Config): LocalFileOptions {
  const c = config.Storage.LocalFile;
  return { path: c.Path, rotationSize: c.RotationSize, maxRotation: c.MaxRotation };
}

/** Wraps an fs error so the message names the path the caller must look at. */
function fsError(op: string, path: string, err: unknown): Error {
  const why = err instanceof Error ? err.message : String(err);
  return new Error(`localfile: ${op} ${path}: ${why}`, { cause: err });
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

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  // writeSync may write fewer bytes than asked; loop until the line is whole.
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

export class LocalFileStore {
  readonly enabled: boolean;
  readonly #dir: string;
  readonly #limit: number;
  readonly #maxRotation: number;
  readonly #files = new Map<string, OpenFile>();

  constructor(opts: LocalFileOptions) {
    this.enabled = opts.path !== "";
    this.#dir = opts.path;
    this.#limit = opts.rotationBytes ?? opts.rotationSize * MB;
    this.#maxRotation = Math.max(0, Math.floor(opts.maxRotation));
  }

  static fromConfig(config: Config): LocalFileStore {
    return new LocalFileStore(localFileOptions(config));
  }

  /** Path of the live record file for a tracer. */
  filePath(tracerName: string): string {
    return `${this.#dir}/${tracerName}`;
  }

  /**
   * Appends `doc` as one line to its tracer's file; the bytes are written
   * before this returns. Returns false when the store is disabled; throws
   * (naming the path) on I/O errors.
   */
  write(doc: EventDocument): boolean {
    if (!this.enabled) return false;
    checkTracerName(doc.tracer_name);
    const line = encoder.encode(JSON.stringify(doc) + "\n");
    const name = doc.tracer_name;
    let open = this.#open(name);
    // Rotate only a non-empty file, so a line larger than the limit still lands.
    if (open.size > 0 && open.size + line.length > this.#limit) {
      this.#rotate(name);
      open = this.#open(name);
    }
    this.#append(name, open, line);
    return true;
  }

  close(): void {
    for (const { file } of this.#files.values()) file.close();
    this.#files.clear();
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
      file = Deno.openSync(path, { append: true, create: true, mode: 0o644 });
      // Stat once so an existing file's bytes count toward the rotation limit.
      const open = { file, size: file.statSync().size };
      this.#files.set(name, open);
      return open;
    } catch (err) {
      file?.close();
      throw fsError("open", path, err);
    }
  }

  #append(name: string, open: OpenFile, line: Uint8Array): void {
    try {
      writeAll(open.file, line);
      open.size += line.length;
    } catch (err) {
      // A partial write leaves the size unknown: drop the handle so the next
      // write reopens and re-stats.
      this.#forget(name);
      throw fsError("write", this.filePath(name), err);
    }
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
