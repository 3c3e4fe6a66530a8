// "key value" per line files: /proc/vmstat, cgroup memory.stat, memory.events.

import { SourceError } from "./fs.ts";

export function parseKeyValue(text: string, path = "key-value file"): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const sp = line.indexOf(" ");
    const value = sp > 0 ? line.slice(sp + 1).trim() : "";
    if (sp <= 0 || !/^-?\d+$/.test(value)) {
      throw new SourceError(path, `line ${i + 1}: expected "name value", found ${JSON.stringify(line)}`);
    }
    out.set(line.slice(0, sp), Number(value));
  }
  if (out.size === 0) throw new SourceError(path, "empty");
  return out;
}
