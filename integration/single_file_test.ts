// The single-file build (build.sh build_single, packaging/single/loader.c):
// _output/bin/huatuo-bamai copied alone into a minimal Debian root without
// libbpf runs every tracer from memory, and writes nothing at start. Also
// times start-up against the bundle + launcher tree it replaces (the numbers
// in bench/RESULTS.md, "Single file").

import { assert, assertEquals } from "../testing/assert.ts";
import { BINARY, confWithPort, freePort, isRoot, ROOT } from "./agent.ts";

const MINBASE = `${ROOT}/_output/minbase-root`;
const STAGE = `${ROOT}/_output/single`;

/** The loader's trailer (last 32 bytes) starts with this; a `deno compile` build has none. */
function isSingleFile(): boolean {
  try {
    const f = Deno.openSync(BINARY);
    const size = f.statSync().size;
    const tail = new Uint8Array(8);
    f.seekSync(size - 32, Deno.SeekMode.Start);
    f.readSync(tail);
    f.close();
    return new TextDecoder().decode(tail) === "HUATUOSF";
  } catch {
    return false;
  }
}

function run(cmd: string, args: string[]): void {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** The apt mirror and suite this host uses (deb822 .sources, else sources.list). */
function aptSource(): { mirror: string; suite: string } {
  const dir = "/etc/apt/sources.list.d";
  for (const e of [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".sources"))) {
    const text = Deno.readTextFileSync(`${dir}/${e.name}`);
    const uri = text.match(/^URIs:\s*(\S+)/m)?.[1];
    const suite = text.match(/^Suites:\s*(\S+)/m)?.[1];
    if (uri && suite && /^Components:.*\bmain\b/m.test(text) && !/-security/.test(suite)) {
      return { mirror: uri, suite };
    }
  }
  const line = Deno.readTextFileSync("/etc/apt/sources.list").match(
    /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/m,
  );
  if (!line) throw new Error("no apt source to debootstrap from");
  return { mirror: line[1], suite: line[2] };
}

/**
 * A `debootstrap --variant=minbase` root of the host's suite (or of `suite`),
 * from the host's mirror, made once and kept under _output/.
 */
function minbaseRoot(suite?: string): string {
  const dir = suite ? `${MINBASE}-${suite}` : MINBASE;
  try {
    Deno.statSync(`${dir}/usr/bin/env`);
    return dir;
  } catch { /* not made yet */ }
  const source = aptSource();
  const tmp = `${dir}.tmp`;
  try {
    Deno.removeSync(tmp, { recursive: true }); // a run that was interrupted
  } catch { /* none */ }
  run("debootstrap", ["--variant=minbase", suite ?? source.suite, tmp, source.mirror]);
  Deno.renameSync(tmp, dir);
  return dir;
}

/**
 * Starts <root>/opt/huatuo/huatuo-bamai chrooted in `root`, in a private mount
 * namespace: the root read-only, /proc and /sys (with cgroup and tracing
 * beneath) from the host, /tmp from `work` (with conf/ and an empty home/).
 * Every mount goes with the process.
 */
function startInRoot(root: string, work: string): Promise<Started> {
  const port = freePort();
  Deno.mkdirSync(`${work}/conf`, { recursive: true });
  Deno.mkdirSync(`${work}/home`, { recursive: true });
  Deno.writeTextFileSync(`${work}/conf/huatuo-bamai.conf`, confWithPort(port));
  const script = [
    `w=$1`,
    `shift`,
    `mount --bind "$0" "$0"`,
    `mount -o remount,bind,ro "$0"`,
    `mount --rbind /proc "$0/proc"`,
    `mount --rbind /sys "$0/sys"`,
    `mount --bind "$w" "$0/tmp"`,
    `cd "$0/tmp"`,
    `exec chroot "$0" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp/home /opt/huatuo/huatuo-bamai "$@"`,
  ].join(" && ");
  const args = ["-m", "--propagation", "private", "sh", "-c", script, root, work];
  return start("unshare", [...args, "--config-dir", "/tmp/conf", ...AGENT_FLAGS], port);
}

/** Every tracer runs (none lacks libbpf or its object) and /metrics has BPF-fed families. */
async function assertAllTracersRun(s: Started): Promise<void> {
  const res = await fetch(`${s.url}/v1/tracers`);
  const body = await res.json() as { tracers: { name: string; state: string; reason?: string }[] };
  assert(body.tracers.length > 0, "no tracers");
  const notRunning = body.tracers.filter((t) => t.state !== "running");
  assertEquals(notRunning, [], `tracers not running:\n${s.output()}`);
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert(/^huatuo_bamai_runqlat/m.test(metrics), "no runqlat metrics");
}

/** Paths of any libbpf/libelf copies the root holds (there must be none). */
function librariesIn(root: string): string[] {
  const found: string[] = [];
  for (const lib of ["lib", "usr/lib", "lib64", "usr/lib64"]) {
    const dirs = [`${root}/${lib}`];
    try {
      for (const e of Deno.readDirSync(`${root}/${lib}`)) {
        if (e.isDirectory) dirs.push(`${root}/${lib}/${e.name}`);
      }
    } catch { /* absent */ }
    for (const d of dirs) {
      try {
        for (const e of Deno.readDirSync(d)) {
          if (/^lib(bpf|elf)\.so/.test(e.name)) found.push(`${d}/${e.name}`);
        }
      } catch { /* absent */ }
    }
  }
  return found;
}

interface Started {
  child: Deno.ChildProcess;
  url: string;
  /** ms from spawn to the first 200 of /healthz and of /readyz. */
  healthzMs: number;
  readyzMs: number;
  /** CPU time (user + system) the process had used when /readyz answered: steadier than wall time on a busy host. */
  cpuMs: number;
  output: () => string;
  stop: () => Promise<void>;
}

async function firstOk(url: string, exited: () => boolean, t0: number): Promise<number> {
  while (performance.now() - t0 < 60_000) {
    if (exited()) throw new Error(`agent exited before ${url} answered`);
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.status === 200) return performance.now() - t0;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${url}: no 200 within 60 s`);
}

async function start(
  cmd: string,
  args: string[],
  port: number,
  env?: Record<string, string>,
): Promise<Started> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).spawn();
  let out = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) out += dec.decode(chunk);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  child.status.then(() => exited = true);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await pumps;
  };
  try {
    const healthzMs = await firstOk(`${url}/healthz`, () => exited, t0);
    const readyzMs = await firstOk(`${url}/readyz`, () => exited, t0);
    return { child, url, healthzMs, readyzMs, cpuMs: cpuMs(child.pid), output: () => out, stop };
  } catch (err) {
    await stop();
    throw new Error(`${err}\n${out}`);
  }
}

/**
 * RSS of the agent (after exec, the spawned pid), the part of it mapped from
 * shared memory (the memfds), and the memfds' whole size: they sit in RAM
 * whether mapped or not.
 */
function memoryMiB(pid: number): { rss: number; shmem: number; memfds: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (key: string) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"))?.[1] ?? 0);
  let memfds = 0;
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const fd = `/proc/${pid}/fd/${e.name}`;
      if (Deno.readLinkSync(fd).startsWith("/memfd:")) memfds += Deno.statSync(fd).size;
    } catch { /* closed meanwhile */ }
  }
  const mib = (n: number) => Math.round(n / 2 ** 20);
  return { rss: mib(kb("VmRSS") * 1024), shmem: mib(kb("RssShmem") * 1024), memfds: mib(memfds) };
}

/** utime + stime of a process in ms (from /proc/<pid>/stat, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).replace(/^.*\) /s, "").split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.floor(s.length / 2)]);
}

const RUNS = 5;
const AGENT_FLAGS = ["--region", "single", "--disable-storage", "--disable-kubelet"];

Deno.test({
  name:
    "single file: copied alone into a minbase root without libbpf, every tracer runs; start-up vs bundle tree",
  ignore: !isRoot() || !isSingleFile(),
  sanitizeResources: false,
  async fn() {
    const root = minbaseRoot();
    assertEquals(librariesIn(root), [], "the minbase root must not have libbpf or libelf");
    const size = Deno.statSync(BINARY).size;

    // The file alone in the root; config and a writable /tmp come from a host dir bound over the root's /tmp.
    const work = Deno.makeTempDirSync({ prefix: "huatuo-single-" });
    Deno.mkdirSync(`${root}/opt/huatuo`, { recursive: true });
    Deno.copyFileSync(BINARY, `${root}/opt/huatuo/huatuo-bamai`);
    const results: Record<
      string,
      { healthz: number[]; readyz: number[]; cpu: number[]; rss: number; shmem: number; memfds: number }
    > = {};
    const record = (form: string, s: Started) => {
      const r = results[form] ??= { healthz: [], readyz: [], cpu: [], rss: 0, shmem: 0, memfds: 0 };
      r.healthz.push(s.healthzMs);
      r.readyz.push(s.readyzMs);
      r.cpu.push(s.cpuMs);
      Object.assign(r, memoryMiB(s.child.pid));
    };

    try {
      for (let i = 0; i < RUNS; i++) {
        const s = await startInRoot(root, work);
        try {
          record("single file, minbase chroot", s);
          if (i === 0) await assertAllTracersRun(s);
        } finally {
          await s.stop();
        }
        // $HOME stayed empty: no Deno cache or anything else.
        assertEquals([...Deno.readDirSync(`${work}/home`)].map((e) => e.name), []);
      }

      // On the host: the same file, and the tree it replaces (deno run of the bundle, as its launcher did).
      const launcherDir = Deno.makeTempDirSync({ prefix: "huatuo-tree-" });
      const forms: [string, string, string[], Record<string, string>][] = [
        ["single file, host", BINARY, [], {}],
        ["bundle + launcher tree, host", Deno.execPath(), [
          "run",
          "--allow-all",
          "--no-config",
          "--no-lock",
          "--cached-only",
          "--v8-flags=--optimize-for-size",
          "--quiet",
          `${STAGE}/huatuo-bamai.js`,
        ], { HUATUO_BAMAI_BPF_DIR: `${ROOT}/_output/bpf`, DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" }],
      ];
      for (const [form, cmd, pre, env] of forms) {
        for (let i = 0; i < RUNS; i++) {
          const port = freePort();
          Deno.writeTextFileSync(`${launcherDir}/huatuo-bamai.conf`, confWithPort(port));
          const s = await start(cmd, [...pre, "--config-dir", launcherDir, ...AGENT_FLAGS], port, env);
          record(form, s);
          await s.stop();
        }
      }
      Deno.removeSync(launcherDir, { recursive: true });
    } finally {
      Deno.removeSync(work, { recursive: true });
      Deno.removeSync(`${root}/opt/huatuo`, { recursive: true });
    }

    const mib = (size / 2 ** 20).toFixed(1);
    console.log(`single file: ${mib} MiB; median of ${RUNS} starts (ms), memory when ready (MiB):`);
    for (const [form, r] of Object.entries(results)) {
      const ms = `/healthz ${median(r.healthz)}, /readyz ${median(r.readyz)} (CPU ${median(r.cpu)})`;
      console.log(`  ${form}: ${ms}; RSS ${r.rss} (memfd-mapped ${r.shmem}), memfds ${r.memfds}`);
    }
  },
});

Deno.test({
  name:
    "single file: every tracer runs in a Debian 11 root (glibc 2.31, below Debian 12's libelf floor of 2.33)",
  ignore: !isRoot() || !isSingleFile(),
  sanitizeResources: false,
  async fn() {
    const root = minbaseRoot("bullseye");
    assertEquals(librariesIn(root), [], "the minbase root must not have libbpf or libelf");
    const work = Deno.makeTempDirSync({ prefix: "huatuo-single-" });
    Deno.mkdirSync(`${root}/opt/huatuo`, { recursive: true });
    Deno.copyFileSync(BINARY, `${root}/opt/huatuo/huatuo-bamai`);
    try {
      const s = await startInRoot(root, work);
      try {
        await assertAllTracersRun(s);
      } finally {
        await s.stop();
      }
    } finally {
      Deno.removeSync(work, { recursive: true });
      Deno.removeSync(`${root}/opt/huatuo`, { recursive: true });
    }
  },
});
