// /proc/<pid>/net/sockstat and sockstat6:
//   sockets: used 409
//   TCP: inuse 1 orphan 0 tw 75 alloc 171 mem 3

import { SourceError } from "./fs.ts";

/** Returns "TCP" → ("inuse" → 1, ...); "sockets" → ("used" → 409). */
export function parseSockStat(text: string, path = "net/sockstat"): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    const parts = line.slice(colon + 1).trim().split(/\s+/);
    if (colon <= 0 || parts.length % 2 !== 0) {
      throw new SourceError(
        path,
        `line ${i + 1}: expected "PROTO: key value ...", found ${JSON.stringify(line)}`,
      );
    }
    const fields = new Map<string, number>();
    for (let j = 0; j < parts.length; j += 2) {
      if (!/^\d+$/.test(parts[j + 1])) {
        throw new SourceError(path, `line ${i + 1}: ${parts[j]} is not a number`);
      }
      fields.set(parts[j], Number(parts[j + 1]));
    }
    out.set(line.slice(0, colon), fields);
  }
  if (out.size === 0) throw new SourceError(path, "empty");
  return out;
}
