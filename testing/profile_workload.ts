// Test and benchmark support for the CPU profiler (src/profile/): compiles
// testing/profile_workload.c with frame pointers, runs its modes, and finds
// the perf tool to compare against.

const SOURCE = new URL("./profile_workload.c", import.meta.url).pathname;

export type WorkloadMode = "spin" | "sys" | "mix" | "count";

/** Why the workload cannot be built here (no gcc), or undefined. */
export function workloadSkipReason(): string | undefined {
  try {
    new Deno.Command("gcc", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    return undefined;
  } catch {
    return "gcc is missing (./build.sh deps installs it)";
  }
}

/**
 * Compiles the workload into `dir` (a fresh temp dir by default) with
 * `-O1 -fno-omit-frame-pointer` plus `extraFlags`; returns the binary's path.
 */
export async function buildWorkload(dir?: string, extraFlags: string[] = [], name = "work"): Promise<string> {
  const out = `${dir ?? await Deno.makeTempDir({ prefix: "huatuo-prof-" })}/${name}`;
  const r = await new Deno.Command("gcc", {
    args: ["-O1", "-fno-omit-frame-pointer", ...extraFlags, "-o", out, SOURCE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`gcc ${SOURCE}: ${new TextDecoder().decode(r.stderr)}`);
  return out;
}

/** Starts `bin mode seconds`, optionally pinned to `cpu` (taskset); stdout piped for "count". */
export function startWorkload(
  bin: string,
  mode: WorkloadMode,
  opts: { seconds?: number; cpu?: number } = {},
): Deno.ChildProcess {
  const args = [mode, String(opts.seconds ?? 60)];
  const [cmd, argv] = opts.cpu === undefined
    ? [bin, args]
    : ["taskset", ["-c", String(opts.cpu), bin, ...args]];
  return new Deno.Command(cmd, { args: argv, stdout: mode === "count" ? "piped" : "null", stderr: "null" })
    .spawn();
}

/** Kills a workload and waits for it. */
export async function stopWorkload(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* already exited */ }
  await child.status;
}

/** The perf binary: /usr/bin/perf, or Debian/Ubuntu's versioned ones under /usr/lib/linux-tools*. */
export function findPerf(): string | undefined {
  const candidates = ["/usr/bin/perf", "/usr/local/bin/perf", "/usr/sbin/perf"];
  for (const dir of ["/usr/lib", "/usr/libexec"]) {
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.name.startsWith("linux-tools")) candidates.push(`${dir}/${e.name}/perf`);
      }
    } catch { /* no such directory */ }
  }
  for (const c of candidates) {
    try {
      const r = new Deno.Command(c, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
      if (r.success) return c;
    } catch { /* not there */ }
  }
  return undefined;
}

/**
 * Self samples by symbol from `perf report --stdio --no-children --sort sym`
 * output: lines "  12.34%  [k] do_syscall_64"; `kernel` keeps [k] lines only.
 */
export function parsePerfReport(text: string, kernel = true): { sym: string; percent: number }[] {
  const out: { sym: string; percent: number }[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s+([\d.]+)%\s+\[(.)\]\s+(.+?)\s*$/.exec(line);
    if (!m || (kernel && m[2] !== "k")) continue;
    out.push({ sym: m[3], percent: Number(m[1]) });
  }
  return out.sort((a, b) => b.percent - a.percent);
}
