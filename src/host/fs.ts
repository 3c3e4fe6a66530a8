// HostFs is the one root every reader goes through: `--procfs-prefix` prefixes
// /proc, /sys and /dev, so each collector runs unchanged against fixture trees.

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
    try {
      return Deno.readTextFileSync(path);
    } catch (err) {
      throw new SourceError(path, describeFsError(err));
    }
  }

  /** Reads a whole text file; errors name the path and the cause. */
  async readText(path: string): Promise<string> {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new SourceError(path, describeFsError(err));
    }
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
  return err instanceof Error ? err.message : String(err);
}
