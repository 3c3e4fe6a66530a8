// HostFs is the one root every reader goes through: `--procfs-prefix` prefixes
// /proc, /sys and /dev, so each collector runs unchanged against fixture trees.
// Reads are bounded (MAX_PROC_FILE_BYTES): a file of another process or a
// fixture tree must not be able to fill the agent's heap.

import { MiB, ReadLimitError, readTextFileBounded, readTextFileBoundedSync } from "../io/read.ts";

/**
 * The most a /proc, /sys or cgroup file may hold. The largest real ones
 * (mountinfo with thousands of mounts, cgroup.procs of a big cgroup,
 * /proc/<pid>/stack) are a few MB at most.
 */
export const MAX_PROC_FILE_BYTES = 16 * MiB;

export class SourceError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = "SourceError";
  }
}

export class HostFs {
  /** `prefix` is "" for the real host, or a directory holding proc/, sys/, dev/. */
  constructor(readonly prefix: string = "") {
    this.prefix = prefix.replace(/\/+$/, "");
  }

  proc(rel: string): string {
    return `${this.prefix}/proc/${rel}`;
  }

  sys(rel: string): string {
    return `${this.prefix}/sys/${rel}`;
  }

  dev(rel: string): string {
    return `${this.prefix}/dev/${rel}`;
  }

  /** Reads a whole text file synchronously (procfs/sysfs: never waits on a disk); errors name the path. */
  readTextSync(path: string): string {
    return readProcTextSync(path);
  }

  /** Reads a whole text file; errors name the path and the cause. */
  readText(path: string): Promise<string> {
    return readProcText(path);
  }
}

/** Reads a /proc, /sys or cgroup file of at most `maxBytes`; a SourceError names the path and the cause. */
export function readProcTextSync(path: string, maxBytes = MAX_PROC_FILE_BYTES): string {
  try {
    return readTextFileBoundedSync(path, maxBytes);
  } catch (err) {
    throw new SourceError(path, describeFsError(err));
  }
}

/** Reads a /proc, /sys or cgroup file of at most `maxBytes`; a SourceError names the path and the cause. */
export async function readProcText(path: string, maxBytes = MAX_PROC_FILE_BYTES): Promise<string> {
  try {
    return await readTextFileBounded(path, maxBytes);
  } catch (err) {
    throw new SourceError(path, describeFsError(err));
  }
}

/** Whether `path` exists (any type; links followed). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

export function describeFsError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof ReadLimitError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
