// Small file-system checks shared by tests that need a kernel feature or a
// built BPF object before they can run.

/** Whether `path` exists (any type; links followed). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
