// Load generators for the BPF integration tests (integration/bpf_test.ts):
// each one creates its processes, devices, namespaces, cgroups or sysctl
// changes under `huatuo-it-` names and registers how to undo them on a
// Cleanup, which the test runs in a finally block (last registered, first
// undone), so a failing test leaves nothing behind.

const dec = new TextDecoder();

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Debian's interpreter when present (not a pyenv shim that may be missing for other users). */
export const PYTHON = (() => {
  try {
    Deno.statSync("/usr/bin/python3");
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
})();

// ---------------------------------------------------------------------------
// Cleanup

/** Undo steps, run last-in first-out; every step runs even when an earlier one fails. */
export class Cleanup {
  #steps: { what: string; fn: () => unknown }[] = [];

  defer(what: string, fn: () => unknown): void {
    this.#steps.push({ what, fn });
  }

  async run(): Promise<void> {
    const errors: string[] = [];
    while (this.#steps.length > 0) {
      const { what, fn } = this.#steps.pop()!;
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : err}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed:\n  ${errors.join("\n  ")}`);
  }
}

/** Runs `fn` with a Cleanup and always runs it; a body error wins over a cleanup error (both reported). */
export async function withCleanup<T>(fn: (c: Cleanup) => Promise<T>): Promise<T> {
  const c = new Cleanup();
  let result: T;
  try {
    result = await fn(c);
  } catch (err) {
    try {
      await c.run();
    } catch (cleanupErr) {
      console.error(String(cleanupErr));
    }
    throw err;
  }
  await c.run();
  return result;
}

// ---------------------------------------------------------------------------
// Commands

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; throws (with its stderr) on a non-zero exit unless `check` is false. */
export async function run(
  cmd: string,
  args: string[],
  opts: { check?: boolean; stdin?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: opts.env,
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const res = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (opts.check !== false && res.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${res.code}: ${res.stderr.trim() || res.stdout.trim()}`);
  }
  return res;
}

export const sh = (script: string, opts: { check?: boolean } = {}) => run("sh", ["-c", script], opts);

/** A background process in its own process group (started through setsid). */
export interface Background {
  readonly pid: number;
  readonly child: Deno.ChildProcess;
  /** stdout+stderr so far (when captured). */
  output(): string;
  /** Resolves once the output so far matches `re`; rejects after `ms` or when the process exits. */
  waitFor(re: RegExp, ms: number): Promise<void>;
  /** Signals the whole group and waits for the leader to exit (at most `ms`). */
  stop(signal?: Deno.Signal, ms?: number): Promise<Deno.CommandStatus>;
}

/**
 * Starts `cmd args` as the leader of a new process group and registers its
 * killing (SIGKILL to the group) on `c`.
 */
export function spawnBackground(
  c: Cleanup,
  what: string,
  cmd: string,
  args: string[],
  opts: { capture?: boolean; cwd?: string } = {},
): Background {
  // A child of Deno is not a group leader, so setsid(1) execs in place: pid = pgid.
  const child = new Deno.Command("setsid", {
    args: [cmd, ...args],
    cwd: opts.cwd,
    stdin: "null",
    stdout: opts.capture ? "piped" : "null",
    stderr: opts.capture ? "piped" : "null",
  }).spawn();
  let out = "";
  const pumps = opts.capture
    ? Promise.all([child.stdout, child.stderr].map(async (s) => {
      for await (const chunk of s) out += dec.decode(chunk);
    }))
    : Promise.resolve([]);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => exited = s);
  const bg: Background = {
    pid: child.pid,
    child,
    output: () => out,
    async waitFor(re, ms) {
      const deadline = Date.now() + ms;
      while (!re.test(out)) {
        if (exited) throw new Error(`${what} exited (${exited.code}) before ${re}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`${what}: no ${re} after ${ms} ms:\n${out}`);
        await sleep(50);
      }
    },
    async stop(signal: Deno.Signal = "SIGKILL", ms = 10_000) {
      if (!exited) {
        try {
          Deno.kill(-child.pid, signal);
        } catch { /* already gone */ }
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} (pid ${child.pid}) did not exit after ${signal}`)),
          ms,
        );
      });
      try {
        await Promise.race([status, timeout]);
      } finally {
        clearTimeout(timer);
      }
      await pumps;
      return exited!;
    },
  };
  c.defer(`stop ${what}`, async () => {
    if (exited) return await pumps;
    await bg.stop("SIGKILL");
  });
  return bg;
}

// ---------------------------------------------------------------------------
// Files, sysctls, temp dirs

export function tempDir(c: Cleanup, mode = 0o700): string {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-it-" });
  Deno.chmodSync(dir, mode);
  c.defer(`remove ${dir}`, () => Deno.removeSync(dir, { recursive: true }));
  return dir;
}

/** Writes a /proc/sys value and restores the old one on cleanup. */
export function setSysctl(c: Cleanup, name: string, value: string | number): string {
  const path = `/proc/sys/${name.replaceAll(".", "/")}`;
  const old = Deno.readTextFileSync(path).trim();
  c.defer(`restore ${name}=${old}`, () => Deno.writeTextFileSync(path, `${old}\n`));
  Deno.writeTextFileSync(path, `${value}\n`);
  return old;
}

export function readSysctl(name: string): string {
  return Deno.readTextFileSync(`/proc/sys/${name.replaceAll(".", "/")}`).trim();
}

export function vmstat(): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of Deno.readTextFileSync("/proc/vmstat").trim().split("\n")) {
    const [k, v] = line.split(" ");
    out.set(k, Number(v));
  }
  return out;
}

/** Per-CPU counts of one softirq vector from /proc/softirqs (e.g. "NET_RX"). */
export function softirqs(vector: string): number[] {
  const line = Deno.readTextFileSync("/proc/softirqs").split("\n").find((l) =>
    l.trim().startsWith(`${vector}:`)
  );
  if (!line) throw new Error(`/proc/softirqs has no ${vector}`);
  return line.split(":")[1].trim().split(/\s+/).map(Number);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

// ---------------------------------------------------------------------------
// runqlat: CPU run queue

/**
 * `hogs` busy loops pinned to `cpu`, plus `sleepers` processes on the same CPU
 * that sleep 2 ms at a time, so every wakeup waits behind the hogs.
 */
export function runqueueLoad(
  c: Cleanup,
  opts: { cpu?: number; hogs?: number; sleepers?: number } = {},
): Background {
  const cpu = opts.cpu ?? 0, hogs = opts.hogs ?? 10, sleepers = opts.sleepers ?? 4;
  const sleeper = `${PYTHON} -c 'import time
while True: time.sleep(0.002)'`;
  const script = [
    `for i in $(seq ${hogs}); do taskset -c ${cpu} sh -c 'while :; do :; done' & done`,
    `for i in $(seq ${sleepers}); do taskset -c ${cpu} ${sleeper} & done`,
    "wait",
  ].join("\n");
  return spawnBackground(c, "runqueue load", "sh", ["-c", script]);
}

// ---------------------------------------------------------------------------
// softirq: NET_RX over loopback, NET_TX through a throttling qdisc

/** `requests` HTTP GETs by curl from `python3 -m http.server` on 127.0.0.1. */
export async function loopbackHttp(c: Cleanup, requests = 100): Promise<void> {
  const port = freePort();
  const root = tempDir(c, 0o755);
  Deno.writeTextFileSync(`${root}/index.html`, "huatuo-it\n".repeat(100));
  const server = spawnBackground(c, "http.server", PYTHON, [
    "-m",
    "http.server",
    "--bind",
    "127.0.0.1",
    String(port),
  ], {
    cwd: root,
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`http.server on ${port} not listening: ${err}`);
      await sleep(50);
    }
  }
  // One curl, `requests` sequential GETs (http.server closes each connection).
  const url = `http://127.0.0.1:${port}/`;
  await run("curl", ["-fsS", ...Array.from({ length: requests }, () => ["-o", "/dev/null", url]).flat()]);
  await server.stop();
}

/**
 * In a fresh network namespace, a tbf qdisc on lo throttles a UDP flood for
 * `ms`: every time tbf's watchdog reschedules the queue, NET_TX is raised.
 */
export async function netnsTxLoad(c: Cleanup, ms = 1500): Promise<{ sent: number; qdisc: string }> {
  const ns = `huatuo-it-${Deno.pid}`;
  await run("ip", ["netns", "add", ns]);
  c.defer(`ip netns del ${ns}`, () => run("ip", ["netns", "del", ns]));
  await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  await run("ip", [
    "netns",
    "exec",
    ns,
    "tc",
    "qdisc",
    "add",
    "dev",
    "lo",
    "root",
    "tbf",
    "rate",
    "8mbit",
    "burst",
    "16kb",
    "latency",
    "50ms",
  ]);
  const flood = `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("127.0.0.1", 0)); r.setblocking(False)
dst, buf, n, end = r.getsockname(), b"x" * 1400, 0, time.time() + ${ms / 1000}
while time.time() < end:
    try:
        s.sendto(buf, dst); n += 1
    except OSError:
        pass
    try:
        while True: r.recv(2000)
    except BlockingIOError:
        pass
print(n)
`;
  const out = await run("ip", ["netns", "exec", ns, PYTHON, "-c", flood]);
  const qdisc = (await run("ip", ["netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", "lo"])).stdout;
  return { sent: Number(out.stdout.trim()), qdisc };
}

// ---------------------------------------------------------------------------
// Block devices

export interface LoopDevice {
  /** /dev/loopN */
  dev: string;
  /** "7:N", as in /sys/block/loopN/dev */
  majMin: string;
  name: string;
  file: string;
}

/** A loop device over a sparse file of `bytes`; detached and deleted on cleanup. */
export async function loopDevice(
  c: Cleanup,
  bytes: number,
  opts: { directIo?: boolean; dir?: string } = {},
): Promise<LoopDevice> {
  // dir: where the backing file lives (e.g. /dev/shm, so the loop's own work never waits on a disk).
  const file = Deno.makeTempFileSync({ prefix: "huatuo-it-", suffix: ".img", dir: opts.dir });
  c.defer(`remove ${file}`, () => Deno.removeSync(file));
  Deno.truncateSync(file, bytes);
  // directIo: the loop writes through to the backing disk instead of the page cache, so its requests
  // take the disk's time (a buffered loop on an idle host finishes nearly all of them in a few ms).
  const dev = (await run("losetup", ["-f", "--show", ...(opts.directIo ? ["--direct-io=on"] : []), file]))
    .stdout.trim();
  c.defer(`losetup -d ${dev}`, () => run("losetup", ["-d", dev]));
  const name = dev.replace("/dev/", "");
  return { dev, file, name, majMin: Deno.readTextFileSync(`/sys/block/${name}/dev`).trim() };
}

/**
 * Sets /sys/block/<name>/queue/<key> (e.g. scheduler, max_sectors_kb) and
 * restores the old value on cleanup: queue settings outlive `losetup -d`.
 */
export function setQueue(c: Cleanup, loop: LoopDevice, key: string, value: string | number): void {
  const path = `/sys/block/${loop.name}/queue/${key}`;
  const raw = Deno.readTextFileSync(path).trim();
  const old = /\[(\S+)\]/.exec(raw)?.[1] ?? raw; // "[none] mq-deadline kyber" → "none"
  c.defer(`restore ${path}=${old}`, () => Deno.writeTextFileSync(path, `${old}\n`));
  Deno.writeTextFileSync(path, `${value}\n`);
}

/** /sys/block/<name>/stat: completed reads and writes. */
export function diskIos(name: string): { reads: number; writes: number; writeTicksMs: number } {
  const f = Deno.readTextFileSync(`/sys/block/${name}/stat`).trim().split(/\s+/).map(Number);
  return { reads: f[0], writes: f[4], writeTicksMs: f[7] };
}

/** `jobs` parallel `dd oflag=direct` writers of `mib` MiB each (in `bsMiB` writes), to disjoint ranges of `dev`. */
export async function parallelDirectWrites(dev: string, jobs = 16, mib = 64, bsMiB = 1): Promise<void> {
  await Promise.all(
    Array.from({ length: jobs }, (_, i) =>
      run("dd", [
        "if=/dev/zero",
        `of=${dev}`,
        `bs=${bsMiB}M`,
        `count=${mib / bsMiB}`,
        `seek=${(i * mib) / bsMiB}`,
        "oflag=direct",
        "status=none",
      ])),
  );
}

// ---------------------------------------------------------------------------
// memory_free: global direct reclaim and direct compaction

function meminfo(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(Deno.readTextFileSync("/proc/meminfo"));
  if (!m) throw new Error(`/proc/meminfo has no ${key}`);
  return Number(m[1]) * 1024;
}

/**
 * The proven recipe is "fill the page cache, then ask for huge pages"; to keep
 * it fast on a host with lots of free memory, huge pages are first reserved
 * (instant while memory is free) until only ~4 GiB stay free, so that two
 * parallel readers of 3 GiB of a sparse file fill the rest of memory with
 * page cache within seconds and end up allocating through direct reclaim;
 * then 1500 more huge pages need direct compaction (and reclaim) of that page
 * cache. Returns the milliseconds of the three phases.
 * nr_hugepages is restored (freeing the reservation) and the file deleted
 * (dropping its page cache) on cleanup.
 */
export async function memoryPressure(
  c: Cleanup,
): Promise<{ reserved: number; hugepages: number; phasesMs: number[] }> {
  const HUGE = 2 * 1024 * 1024, GiB = 1024 ** 3;
  const t = [performance.now()];
  const reserve = Math.max(0, Math.floor((meminfo("MemFree") - 4 * GiB) / HUGE));
  const old = Number(setSysctl(c, "vm.nr_hugepages", reserve));
  const reserved = Number(readSysctl("vm.nr_hugepages"));
  t.push(performance.now());
  const file = Deno.makeTempFileSync({ prefix: "huatuo-it-", suffix: ".sparse" });
  c.defer(`remove ${file}`, () => Deno.removeSync(file));
  Deno.truncateSync(file, 40 * GiB);
  const perReader = 3072; // MiB: 6 GiB in all, 2 GiB more than is left free
  await Promise.all(
    [0, 1].map((i) =>
      run("dd", [
        `if=${file}`,
        "of=/dev/null",
        "bs=1M",
        `count=${perReader}`,
        `skip=${i * perReader}`,
        "status=none",
      ])
    ),
  );
  t.push(performance.now());
  Deno.writeTextFileSync("/proc/sys/vm/nr_hugepages", `${reserved + 1500}\n`);
  const hugepages = Number(readSysctl("vm.nr_hugepages"));
  t.push(performance.now());
  Deno.writeTextFileSync("/proc/sys/vm/nr_hugepages", `${old}\n`);
  return { reserved, hugepages, phasesMs: t.slice(1).map((x, i) => Math.round(x - t[i])) };
}

// ---------------------------------------------------------------------------
// memory_reclaim: memcg limit reclaim

export interface MemCgroup {
  path: string;
  /** Inode of the cgroup directory = the kernfs cgroup id the BPF map is keyed by. */
  ino: number;
}

/** A v1 memory cgroup with a hard limit; removed on cleanup (after its tasks are gone). */
export function memoryCgroup(c: Cleanup, name: string, limitBytes: number): MemCgroup {
  const path = `/sys/fs/cgroup/memory/${name}`;
  Deno.mkdirSync(path);
  c.defer(`rmdir ${path}`, async () => {
    for (let i = 0;; i++) {
      try {
        return Deno.removeSync(path);
      } catch (err) {
        if (i >= 50) throw err; // busy while an exiting task still belongs to it
        await sleep(100);
      }
    }
  });
  Deno.writeTextFileSync(`${path}/memory.limit_in_bytes`, `${limitBytes}\n`);
  return { path, ino: Deno.statSync(path).ino! };
}

/** A shell that joins `cg` and writes `mib` MiB into a file on disk (page cache charged to it). */
export async function writeInCgroup(c: Cleanup, cg: MemCgroup, mib: number): Promise<void> {
  const file = Deno.makeTempFileSync({ prefix: "huatuo-it-", suffix: ".memcg" });
  c.defer(`remove ${file}`, () => Deno.removeSync(file));
  await sh(
    `echo $$ > ${cg.path}/cgroup.procs && exec dd if=/dev/zero of=${file} bs=1M count=${mib} status=none`,
  );
}

// ---------------------------------------------------------------------------
// hungtask: a writer blocked (D state) on a frozen file system

/**
 * Makes an ext4 file system on a loop device, freezes it, starts a writer into
 * it (it blocks uninterruptibly in sb_start_write) and waits until `until()`
 * is true or `ms` passed, then thaws it and waits for the writer. Returns the
 * writer's pid. On cleanup the fs is thawed before anything else.
 */
export async function frozenWriter(
  c: Cleanup,
  until: () => boolean,
  ms: number,
): Promise<{ pid: number; blockedMs: number }> {
  const loop = await loopDevice(c, 64 * 1024 * 1024);
  await run("mkfs.ext4", ["-q", loop.dev]);
  const mnt = tempDir(c, 0o755);
  await run("mount", [loop.dev, mnt]);
  c.defer(`umount ${mnt}`, () => run("umount", [mnt]));
  const thaw = () => run("fsfreeze", ["--unfreeze", mnt], { check: false });
  await run("fsfreeze", ["--freeze", mnt]);
  c.defer(`fsfreeze --unfreeze ${mnt}`, thaw);
  const writer = spawnBackground(c, "frozen writer", "sh", ["-c", `echo huatuo-it > ${mnt}/file`]);
  // Killing a D-state writer only takes effect once the fs thaws: thaw first.
  c.defer("thaw before stopping the writer", thaw);
  const t0 = Date.now();
  while (!until() && Date.now() - t0 < ms) await sleep(100);
  const blockedMs = Date.now() - t0;
  await thaw();
  const status = await writer.stop("SIGCONT", 10_000); // harmless signal; just wait for the write to finish
  if (status.code !== 0) throw new Error(`writer into the frozen fs exited ${status.code}`);
  return { pid: writer.pid, blockedMs };
}

// ---------------------------------------------------------------------------
// softlockup

/** Writes one record to the kernel log (needs root); `<3>` = KERN_ERR. */
export function kmsg(line: string): void {
  const f = Deno.openSync("/dev/kmsg", { write: true });
  try {
    f.writeSync(new TextEncoder().encode(`${line}\n`));
  } finally {
    f.close();
  }
}

/** UDP ports bound on this host (IPv4 and IPv6). */
function boundUdpPorts(): Set<number> {
  const ports = new Set<number>();
  for (const f of ["/proc/net/udp", "/proc/net/udp6"]) {
    try {
      for (const line of Deno.readTextFileSync(f).split("\n").slice(1)) {
        const local = line.trim().split(/\s+/)[1];
        if (local) ports.add(parseInt(local.split(":")[1], 16));
      }
    } catch { /* no IPv6 */ }
  }
  return ports;
}

/**
 * A base port such that [base, base+count) holds no bound UDP port: datagrams
 * sent there are real kernel drops (skb:kfree_skb, reason NO_SOCKET), one per
 * datagram, each identified by its destination port.
 */
export function closedUdpPortRange(count: number, from = 2000): number {
  if (count > 60_000) throw new Error(`${count} drops need more distinct ports than exist`);
  const bound = boundUdpPorts();
  for (let base = from; base + count < 65_535; base += 1000) {
    let free = true;
    for (let p = base; p < base + count && free; p++) free = !bound.has(p);
    if (free) return base;
  }
  throw new Error("no range of closed UDP ports");
}

/** Sends one datagram to 127.0.0.1:port for each port of [base, base+count), about `perSecond` a second. */
export async function udpDrops(base: number, count: number, perSecond = 5000): Promise<void> {
  const { createSocket } = await import("node:dgram");
  const sock = createSocket("udp4");
  const payload = new TextEncoder().encode("huatuo-it-drop");
  const batch = Math.max(1, Math.round(perSecond / 100)); // one batch per 10 ms
  const t0 = performance.now();
  try {
    for (let i = 0; i < count; i += batch) {
      const sends: Promise<void>[] = [];
      for (let p = base + i; p < base + Math.min(count, i + batch); p++) {
        sends.push(new Promise((ok, fail) => sock.send(payload, p, "127.0.0.1", (e) => e ? fail(e) : ok())));
      }
      await Promise.all(sends);
      const due = t0 + ((i + batch) / perSecond) * 1000;
      await sleep(Math.max(0, due - performance.now()));
    }
  } finally {
    sock.close();
  }
}
