// /proc/<pid>/mountinfo (proc(5)):
// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue

import { SourceError } from "./fs.ts";

export interface MountInfo {
  mountPoint: string;
  /** Per-mount options (field 6), e.g. ["rw", "noatime"]. */
  options: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

export function parseMountInfo(text: string, path = "mountinfo"): MountInfo[] {
  const out: MountInfo[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (f.length < 10 || sep < 0 || f.length < sep + 4) {
      throw new SourceError(path, `line ${i + 1}: malformed ${JSON.stringify(line)}`);
    }
    out.push({
      mountPoint: unescapeOctal(f[4]),
      options: f[5].split(","),
      fsType: f[sep + 1],
      source: unescapeOctal(f[sep + 2]),
      superOptions: f[sep + 3].split(","),
    });
  }
  if (out.length === 0) throw new SourceError(path, "no mounts");
  return out;
}

/** The kernel escapes space, tab, newline and backslash as \ooo. */
function unescapeOctal(s: string): string {
  return s.includes("\\")
    ? s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
    : s;
}
