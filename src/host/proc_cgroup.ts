// /proc/<pid>/cgroup: one line per hierarchy, "id:controllers:path"; the
// cgroup2 line has no controllers ("0::/path").

/** Parses /proc/<pid>/cgroup into controller → path ("" key for the unified hierarchy). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of m[1].split(",")) out.set(c.replace(/^name=/, ""), m[2]);
  }
  return out;
}
