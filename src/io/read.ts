// Bounded reads of files the agent does not control: /proc and cgroup files
// of other processes, the config file, certificates. Deno.readFile reads
// until EOF, so /dev/zero (or a runaway file) grows the heap until the OOM
// killer comes; these stop at a byte limit and say so.

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** A file held more bytes than its reader accepts. */
export class ReadLimitError extends Error {
  constructor(readonly path: string, readonly limit: number) {
    super(`larger than ${formatBytes(limit)}`);
    this.name = "ReadLimitError";
  }
}

/** A file that must be a regular file is something else (a FIFO would block the reader forever). */
export class NotRegularFileError extends Error {
  constructor(readonly path: string, readonly kind: string) {
    super(`not a regular file (${kind})`);
    this.name = "NotRegularFileError";
  }
}

/** "16 MiB", "1 KiB", "100 bytes": limits as people write them. */
export function formatBytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} bytes`;
}

/** What kind of file `info` describes, for messages: "a FIFO", "a character device", ... */
export function fileKind(info: Deno.FileInfo): string {
  if (info.isFile) return "a regular file";
  if (info.isDirectory) return "a directory";
  if (info.isSymlink) return "a symbolic link";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/** Joins `chunks` (`total` bytes in all) into one array. */
function join(chunks: readonly Uint8Array[], total: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

// One scratch buffer for synchronous reads: most /proc and cgroup files fit in
// it, so a read costs no allocation besides the result.
const SCRATCH_BYTES = 64 * KiB;
let scratch: Uint8Array<ArrayBuffer> | undefined;

/** Reads `file` to its end, or throws ReadLimitError past `maxBytes`. */
export function readAllBoundedSync(
  file: Deno.FsFile,
  maxBytes: number,
  path: string,
): Uint8Array<ArrayBuffer> {
  scratch ??= new Uint8Array(SCRATCH_BYTES);
  const chunks: Uint8Array[] = [];
  let buf = scratch;
  let used = 0;
  let total = 0;
  for (;;) {
    if (used === buf.length) {
      chunks.push(buf);
      // Doubling keeps a large file at a few reads; the cap stays the bound.
      buf = new Uint8Array(Math.max(1, Math.min(buf.length * 2, maxBytes + 1 - total)));
      used = 0;
    }
    const n = file.readSync(buf.subarray(used));
    if (n === null) break;
    used += n;
    total += n;
    if (total > maxBytes) throw new ReadLimitError(path, maxBytes);
  }
  chunks.push(buf.subarray(0, used));
  return join(chunks, total);
}

/** Reads `file` to its end, or throws ReadLimitError past `maxBytes`. */
export async function readAllBounded(
  file: Deno.FsFile,
  maxBytes: number,
  path: string,
  signal?: AbortSignal,
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let buf = new Uint8Array(Math.min(16 * KiB, maxBytes + 1));
  let used = 0;
  let total = 0;
  for (;;) {
    signal?.throwIfAborted();
    if (used === buf.length) {
      chunks.push(buf);
      buf = new Uint8Array(Math.max(1, Math.min(buf.length * 2, maxBytes + 1 - total)));
      used = 0;
    }
    const n = await file.read(buf.subarray(used));
    if (n === null) break;
    used += n;
    total += n;
    if (total > maxBytes) throw new ReadLimitError(path, maxBytes);
  }
  chunks.push(buf.subarray(0, used));
  return join(chunks, total);
}

/** Reads a whole file of at most `maxBytes` bytes (procfs and sysfs files report size 0: no stat check). */
export function readFileBoundedSync(path: string, maxBytes: number): Uint8Array<ArrayBuffer> {
  const file = Deno.openSync(path, { read: true });
  try {
    return readAllBoundedSync(file, maxBytes, path);
  } finally {
    file.close();
  }
}

/** Reads a whole file of at most `maxBytes` bytes. */
export async function readFileBounded(path: string, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const file = await Deno.open(path, { read: true });
  try {
    return await readAllBounded(file, maxBytes, path);
  } finally {
    file.close();
  }
}

const decoder = new TextDecoder();

export function readTextFileBoundedSync(path: string, maxBytes: number): string {
  return decoder.decode(readFileBoundedSync(path, maxBytes));
}

export async function readTextFileBounded(path: string, maxBytes: number): Promise<string> {
  return decoder.decode(await readFileBounded(path, maxBytes));
}

/** Why a stat result is not acceptable for a regular file of at most maxBytes, or undefined. */
function checkRegular(path: string, info: Deno.FileInfo, maxBytes: number): Error | undefined {
  if (!info.isFile) return new NotRegularFileError(path, fileKind(info));
  if (info.size > maxBytes) return new ReadLimitError(path, maxBytes);
  return undefined;
}

/**
 * Reads a file a user named (the config, a certificate): it must be a regular
 * file of at most `maxBytes`. The path is stat'ed before it is opened, so a
 * FIFO or a device is refused without blocking or reading, and the open file
 * is fstat'ed again so a file swapped in between is refused too.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const before = await Deno.stat(path);
  const bad = checkRegular(path, before, maxBytes);
  if (bad) throw bad;
  const file = await Deno.open(path, { read: true });
  try {
    const after = await file.stat();
    const swapped = checkRegular(path, after, maxBytes);
    if (swapped) throw swapped;
    // The size may still grow while we read: the reader's own bound holds.
    return await readAllBounded(file, maxBytes, path);
  } finally {
    file.close();
  }
}

/** readRegularFile, synchronously. */
export function readRegularFileSync(path: string, maxBytes: number): Uint8Array<ArrayBuffer> {
  const before = Deno.statSync(path);
  const bad = checkRegular(path, before, maxBytes);
  if (bad) throw bad;
  const file = Deno.openSync(path, { read: true });
  try {
    const swapped = checkRegular(path, file.statSync(), maxBytes);
    if (swapped) throw swapped;
    return readAllBoundedSync(file, maxBytes, path);
  } finally {
    file.close();
  }
}
