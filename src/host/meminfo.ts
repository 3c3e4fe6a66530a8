// /proc/meminfo: "Name:   value kB" per line; sizes in kB, counts (HugePages_*) without a unit.

import { SourceError } from "./fs.ts";

/** Every line as bytes (kB × 1024) or, for unit-less lines, the plain count. */
export function parseMeminfo(text: string, path = "meminfo"): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const m = /^([\w()]+):\s+(\d+)(?: (kB))?\s*$/.exec(line);
    if (!m) {
      throw new SourceError(
        path,
        `line ${i + 1}: expected "Name: value [kB]", found ${JSON.stringify(line)}`,
      );
    }
    out.set(m[1], m[3] ? Number(m[2]) * 1024 : Number(m[2]));
  }
  if (out.size === 0) throw new SourceError(path, "empty");
  return out;
}

/** A line that must be present (MemTotal, AnonPages). */
export function meminfoValue(info: ReadonlyMap<string, number>, key: string, path = "meminfo"): number {
  const v = info.get(key);
  if (v === undefined) throw new SourceError(path, `no ${key} line`);
  return v;
}
