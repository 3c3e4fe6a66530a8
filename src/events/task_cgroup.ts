// The cgroup id of a live task, for events whose BPF record names a task
// (pid) but no cgroup: read when the record is decoded, so a task that has
// exited by then has none (its event simply carries no container fields).

import { MAX_PROC_FILE_BYTES } from "../host/fs.ts";
import { parseProcCgroup } from "../host/proc_cgroup.ts";
import { readTextFileBoundedSync } from "../io/read.ts";

/** The cgroup path of a /proc/<pid>/cgroup text: the cgroup2 line ("0::/path"), else the v1 memory line. */
export function taskCgroupPaths(text: string): { unified?: string; memory?: string } {
  const paths = parseProcCgroup(text);
  const out: { unified?: string; memory?: string } = {};
  if (paths.has("")) out.unified = paths.get("");
  if (paths.has("memory")) out.memory = paths.get("memory");
  return out;
}

const UNIFIED_MOUNTS = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];
const MEMORY_MOUNT = "/sys/fs/cgroup/memory";

function inode(path: string): number | undefined {
  try {
    return Deno.statSync(path).ino ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * The id the container registry knows the task's cgroup by (byCgroupId): its
 * v1 memory cgroup inode where the memory controller is on v1 (the hierarchy
 * kubelet places containers in on such hosts), else its cgroup2 id (inode of
 * its cgroup2 directory). Undefined for a task that is gone or in a root cgroup.
 */
export function taskCgroupId(pid: number, procRoot = "/proc"): number | undefined {
  if (pid <= 0) return undefined;
  let text: string;
  try {
    text = readTextFileBoundedSync(`${procRoot}/${pid}/cgroup`, MAX_PROC_FILE_BYTES);
  } catch {
    return undefined;
  }
  const p = taskCgroupPaths(text);
  if (p.memory !== undefined) return p.memory === "/" ? undefined : inode(`${MEMORY_MOUNT}${p.memory}`);
  if (p.unified === undefined || p.unified === "/") return undefined;
  for (const mount of UNIFIED_MOUNTS) {
    const ino = inode(`${mount}${p.unified}`);
    if (ino) return ino;
  }
  return undefined;
}
