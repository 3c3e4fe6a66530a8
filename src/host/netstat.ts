// /proc/<pid>/net/netstat and net/snmp: pairs of lines, a header line of names
// and a value line, both starting with the same "Proto:" tag.

import { SourceError } from "./fs.ts";

/** Returns "Proto" → (field → value), e.g. "TcpExt" → "ListenDrops" → 3. */
export function parseProtoStats(text: string, path = "net/netstat"): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length % 2 !== 0) throw new SourceError(path, "odd number of lines: header without values");
  for (let i = 0; i < lines.length; i += 2) {
    const names = lines[i].trim().split(/\s+/);
    const values = lines[i + 1].trim().split(/\s+/);
    const proto = names[0];
    if (!proto.endsWith(":") || values[0] !== proto) {
      throw new SourceError(path, `line ${i + 2}: expected values for ${proto}, found ${values[0]}`);
    }
    if (names.length !== values.length) {
      throw new SourceError(path, `${proto} ${names.length - 1} names but ${values.length - 1} values`);
    }
    const fields = new Map<string, number>();
    for (let j = 1; j < names.length; j++) {
      if (!/^-?\d+$/.test(values[j])) throw new SourceError(path, `${proto}${names[j]} is not a number`);
      fields.set(names[j], Number(values[j]));
    }
    out.set(proto.slice(0, -1), fields);
  }
  return out;
}
