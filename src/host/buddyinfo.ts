// /proc/buddyinfo: "Node 0, zone   Normal   7  36  10 ..." free blocks per order.

import { SourceError } from "./fs.ts";

export interface BuddyZone {
  node: string;
  zone: string;
  /** Free block count per order, index = order. */
  blocks: number[];
}

export function parseBuddyInfo(text: string, path = "buddyinfo"): BuddyZone[] {
  const out: BuddyZone[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const m = /^Node\s+(\d+),\s+zone\s+(\S+)\s+(.*)$/.exec(line);
    const counts = m ? m[3].trim().split(/\s+/) : [];
    if (!m || counts.length === 0 || counts.some((c) => !/^\d+$/.test(c))) {
      throw new SourceError(path, `line ${i + 1}: unexpected ${JSON.stringify(line)}`);
    }
    out.push({ node: m[1], zone: m[2], blocks: counts.map(Number) });
  }
  if (out.length === 0) throw new SourceError(path, "no zones");
  return out;
}
