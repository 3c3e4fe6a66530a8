// 200-container benchmark: the agent's /metrics with N kubepods containers vs
// prometheus-node-exporter on the live host.
//
//   deno run -A bench/containers.ts [--containers N] [--scrapes N] [--warmup N] [--json FILE]
//                                   [--netns N] [--busy-every N] [--idle SECONDS] [--refreshes N]
//                                   [--node-exporter PATH]
//
// Needs root. Builds N synthetic containers in the real cgroup hierarchies (v1
// cpu, cpuacct, memory, blkio, pids and the cgroup2 mount) under
// /huatuo-bench-containers, alternating the kubelet's cgroupfs grammar
// (/kubepods/<qos>/pod<uid>/<id>) and its systemd one
// (kubepods.slice/.../kubepods-<qos>-pod<uid_>.slice/cri-containerd-<id>.scope),
// each with a live process (every --busy-every'th forks a short CPU burst each
// second so cpu series move; the first --netns ones run in a network namespace
// of their own). Starts the built agent with HUATUO_BAMAI_CGROUP_ROOT pointing
// at that tree (so it sees exactly these containers), waits until
// /containers/json lists all N with a process each, then runs the scrape
// loop of bench/scrape.ts against it and node_exporter (the same-run baseline).
//
// The registry refresh (a cgroup-tree scan every 10 s, off the scrape path) is
// measured three ways: the agent's CPU over an idle window (no scrapes) with
// the empty tree and again with N containers, divided by the refreshes in the
// window; the same registry code run in this process (CPU from getrusage); and
// the agent's huatuo_bamai_containers_refresh_duration_seconds when the build
// exposes it.
//
// Exit status: 0 when the benchmark ran (goal met or not), 1 when something
// failed to run, 2 on bad flags. The cgroups, their processes, the agent and
// node_exporter are always removed/stopped, also on error and SIGINT/SIGTERM.

import { cpuUsage } from "node:process";
import { BINARY, ROOT } from "../integration/agent.ts";
import { HostFs } from "../src/host/fs.ts";
import { silentLogger } from "../src/log/logger.ts";
import { findHierarchies, type Hierarchy } from "../src/pod/discovery.ts";
import { randomHex, removeCgroupTree } from "../testing/cgroup_tree.ts";
import { CgroupContainerRegistry, DEFAULT_REFRESH_MS } from "../src/pod/registry.ts";
import { defaultConfig } from "../src/config/schema.ts";
import { BpfRuntime } from "../src/bpf/tracer.ts";
import { FEATURES } from "../src/features/index.ts";
import {
  clockTick,
  digest,
  findNodeExporter,
  fmtNumber,
  isExecutable,
  loadavg3,
  machineInfo,
  markdownTable,
  newTarget,
  numberFlag,
  parseFlags,
  parseOrExit,
  percentile,
  type Proc,
  procCpuTicks,
  procStat,
  scrapeOnce,
  sleep,
  startHuatuo,
  startNodeExporter,
  stringFlag,
  summarize,
  type Summary,
  type Target,
} from "./common.ts";

// ---------------------------------------------------------------- options

interface Options {
  containers: number;
  scrapes: number;
  warmup: number;
  json?: string;
  /** The first `netns` containers get a network namespace of their own. */
  netns: number;
  /** Every busyEvery'th container does a little CPU work each second (0: none). */
  busyEvery: number;
  /** Seconds of each idle (no scrape) CPU window. */
  idleSec: number;
  /** In-process registry refreshes to time. */
  refreshes: number;
  nodeExporter?: string;
}

const USAGE =
  "usage: deno run -A bench/containers.ts [--containers N] [--scrapes N] [--warmup N] [--json FILE]\n" +
  "         [--netns N] [--busy-every N] [--idle SECONDS] [--refreshes N] [--node-exporter PATH]";

function parseOptions(args: string[]): Options {
  const opts: Options = {
    containers: 200,
    scrapes: 300,
    warmup: 20,
    netns: 8,
    busyEvery: 10,
    idleSec: 30,
    refreshes: 20,
  };
  parseFlags(args, USAGE, (flag, value) => {
    switch (flag) {
      case "--containers":
        opts.containers = numberFlag(flag, value(), 1, true);
        break;
      case "--scrapes":
        opts.scrapes = numberFlag(flag, value(), 1, true);
        break;
      case "--warmup":
        opts.warmup = numberFlag(flag, value(), 0, true);
        break;
      case "--json":
        opts.json = stringFlag(flag, value(), "a file name");
        break;
      case "--netns":
        opts.netns = numberFlag(flag, value(), 0, true);
        break;
      case "--busy-every":
        opts.busyEvery = numberFlag(flag, value(), 0, true);
        break;
      case "--idle":
        opts.idleSec = numberFlag(flag, value(), 1, true);
        break;
      case "--refreshes":
        opts.refreshes = numberFlag(flag, value(), 1, true);
        break;
      case "--node-exporter":
        opts.nodeExporter = stringFlag(flag, value(), "a path");
        break;
      default:
        return false;
    }
    return true;
  });
  return opts;
}

// ---------------------------------------------------------------- the cgroup tree

const MOUNT = "/sys/fs/cgroup";
const TREE_ROOT = "/huatuo-bench-containers";
/** The v1 controllers the container collectors read (and blkio, as kubelet creates it). */
const WANTED = new Set(["cpu", "cpuacct", "memory", "blkio", "pids"]);
const QOS = ["burstable", "besteffort", "guaranteed"] as const;

interface BenchContainer {
  id: string;
  rel: string;
  grammar: "cgroupfs" | "systemd";
  ownNetns: boolean;
  busy: boolean;
  child: Deno.ChildProcess;
}

/** Container i's path below the tree root: even i cgroupfs, odd i systemd; the QoS class rotates. */
export function containerRel(
  i: number,
  id: string,
  podUid: string,
): { rel: string; grammar: "cgroupfs" | "systemd" } {
  const qos = QOS[Math.floor(i / 2) % QOS.length];
  if (i % 2 === 0) {
    const qosDir = qos === "guaranteed" ? "" : `/${qos}`;
    return { rel: `/kubepods${qosDir}/pod${podUid}/${id}`, grammar: "cgroupfs" };
  }
  const u = podUid.replaceAll("-", "_");
  const slice = qos === "guaranteed"
    ? `/kubepods.slice/kubepods-pod${u}.slice`
    : `/kubepods.slice/kubepods-${qos}.slice/kubepods-${qos}-pod${u}.slice`;
  return { rel: `${slice}/cri-containerd-${id}.scope`, grammar: "systemd" };
}

/** A short burst of CPU (forks `head`, which reads and discards 256 KiB of urandom) every second. */
const BUSY_LOOP = "while :; do head -c 262144 /dev/urandom >/dev/null; sleep 1; done";

class BenchTree {
  readonly containers: BenchContainer[] = [];
  private constructor(readonly hierarchies: Hierarchy[]) {}

  /** The hierarchies to use, with a fresh empty TREE_ROOT in each (a stale one from a crashed run is removed). */
  static async create(): Promise<BenchTree> {
    const hs = (await findHierarchies(MOUNT)).filter((h) =>
      h.name === "unified" || h.controllers.some((c) => WANTED.has(c))
    );
    if (!hs.some((h) => h.name === "unified")) throw new Error(`no cgroup2 mount under ${MOUNT}`);
    const tree = new BenchTree(hs);
    await tree.killAll();
    for (const h of hs) {
      await removeCgroupTree(`${h.path}${TREE_ROOT}`);
      await Deno.mkdir(`${h.path}${TREE_ROOT}`);
    }
    return tree;
  }

  get unifiedRoot(): string {
    return `${this.hierarchies.find((h) => h.name === "unified")!.path}${TREE_ROOT}`;
  }

  /**
   * Creates container i's cgroups in every hierarchy and starts its process,
   * which joins them itself before it execs its workload (so nothing it forks
   * runs outside them).
   */
  async add(i: number, ownNetns: boolean, busy: boolean): Promise<BenchContainer> {
    const id = randomHex(64);
    const { rel, grammar } = containerRel(i, id, crypto.randomUUID());
    const procsFiles: string[] = [];
    for (const h of this.hierarchies) {
      const dir = `${h.path}${TREE_ROOT}${rel}`;
      await Deno.mkdir(dir, { recursive: true });
      procsFiles.push(`${dir}/cgroup.procs`);
    }
    const work = busy ? BUSY_LOOP : "exec sleep infinity";
    const script = `for f in "$@"; do echo $$ > "$f" || exit 1; done; ${work}`;
    const argv = ["sh", "-c", script, "sh", ...procsFiles];
    // unshare without --fork execs sh: the pid stays the same.
    const [cmd, ...args] = ownNetns ? ["unshare", "--net", ...argv] : argv;
    const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "null" }).spawn();
    const c: BenchContainer = { id, rel, grammar, ownNetns, busy, child };
    this.containers.push(c);
    return c;
  }

  /** Waits until every container's process sits in its cgroup2 directory. */
  async untilJoined(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const c of this.containers) {
      const procs = `${this.unifiedRoot}${c.rel}/cgroup.procs`;
      while ((await Deno.readTextFile(procs)).trim() === "") {
        if (Date.now() > deadline) throw new Error(`process of ${c.rel} never joined its cgroup`);
        await sleep(10);
      }
    }
  }

  /** SIGKILLs everything in the tree (cgroup.kill on the cgroup2 root catches forked children too). */
  async killAll(): Promise<void> {
    for (const c of this.containers) {
      try {
        c.child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    try {
      await Deno.writeTextFile(`${this.unifiedRoot}/cgroup.kill`, "1");
    } catch { /* no tree, or a kernel without cgroup.kill: the kills above did it */ }
    await Promise.allSettled(this.containers.map((c) => c.child.status));
  }

  async cleanup(): Promise<void> {
    await this.killAll();
    for (const h of this.hierarchies) await removeCgroupTree(`${h.path}${TREE_ROOT}`);
    this.containers.length = 0;
  }
}

// ---------------------------------------------------------------- agent probes

interface ListedContainer {
  id: string;
  initPid: number;
  netnsInode: number;
}

async function listContainers(agent: Proc): Promise<ListedContainer[]> {
  const url = agent.metricsUrl.replace(/\/metrics$/, "/containers/json");
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}: ${await res.text()}`);
  return await res.json() as ListedContainer[];
}

/** Waits until /containers/json lists exactly the tree's containers, each with a process; returns the ms it took. */
async function untilListed(agent: Proc, tree: BenchTree, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  const want = new Set(tree.containers.map((c) => c.id));
  let last = "";
  while (performance.now() - t0 < timeoutMs) {
    if (agent.exited()) throw new Error(`huatuo-bamai exited:\n${agent.output()}`);
    const list = await listContainers(agent);
    const withPid = list.filter((c) => want.has(c.id) && c.initPid > 0).length;
    if (list.length === want.size && withPid === want.size) return performance.now() - t0;
    last = `${list.length} listed, ${withPid} of ${want.size} with a process`;
    await sleep(250);
  }
  throw new Error(
    `/containers/json did not list all ${want.size} containers within ${timeoutMs} ms (${last})`,
  );
}

/** Agent CPU ms over `sec` seconds of no scrapes. */
async function idleCpuMs(pid: number, sec: number, clkTck: number): Promise<number> {
  const before = procCpuTicks(pid);
  await sleep(sec * 1000);
  return ((procCpuTicks(pid) - before) / clkTck) * 1000;
}

interface RefreshCost {
  runs: number;
  cpuMs: number[];
  wallMs: number[];
  dirs: number;
  containers: number;
}

/** The agent's registry code run here, `runs` times over the same tree: CPU (all threads) and wall per refresh. */
async function inProcessRefresh(runs: number): Promise<RefreshCost> {
  const reg = new CgroupContainerRegistry({ fs: new HostFs(), log: silentLogger, root: TREE_ROOT });
  await reg.refresh(); // warm the JIT and the dentry cache
  const cpuMs: number[] = [];
  const wallMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = cpuUsage();
    const w0 = performance.now();
    await reg.refresh();
    wallMs.push(performance.now() - w0);
    const c = cpuUsage(c0);
    cpuMs.push((c.user + c.system) / 1000);
  }
  return { runs, cpuMs, wallMs, dirs: reg.lastRefresh.dirs, containers: reg.lastRefresh.containers };
}

/** CPU (all threads) and wall per call of `fn`, `runs` times after one untimed call. */
async function timeCalls(
  runs: number,
  fn: () => Promise<unknown>,
): Promise<{ cpuMs: number[]; wallMs: number[] }> {
  await fn();
  const cpuMs: number[] = [];
  const wallMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = cpuUsage();
    const w0 = performance.now();
    await fn();
    wallMs.push(performance.now() - w0);
    const c = cpuUsage(c0);
    cpuMs.push((c.user + c.system) / 1000);
  }
  return { cpuMs, wallMs };
}

interface CollectorCost {
  name: string;
  series: number;
  cpuMs: number;
  wallMs: number;
}

/**
 * Profile: each container collector of this source tree (the agent's code),
 * run alone in this process over the bench's containers, one at a time, so
 * CPU is attributed to it (inside the agent they run concurrently and each one's
 * self-reported duration includes waiting for the others). Plus what one
 * cgroup file read costs async vs sync, the choice behind most of it.
 */
async function profileCollectors(runs: number): Promise<{ collectors: CollectorCost[]; reads: ReadCost }> {
  const reg = new CgroupContainerRegistry({ fs: new HostFs(), log: silentLogger, root: TREE_ROOT });
  await reg.refresh();
  const ctx = {
    fs: new HostFs(),
    config: defaultConfig(),
    log: silentLogger,
    bpf: new BpfRuntime(`${ROOT}/_output/bpf`),
    containers: reg,
  };
  const collectors: CollectorCost[] = [];
  for (const def of FEATURES) {
    if (!def.container) continue;
    const c = def.container(ctx, reg);
    let series = 0;
    const t = await timeCalls(runs, async () => series = (await c.collect()).length);
    c.close?.();
    collectors.push({ name: def.name, series, cpuMs: median(t.cpuMs), wallMs: median(t.wallMs) });
  }
  const files = reg.list().flatMap((c) =>
    c.cgroupPaths["cpuacct"] ? [`${c.cgroupPaths["cpuacct"]}/cpuacct.stat`] : []
  );
  const asyncT = await timeCalls(runs, () => Promise.all(files.map((f) => Deno.readTextFile(f))));
  const syncT = await timeCalls(runs, () => Promise.resolve(files.map((f) => Deno.readTextFileSync(f))));
  return {
    collectors,
    reads: {
      files: files.length,
      asyncUs: (median(asyncT.cpuMs) * 1000) / files.length,
      syncUs: (median(syncT.cpuMs) * 1000) / files.length,
      asyncWallMs: median(asyncT.wallMs),
      syncWallMs: median(syncT.wallMs),
    },
  };
}

interface ReadCost {
  files: number;
  /** CPU per file, µs, for Promise.all of Deno.readTextFile. */
  asyncUs: number;
  /** CPU per file, µs, for Deno.readTextFileSync in a loop. */
  syncUs: number;
  asyncWallMs: number;
  syncWallMs: number;
}

// ---------------------------------------------------------------- series

const CONTAINER_LABEL = 'container_name="';
const REFRESH_METRIC = "huatuo_bamai_containers_refresh_duration_seconds";

interface SeriesCensus {
  /** Container series (a container_name label) per family. */
  containerFamilies: Map<string, number>;
  containerSeries: number;
  /** The agent's own refresh self-metric, seconds; undefined when the build has none. */
  refreshSeconds?: number;
}

function census(text: string): SeriesCensus {
  const containerFamilies = new Map<string, number>();
  let containerSeries = 0;
  let refreshSeconds: number | undefined;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const brace = line.indexOf("{");
    const name = line.slice(0, brace >= 0 ? brace : line.indexOf(" "));
    if (name === REFRESH_METRIC) refreshSeconds = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (brace < 0 || !line.includes(CONTAINER_LABEL, brace)) continue;
    containerSeries++;
    containerFamilies.set(name, (containerFamilies.get(name) ?? 0) + 1);
  }
  return { containerFamilies, containerSeries, refreshSeconds };
}

// ---------------------------------------------------------------- main

const dec = new TextDecoder();
const fmt = (x: number, digits = 2) => fmtNumber(x, digits);
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

interface Measured {
  ours: Summary;
  ne: Summary;
  census: SeriesCensus;
  refreshSelfMs: number[];
  idleEmptyMs: number;
  idleFullMs: number;
  listedMs: number;
  inProcess: RefreshCost;
  profile: { collectors: CollectorCost[]; reads: ReadCost };
  layout: Record<string, number>;
}

async function bench(opts: Options): Promise<void> {
  if (Deno.uid() !== 0) throw new Error(`building cgroups needs root (uid ${Deno.uid()})`);
  const nePath = await findNodeExporter(opts.nodeExporter);
  if (!(await isExecutable(BINARY))) throw new Error(`${BINARY} is missing: run ./build.sh first`);
  const clkTck = await clockTick();
  const info = await machineInfo(nePath);

  const procs: Proc[] = [];
  let tree: BenchTree | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    cleaning ??= (async () => {
      await Promise.allSettled(procs.map((p) => p.stop()));
      if (tree) {
        await tree.cleanup();
        console.error(`removed ${TREE_ROOT} from ${tree.hierarchies.length} cgroup hierarchies`);
      }
    })();
  const onSignal = () => {
    console.error("interrupted: cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    tree = await BenchTree.create();
    info["cgroup hierarchies"] = tree.hierarchies.map((h) => h.name).join(" ");
    Deno.env.set("HUATUO_BAMAI_CGROUP_ROOT", TREE_ROOT); // startAgent's child inherits it
    const [oursProc, neProc] = await Promise.allSettled([startHuatuo([]), startNodeExporter(nePath)]);
    for (const r of [oursProc, neProc]) if (r.status === "fulfilled") procs.push(r.value);
    for (const r of [oursProc, neProc]) if (r.status === "rejected") throw r.reason;
    const [ours, ne] = procs;
    console.error(`started huatuo-bamai pid ${ours.pid} (${ours.metricsUrl}), root ${TREE_ROOT}`);
    console.error(`started node_exporter pid ${ne.pid} (${ne.metricsUrl})`);

    await sleep(10_000); // let start-up work (BPF loads, first refresh, JIT) finish
    console.error(`idle window, empty tree: ${opts.idleSec} s`);
    const idleEmptyMs = await idleCpuMs(ours.pid, opts.idleSec, clkTck);

    console.error(`building ${opts.containers} containers`);
    const layout: Record<string, number> = { cgroupfs: 0, systemd: 0, "own netns": 0, busy: 0 };
    for (let i = 0; i < opts.containers; i++) {
      const c = await tree.add(i, i < opts.netns, opts.busyEvery > 0 && i % opts.busyEvery === 0);
      layout[c.grammar]++;
      if (c.ownNetns) layout["own netns"]++;
      if (c.busy) layout.busy++;
    }
    await tree.untilJoined(30_000);
    const listedMs = await untilListed(ours, tree, DEFAULT_REFRESH_MS * 3);
    console.error(`agent lists all ${opts.containers} (${fmt(listedMs, 0)} ms after they were built)`);

    console.error(`idle window, ${opts.containers} containers: ${opts.idleSec} s`);
    const idleFullMs = await idleCpuMs(ours.pid, opts.idleSec, clkTck);
    console.error(`in-process registry refresh: ${opts.refreshes} runs`);
    const inProcess = await inProcessRefresh(opts.refreshes);
    console.error(`in-process container collector profile: ${opts.refreshes} runs each`);
    const profile = await profileCollectors(opts.refreshes);

    const targets: Target[] = [
      newTarget(
        ours,
        "huatuo_bamai_scrape_collector_duration_seconds",
        "huatuo_bamai_scrape_collector_success",
      ),
      newTarget(ne, "node_scrape_collector_duration_seconds", "node_scrape_collector_success"),
    ];
    const check = () => {
      for (const t of targets) {
        if (t.proc.exited()) throw new Error(`${t.proc.name} exited during the run:\n${t.proc.output()}`);
      }
    };
    console.error(`warming up: ${opts.warmup} scrapes each`);
    for (let i = 0; i < opts.warmup; i++) {
      for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
        const { body } = await scrapeOnce(t, false);
        digest(t, dec.decode(body), false);
      }
    }
    check();
    for (const t of targets) {
      const s = procStat(t.proc.pid);
      t.rssBeforeKiB = s.rssKiB;
      t.cpuTicksBefore = s.cpuTicks;
    }

    console.error(`measuring: ${opts.scrapes} scrapes each, alternating, sequential`);
    let last: SeriesCensus | undefined;
    const refreshSelfMs: number[] = [];
    for (let i = 0; i < opts.scrapes; i++) {
      for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
        const { ms, body } = await scrapeOnce(t, false);
        t.latenciesMs.push(ms);
        t.bodyBytes = body.byteLength;
        const text = dec.decode(body);
        digest(t, text, true);
        if (t.proc === ours) {
          last = census(text);
          if (last.refreshSeconds !== undefined) refreshSelfMs.push(last.refreshSeconds * 1000);
        }
      }
    }
    for (const t of targets) {
      const s = procStat(t.proc.pid);
      t.cpuTicksAfter = s.cpuTicks;
      t.rss = s;
    }
    check();
    info["loadavg at end"] = loadavg3();
    const [a, b] = targets.map((t) => summarize(t, opts.scrapes, clkTck, null));
    report(opts, info, clkTck, {
      ours: a,
      ne: b,
      census: last!,
      refreshSelfMs,
      idleEmptyMs,
      idleFullMs,
      listedMs,
      inProcess,
      profile,
      layout,
    });
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    await cleanup();
  }
}

function report(opts: Options, info: Record<string, string>, clkTck: number, m: Measured): void {
  const { ours: a, ne: b } = m;
  const out: string[] = [];
  const cmd = `deno run -A bench/containers.ts --containers ${opts.containers} --scrapes ${opts.scrapes} ` +
    `--warmup ${opts.warmup} --netns ${opts.netns} --busy-every ${opts.busyEvery} --idle ${opts.idleSec}`;
  out.push(`## Containers: ${opts.containers}-container scrape`, "");
  out.push(`command: ${cmd}`);
  for (const [k, v] of Object.entries(info)) out.push(`${k}: ${v}`);
  out.push(`clock tick: ${clkTck} Hz (CPU resolution ${fmt(1000 / clkTck, 0)} ms over a whole window)`);
  out.push(
    `containers: ${opts.containers} under ${TREE_ROOT} (${
      Object.entries(m.layout).map(([k, v]) => `${k} ${v}`).join(", ")
    }), agent env HUATUO_BAMAI_CGROUP_ROOT=${TREE_ROOT}`,
  );
  out.push(
    `client: one request in flight, alternating targets, Accept-Encoding: identity; ` +
      `agent listed all ${opts.containers} ${fmt(m.listedMs / 1000, 1)} s after they were built`,
    "",
  );

  const ratio = (x: number, y: number) => fmt(x / y, 2);
  const mb = (x: number) => fmt(x, 1);
  out.push(markdownTable(["", a.name, b.name, "ours/node_exporter"], [
    ["p50 latency (ms)", fmt(a.p50Ms), fmt(b.p50Ms), ratio(a.p50Ms, b.p50Ms)],
    ["p90 latency (ms)", fmt(a.p90Ms), fmt(b.p90Ms), ratio(a.p90Ms, b.p90Ms)],
    ["p99 latency (ms)", fmt(a.p99Ms), fmt(b.p99Ms), ratio(a.p99Ms, b.p99Ms)],
    ["max latency (ms)", fmt(a.maxMs), fmt(b.maxMs), ratio(a.maxMs, b.maxMs)],
    ["series (sample lines)", String(a.series), String(b.series), ratio(a.series, b.series)],
    ["container series", String(m.census.containerSeries), "-", ""],
    [
      "p50 latency per series (µs)",
      fmt(a.usPerSeries),
      fmt(b.usPerSeries),
      ratio(a.usPerSeries, b.usPerSeries),
    ],
    ["response body (bytes)", a.bodyBytes.toLocaleString("en-US"), b.bodyBytes.toLocaleString("en-US"), ""],
    ["RSS after warmup (MB)", mb(a.rssBeforeMB), mb(b.rssBeforeMB), ratio(a.rssBeforeMB, b.rssBeforeMB)],
    ["RSS after run (MB)", mb(a.rssMB), mb(b.rssMB), ratio(a.rssMB, b.rssMB)],
    ["peak RSS, VmHWM (MB)", mb(a.hwmMB), mb(b.hwmMB), ratio(a.hwmMB, b.hwmMB)],
    [
      "CPU per scrape (ms)",
      fmt(a.cpuMsPerScrape),
      fmt(b.cpuMsPerScrape),
      ratio(a.cpuMsPerScrape, b.cpuMsPerScrape),
    ],
  ]));
  out.push("");

  const refreshes = (opts.idleSec * 1000) / DEFAULT_REFRESH_MS;
  const idleDelta = m.idleFullMs - m.idleEmptyMs;
  const ip = m.inProcess;
  out.push("Registry refresh (cgroup-tree scan every 10 s, off the scrape path):");
  out.push(
    `  agent idle CPU over ${opts.idleSec} s: ${fmt(m.idleEmptyMs, 0)} ms empty tree, ${
      fmt(m.idleFullMs, 0)
    } ms ` +
      `with ${opts.containers} containers: +${fmt(idleDelta, 0)} ms / ${fmt(refreshes, 1)} refreshes = ` +
      `${fmt(idleDelta / refreshes, 1)} ms CPU per refresh (±${
        fmt(2000 / clkTck / refreshes, 1)
      } ms tick resolution)`,
  );
  out.push(
    `  same registry code in-process, ${ip.runs} refreshes over ${ip.dirs} cgroup dirs → ${ip.containers} ` +
      `containers: CPU p50 ${fmt(median(ip.cpuMs))} ms (max ${fmt(Math.max(...ip.cpuMs))}), wall p50 ` +
      `${fmt(median(ip.wallMs))} ms (max ${fmt(Math.max(...ip.wallMs))})`,
  );
  out.push(
    m.refreshSelfMs.length
      ? `  agent self-metric ${REFRESH_METRIC}: p50 ${fmt(median(m.refreshSelfMs))} ms, max ${
        fmt(Math.max(...m.refreshSelfMs))
      } ms (wall, over the scrapes)`
      : `  agent self-metric ${REFRESH_METRIC}: not exposed by this build`,
  );
  out.push("");

  const goalMs = 250;
  const perSeries = a.usPerSeries / b.usPerSeries;
  out.push("Goals:");
  out.push(
    `  [${a.p99Ms < goalMs ? "MET   " : "MISSED"}] ${opts.containers}-container scrape p99 < ${goalMs} ms: ` +
      `p99 ${fmt(a.p99Ms)} ms (p50 ${fmt(a.p50Ms)}, max ${fmt(a.maxMs)})`,
  );
  out.push(
    `  (for reference, scrape.ts's goal) per-series latency ratio ${fmt(perSeries)} ` +
      `(${fmt(a.usPerSeries)} vs ${fmt(b.usPerSeries)} µs/series) ${perSeries <= 1 ? "<=" : ">"} 1`,
  );
  out.push("");

  const pr = m.profile;
  out.push(
    `Container collectors alone, in-process (this source tree, ${opts.containers} containers, median of ` +
      `${opts.refreshes} sequential runs; CPU = all threads):`,
  );
  out.push(markdownTable(
    ["collector (container part)", "series", "CPU ms", "wall ms", "CPU µs/container"],
    [
      ...pr.collectors.map((c) => [
        c.name,
        String(c.series),
        fmt(c.cpuMs),
        fmt(c.wallMs),
        fmt((c.cpuMs * 1000) / opts.containers, 1),
      ]),
      [
        "sum",
        String(pr.collectors.reduce((x, c) => x + c.series, 0)),
        fmt(pr.collectors.reduce((x, c) => x + c.cpuMs, 0)),
        fmt(pr.collectors.reduce((x, c) => x + c.wallMs, 0)),
        fmt((pr.collectors.reduce((x, c) => x + c.cpuMs, 0) * 1000) / opts.containers, 1),
      ],
    ],
  ));
  out.push(
    `One cgroup file read (${pr.reads.files} cpuacct.stat files): async Deno.readTextFile under Promise.all ` +
      `${fmt(pr.reads.asyncUs, 1)} µs CPU each (${fmt(pr.reads.asyncWallMs)} ms wall for all), ` +
      `Deno.readTextFileSync ${fmt(pr.reads.syncUs, 1)} µs CPU each (${
        fmt(pr.reads.syncWallMs)
      } ms wall for all)`,
  );
  out.push("");

  const fams = [...m.census.containerFamilies.entries()].sort((x, y) => x[0].localeCompare(y[0]));
  out.push(`Container series families present (${fams.length}; series each):`);
  for (const [f, n] of fams) out.push(`  ${f} ${n}`);
  out.push("");
  out.push(
    `huatuo-bamai collectors: ${a.collectorsOk.length} success 1, ${a.collectorsFailed.length} success 0` +
      (a.collectorsFailed.length ? ` (${a.collectorsFailed.join(" ")})` : ""),
  );
  out.push(
    "  slowest (mean self-reported duration, ms; collectors run concurrently): " +
      a.topCollectorsMs.slice(0, 8).map(([c, ms]) => `${c} ${fmt(ms)}`).join(", "),
  );
  console.log(out.join("\n"));

  if (opts.json) {
    Deno.writeTextFileSync(
      opts.json,
      JSON.stringify(
        {
          command: cmd,
          info,
          clkTck,
          scrapes: opts.scrapes,
          containers: opts.containers,
          layout: m.layout,
          ours: a,
          nodeExporter: b,
          containerSeries: m.census.containerSeries,
          containerFamilies: Object.fromEntries(fams),
          refresh: {
            idleWindowSec: opts.idleSec,
            idleEmptyCpuMs: m.idleEmptyMs,
            idleFullCpuMs: m.idleFullMs,
            agentCpuMsPerRefresh: idleDelta / refreshes,
            inProcess: ip,
            selfMetricMs: m.refreshSelfMs,
          },
          profile: m.profile,
          listedMs: m.listedMs,
          goalP99Met: a.p99Ms < goalMs,
        },
        null,
        2,
      ) + "\n",
    );
    console.error(`wrote ${opts.json}`);
  }
}

if (import.meta.main) {
  const opts = parseOrExit(parseOptions, Deno.args, USAGE, "bench/containers.ts: ");
  Deno.chdir(ROOT);
  try {
    await bench(opts);
  } catch (err) {
    console.error(`bench/containers.ts: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
