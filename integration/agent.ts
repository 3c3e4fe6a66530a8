// Starts the real built binary (_output/bin/huatuo-bamai) for end-to-end tests.

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const BINARY = `${ROOT}/_output/bin/huatuo-bamai`;
export const SHIPPED_CONF = `${ROOT}/huatuo-bamai.conf`;

/**
 * HUATUO_IT_SOURCE=1 runs the agent from source (deno run main.ts, BPF objects
 * from _output/bpf) instead of the built binary: for iterating on one test
 * without rebuilding. CI always tests the built binary.
 */
function agentCommand(): { cmd: string[]; fromSource: boolean } {
  const fromSource = Deno.env.get("HUATUO_IT_SOURCE") === "1";
  const cmd = fromSource ? [Deno.execPath(), "run", "-A", "--quiet", `${ROOT}/main.ts`] : [BINARY];
  return { cmd, fromSource };
}

/** Collectors that read procfs/sysfs/netlink: they must succeed whatever happens to BPF. */
export const HOST_COLLECTORS = [
  "arp",
  "cpu_util",
  "diskio",
  "loadavg",
  "memory_buddyinfo",
  "memory_vmstat",
  "mountpoint_perm",
  "netdev",
  "netstat",
  "qdisc",
  "sockstat",
  "tcp_memory",
];

export function isRoot(): boolean {
  return Deno.uid() === 0;
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The shipped config with the listen address moved to 127.0.0.1:port and optional extra TOML edits. */
export function confWithPort(port: number, edit: (text: string) => string = (t) => t): string {
  const text = Deno.readTextFileSync(SHIPPED_CONF);
  const replaced = text.replace(/^\s*#\s*TCPAddr = ":19704"\s*$/m, `\tTCPAddr = "127.0.0.1:${port}"`);
  if (replaced === text) throw new Error("shipped config has no commented TCPAddr line to replace");
  return edit(replaced);
}

export interface RunningAgent {
  port: number;
  url: string;
  dir: string;
  child: Deno.ChildProcess;
  output: () => string;
  /** Sends a signal and waits for exit; returns the exit code and how long it took. */
  stop: (signal?: Deno.Signal) => Promise<{ code: number; ms: number }>;
}

export interface StartOptions {
  args?: string[];
  /** Config text; by default the shipped config on a free port. */
  conf?: (port: number) => string;
  /** Run inside `unshare --uts` with this hostname. */
  hostname?: string;
  waitReady?: boolean;
  /** Run as this uid/gid (through setpriv, no capabilities); the config is made readable to it. */
  runAs?: number;
  /** Soft and hard RLIMIT_NOFILE for the agent (through prlimit). */
  nofile?: number;
}

export async function startAgent(opts: StartOptions = {}): Promise<RunningAgent> {
  const { cmd: AGENT_CMD, fromSource } = agentCommand();
  await Deno.stat(AGENT_CMD[0]).catch(() => {
    throw new Error(`${AGENT_CMD[0]} is missing: run ./build.sh first`);
  });
  const port = freePort();
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-it-" });
  Deno.writeTextFileSync(`${dir}/huatuo-bamai.conf`, (opts.conf ?? ((p) => confWithPort(p)))(port));
  const agentArgs = ["--config-dir", dir, ...(opts.args ?? [])];
  let [cmd, args] = opts.hostname
    ? ["unshare", [
      "--uts",
      "sh",
      "-c",
      `hostname ${opts.hostname} && exec "$0" "$@"`,
      ...AGENT_CMD,
      ...agentArgs,
    ]]
    : [AGENT_CMD[0], [...AGENT_CMD.slice(1), ...agentArgs]];
  if (opts.runAs !== undefined) {
    Deno.chmodSync(dir, 0o755);
    Deno.chmodSync(`${dir}/huatuo-bamai.conf`, 0o644);
    const id = String(opts.runAs);
    [cmd, args] = ["setpriv", [
      `--reuid=${id}`,
      `--regid=${id}`,
      "--clear-groups",
      "--inh-caps=-all",
      cmd,
      ...args,
    ]];
  }
  if (opts.nofile !== undefined) {
    [cmd, args] = ["prlimit", [`--nofile=${opts.nofile}:${opts.nofile}`, "--", cmd, ...args]];
  }
  const env = fromSource ? { HUATUO_BAMAI_BPF_DIR: `${ROOT}/_output/bpf` } : undefined;
  const child = new Deno.Command(cmd, { args, cwd: ROOT, env, stdout: "piped", stderr: "piped" }).spawn();
  let out = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) out += dec.decode(chunk);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const url = `http://127.0.0.1:${port}`;
  const agent: RunningAgent = {
    port,
    url,
    dir,
    child,
    output: () => out,
    stop: async (signal: Deno.Signal = "SIGTERM") => {
      const t0 = performance.now();
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      const status = await child.status;
      await pumps;
      // stop() may run twice (a test's own stop, then its cleanup): the second finds no dir.
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      return { code: status.code, ms: performance.now() - t0 };
    },
  };
  if (opts.waitReady !== false) await waitReady(agent);
  return agent;
}

export async function waitReady(agent: RunningAgent, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  agent.child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`agent exited before ready:\n${agent.output()}`);
    try {
      const res = await fetch(`${agent.url}/readyz`);
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`agent not ready after ${timeoutMs} ms:\n${agent.output()}`);
}

export async function scrape(agent: RunningAgent): Promise<string> {
  const res = await fetch(`${agent.url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics: HTTP ${res.status}`);
  return await res.text();
}

/** Runs the binary to completion (for flag and config errors). */
export async function runBinary(
  args: string[],
  cwd = ROOT,
): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(BINARY, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** IDs of the BPF programs a process holds (its program and link fds, from fdinfo `prog_id`). */
export function heldProgIds(pid: number | string): Set<number> {
  const ids = new Set<number>();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(`/proc/${pid}/fdinfo`)];
  } catch {
    return ids; // gone, or not ours to read
  }
  for (const e of entries) {
    try {
      const m = /^prog_id:\s+(\d+)$/m.exec(Deno.readTextFileSync(`/proc/${pid}/fdinfo/${e.name}`));
      if (m) ids.add(Number(m[1]));
    } catch { /* fd closed meanwhile */ }
  }
  return ids;
}
