// Finding one stored document by its tracer_id without reading every file:
// the pieces LocalFileStore (localfile.ts) builds its lookup from.
//
// - DocIndex: tracer_id → where its line is, for the most recent `capacity`
//   documents (a Map in insertion order is the queue: the oldest goes first).
//   A location names the tracer file by generation, not by path: rotation
//   renames <name> to <name>.1 and so on, and the store counts its rotations,
//   so <name>.k holds generation (current − k) without the index being touched.
// - scanLines: the whole lines of a file with their offsets, in bounded
//   memory (a line over the limit is skipped, never held).
// - tracerIdOf: a line's tracer_id without parsing the whole document.

export interface DocLocation {
  readonly tracer: string;
  /** The tracer file's generation when the line was written (see LocalFileStore.generation). */
  readonly generation: number;
  /** Byte offset of the line and its length, "\n" included. */
  readonly offset: number;
  readonly length: number;
}

export class DocIndex {
  readonly #map = new Map<string, DocLocation>();
  #evictions = 0;
  /**
   * Set after a scan found every line of the indexed tracers' files; then an
   * id not here is on no file (writes since are indexed as they happen).
   * Cleared when an id is evicted or a location proves wrong.
   */
  complete = false;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.#map.size;
  }

  /** Ids dropped to make room, since the index was created. */
  get evictions(): number {
    return this.#evictions;
  }

  get(id: string): DocLocation | undefined {
    return this.#map.get(id);
  }

  put(id: string, loc: DocLocation): void {
    this.#map.delete(id); // re-inserted at the young end
    this.#map.set(id, loc);
    while (this.#map.size > this.capacity) {
      this.#map.delete(this.#map.keys().next().value!);
      this.#evictions++;
      this.complete = false;
    }
  }

  delete(id: string): void {
    this.#map.delete(id);
  }
}

const decoder = new TextDecoder();
const TRACER_ID = /"tracer_id"\s*:\s*"([^"\\]{1,256})"/;
/** The envelope (hostname … tracer_id) comes before tracer_data: a short head usually holds the id. */
const HEAD_BYTES = 4096;

/** The tracer_id of a stored line (a JSON document), or undefined. Confirm with a full parse before use. */
export function tracerIdOf(line: Uint8Array): string | undefined {
  const head = TRACER_ID.exec(decoder.decode(line.subarray(0, HEAD_BYTES)));
  if (head) return head[1];
  return line.length > HEAD_BYTES ? TRACER_ID.exec(decoder.decode(line))?.[1] : undefined;
}

const CHUNK = 1024 * 1024;
const NEWLINE = 0x0a;

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Calls `onLine` with each whole line of `file` (from its current position,
 * taken to be 0) and the line's offset; the "\n" is not passed. Lines over
 * `maxLine` bytes and an unterminated last line are skipped, the former
 * counted in the result. Memory: one chunk plus at most one line.
 */
export async function scanLines(
  file: Deno.FsFile,
  maxLine: number,
  onLine: (offset: number, line: Uint8Array) => void,
): Promise<{ skipped: number }> {
  const buf = new Uint8Array(CHUNK);
  let pos = 0; // offset of buf[0] in the file
  let lineStart = 0;
  let parts: Uint8Array[] = [];
  let partsLength = 0;
  let skipping = false;
  let skipped = 0;
  while (true) {
    const n = await file.read(buf);
    if (n === null || n === 0) break;
    let from = 0;
    while (from < n) {
      const nl = buf.subarray(from, n).indexOf(NEWLINE);
      const end = nl < 0 ? n : from + nl;
      if (!skipping) {
        if (partsLength + (end - from) > maxLine) {
          skipping = true;
          parts = [];
          partsLength = 0;
        } else if (end > from) {
          // Copied: buf is reused by the next read.
          parts.push(buf.slice(from, end));
          partsLength += end - from;
        }
      }
      if (nl < 0) break;
      if (skipping) skipped++;
      else onLine(lineStart, concat(parts, partsLength));
      parts = [];
      partsLength = 0;
      skipping = false;
      lineStart = pos + end + 1;
      from = end + 1;
    }
    pos += n;
  }
  return { skipped };
}
