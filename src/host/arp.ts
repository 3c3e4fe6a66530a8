// /proc/<pid>/net/arp: a header line, then one line per neighbour entry.

import { SourceError } from "./fs.ts";

export function countArpEntries(text: string, path = "net/arp"): number {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0 || !lines[0].startsWith("IP address")) {
    throw new SourceError(path, "missing the header line");
  }
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim().split(/\s+/).length < 6) {
      throw new SourceError(path, `line ${i + 1}: expected 6 columns, found ${JSON.stringify(lines[i])}`);
    }
  }
  return lines.length - 1;
}

/** "net:[4026531840]" → "4026531840"; the inode identifies a network namespace. */
export function netnsInode(link: string): string | undefined {
  return /^net:\[(\d+)\]$/.exec(link)?.[1];
}
