// CPU profiler benchmark: BpfCpuProfiler (src/profile/cpu_profiler.ts) vs `perf record -F 99 -a -g`.
//
//   deno run -A bench/profiler.ts [--duration S] [--runs N] [--latency-runs N] [--json FILE]
//
// Needs root, gcc, perf (linux-perf), python3 and the BPF objects (./build.sh bpf). Sets
// kernel.bpf_stats_enabled=1 while it runs (the BPF program's run time is then accounted) and
// restores the previous value.
//
// 1. Cost. Per CPU one `work mix` process (testing/profile_workload.c: kernel-heavy, deep kernel and
//    user stacks) runs; then, alternately, --runs times each: two captures of --duration seconds at
//    99 Hz, host-wide, by a fresh child Deno process that has loaded its modules and kallsyms first,
//    like a running agent (cold: every ELF symbol table parsed for the first time; warm: the
//    symbolizer's cache); cost = the child's CPU time (getrusage) from the capture call to its
//    return (load, attach, sampling, read, symbolize) + the BPF program's run time (charged to the
//    interrupted tasks). And `perf record -F 99 -a -g -o FILE -- sleep S` under bash's `times`:
//    perf's CPU time (its in-interrupt sampling cost is charged to the interrupted tasks and not
//    counted, which favours perf); then `perf report` of that file (perf's symbolization, done after
//    the fact). Ratio: ours / perf record.
// 2. Slowdown. Per CPU one pinned `work count S` (hot_leaf in a loop; prints its rounds and its CPU
//    time) runs --duration seconds alone, while we capture, and while perf records, --runs times in
//    rotating order; slowdown = 1 - rounds / rounds of the baseline before it, by rounds (what other
//    load on a shared host also moves) and by rounds per CPU second the load got (interrupt work is
//    accounted to the interrupted task on kernels without IRQ_TIME_ACCOUNTING; other load is not).
// 3. Latency. A python3 process that imported ~45 C extension modules (~75 mapped objects) runs a
//    loop calling into several of them, alone in a cgroup2 cgroup of its own; a fresh child captures
//    that cgroup for 2 s (cold) and again (warm);
//    capture-to-profile latency = reading the maps + symbolizing, after sampling ends.
//    --latency-runs fresh children.
//
// Exit status: 0 when it ran (goals met or not), 1 when something failed, 2 on bad flags.

import process from "node:process";
import {
  cpuModelName,
  fmtNumber,
  loadavg3,
  markdownTable,
  numberFlag,
  parseFlags,
  parseOrExit,
  stringFlag,
} from "./common.ts";
import { kernelSymbols } from "../src/bpf/ksyms.ts";
import { setLibbpfLogger } from "../ffi/libbpf.ts";
import { BpfCpuProfiler, type CaptureStats, type CpuProfile } from "../src/profile/cpu_profiler.ts";
import { parseProcMaps } from "../src/profile/maps.ts";
import { UNKNOWN_FRAME } from "../src/profile/symbolize.ts";
import { buildWorkload, findPerf, startWorkload, stopWorkload } from "../testing/profile_workload.ts";
import { removeCgroupTree } from "../testing/cgroup_tree.ts";
import { findHierarchies } from "../src/pod/discovery.ts";

const BPF_DIR = new URL("../_output/bpf", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const USAGE =
  "usage: deno run -A bench/profiler.ts [--duration S] [--runs N] [--latency-runs N] [--json FILE]";
const dec = new TextDecoder();
const enc = new TextEncoder();

interface Options {
  durationS: number;
  runs: number;
  latencyRuns: number;
  json?: string;
}

function parseOptions(args: string[]): Options {
  const o: Options = { durationS: 10, runs: 3, latencyRuns: 3 };
  parseFlags(args, USAGE, (flag, value) => {
    if (flag === "--duration") o.durationS = numberFlag(flag, value(), 1, false);
    else if (flag === "--runs") o.runs = numberFlag(flag, value(), 1, true);
    else if (flag === "--latency-runs") o.latencyRuns = numberFlag(flag, value(), 1, true);
    else if (flag === "--json") o.json = stringFlag(flag, value(), "a file name");
    else return false;
    return true;
  });
  return o;
}

// ---------------------------------------------------------------- the capturing child

/** What the child reports for one capture. */
interface ChildCapture {
  cpuMs: number;
  wallMs: number;
  total: number;
  lost: number;
  stacks: number;
  stats: CaptureStats;
  /** Frames of `focus` samples: all, named by a symbol, module only, unknown. */
  focus?: { frames: number; symbols: number; modules: number; unknown: number; top: string[] };
}

/**
 * `--child DURATION_MS [FOCUS_PID] [CAPTURES]`: loads everything, prints "ready", then per line read
 * from stdin captures once and prints a ChildCapture as JSON.
 */
async function child(durationMs: number, focus: number | undefined, captures: number, cgroup2Id?: bigint) {
  setLibbpfLogger(() => {});
  kernelSymbols(); // loaded before the measured part, like a running agent has it
  const profiler = new BpfCpuProfiler({ bpfDir: BPF_DIR });
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).values();
  console.log("ready");
  for (let i = 0; i < captures; i++) {
    await lines.next();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const scope = cgroup2Id === undefined
      ? { kind: "host" } as const
      : { kind: "container", cgroup2Id } as const;
    const p: CpuProfile = await profiler.capture({ durationMs, scope });
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const out: ChildCapture = {
      cpuMs: (cpu.user + cpu.system) / 1000,
      wallMs,
      total: p.total,
      lost: p.lost,
      stacks: p.samples.length,
      stats: p.stats,
    };
    if (focus !== undefined) {
      const mine = p.samples.filter((s) => s.tgid === focus);
      const user = mine.flatMap((s) => s.frames.slice(0, s.frames.length - s.kernelFrames));
      const top = new Map<string, number>();
      for (const s of mine) {
        const leaf = s.frames[s.frames.length - 1 - s.kernelFrames] ?? "";
        top.set(leaf, (top.get(leaf) ?? 0) + s.count);
      }
      out.focus = {
        frames: user.length,
        symbols: user.filter((f) => !f.startsWith("[")).length,
        modules: user.filter((f) => f.startsWith("[") && f !== UNKNOWN_FRAME).length,
        unknown: user.filter((f) => f === UNKNOWN_FRAME).length,
        top: [...top].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([f, n]) => `${f} (${n})`),
      };
    }
    console.log(JSON.stringify(out));
  }
}

/** A started child: call capture() for each capture it was started for. */
interface Capturer {
  capture(): Promise<ChildCapture>;
  close(): Promise<void>;
}

async function startCapturer(
  durationMs: number,
  focus?: number,
  captures = 1,
  cgroup2Id?: bigint,
): Promise<Capturer> {
  const args = ["run", "-A", SELF, "--child", String(durationMs), String(focus ?? -1), String(captures)];
  if (cgroup2Id !== undefined) args.push(String(cgroup2Id));
  const c = new Deno.Command(Deno.execPath(), { args, stdin: "piped", stdout: "piped", stderr: "inherit" })
    .spawn();
  const lines = c.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines()).values();
  const writer = c.stdin.getWriter();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error("capture child exited early");
    return r.value;
  };
  if ((await next()) !== "ready") throw new Error("capture child did not get ready");
  return {
    async capture() {
      await writer.write(enc.encode("go\n"));
      return JSON.parse(await next()) as ChildCapture;
    },
    async close() {
      await writer.close().catch(() => {});
      try {
        c.kill("SIGKILL");
      } catch { /* exited */ }
      await c.status;
    },
  };
}

function splitLines(): TransformStream<string, string> {
  let buf = "";
  return new TransformStream({
    transform(chunk, ctl) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        ctl.enqueue(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    },
  });
}

// ---------------------------------------------------------------- perf

/** perf record for `seconds` under bash's `times`: its CPU time in ms. */
function perfRecord(perf: string, file: string, seconds: number): Promise<number> {
  const script = `"${perf}" record -F 99 -a -g -o "${file}" -- sleep ${seconds} >/dev/null 2>&1; times`;
  return childrenCpuMs(script);
}

function perfReport(perf: string, file: string): Promise<number> {
  return childrenCpuMs(
    `"${perf}" report -i "${file}" --stdio --no-children --sort sym >/dev/null 2>&1; times`,
  );
}

/** Runs a bash script ending in `times`; the children's user + sys time in ms. */
async function childrenCpuMs(script: string): Promise<number> {
  const o = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped", stderr: "piped" })
    .output();
  const lines = dec.decode(o.stdout).trim().split("\n");
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(lines[lines.length - 1] ?? "");
  if (!m) throw new Error(`cannot read times from: ${dec.decode(o.stdout)} ${dec.decode(o.stderr)}`);
  return (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
}

// ---------------------------------------------------------------- loads

const CPUS = navigator.hardwareConcurrency;

/**
 * Runs `fn` while one `mode` workload per CPU runs; for "count", also the rounds they did and the CPU time
 * they got (ns), summed.
 */
async function withLoad<T>(bin: string, mode: "mix" | "count", seconds: number, fn: () => Promise<T>) {
  const load = Array.from({ length: CPUS }, (_, cpu) => startWorkload(bin, mode, { seconds, cpu }));
  try {
    const result = await fn();
    let rounds = 0;
    let cpuNs = 0;
    if (mode === "count") {
      for (const c of load) {
        const [r, ns] = dec.decode((await c.output()).stdout).trim().split(" ").map(Number);
        rounds += r;
        cpuNs += ns;
      }
    }
    return { result, rounds, cpuNs };
  } finally {
    for (const c of load) if (mode !== "count") await stopWorkload(c);
  }
}

const PYTHON_MODULES = [
  "_asyncio",
  "_bz2",
  "_codecs_cn",
  "_codecs_hk",
  "_codecs_iso2022",
  "_codecs_jp",
  "_codecs_kr",
  "_codecs_tw",
  "_contextvars",
  "_crypt",
  "_ctypes",
  "_curses",
  "_curses_panel",
  "_dbm",
  "_decimal",
  "_hashlib",
  "_json",
  "_lsprof",
  "_lzma",
  "_multibytecodec",
  "_multiprocessing",
  "_posixshmem",
  "_queue",
  "_sqlite3",
  "_ssl",
  "_testbuffer",
  "_testcapi",
  "_testinternalcapi",
  "_testmultiphase",
  "_typing",
  "_uuid",
  "_xxsubinterpreters",
  "_zoneinfo",
  "audioop",
  "mmap",
  "readline",
  "resource",
  "termios",
  "xxlimited",
  "_ctypes_test",
  "_testclinic",
  "_testimportmultiple",
  "_xxtestfuzz",
  "nis",
  "ossaudiodev",
  "xxlimited_35",
]; // deno-fmt-ignore

const PYTHON_LOAD = `
import importlib, os, sys, time, warnings
warnings.simplefilter("ignore")
for m in ${JSON.stringify(PYTHON_MODULES)}:
    try:
        importlib.import_module(m)
    except Exception:
        pass
import bz2, decimal, hashlib, json, lzma, sqlite3, zlib
db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
data = os.urandom(2048)
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    hashlib.sha256(data).digest()
    json.dumps({"a": [1, 2, 3], "b": "x" * 64})
    decimal.Decimal(1) / decimal.Decimal(7)
    bz2.compress(data[:256])
    lzma.compress(data[:128])
    zlib.compress(data)
    db.execute("insert into t values (?)", (1,))
    db.execute("delete from t")
`;

async function startPython(seconds: number): Promise<{ child: Deno.ChildProcess; objects: number }> {
  const child = new Deno.Command("/usr/bin/python3", {
    args: ["-c", PYTHON_LOAD, String(seconds)],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  if (!first.value?.startsWith("ready")) throw new Error("python3 load did not start");
  reader.releaseLock();
  const maps = parseProcMaps(await Deno.readTextFile(`/proc/${child.pid}/maps`));
  const objects =
    new Set(maps.filter((m) => m.inode !== 0 && m.path.startsWith("/")).map((m) => m.path)).size;
  return { child, objects };
}

// ---------------------------------------------------------------- main

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
    ? s[(s.length - 1) / 2]
    : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f1 = (x: number) => fmtNumber(x, 1);
const f2 = (x: number) => fmtNumber(x, 2);

async function main(opts: Options): Promise<void> {
  if (Deno.uid() !== 0) throw new Error("needs root (BPF, perf -a)");
  const perf = findPerf();
  if (!perf) throw new Error("perf is not installed: apt-get install linux-perf");
  const statsFile = "/proc/sys/kernel/bpf_stats_enabled";
  const prevStats = Deno.readTextFileSync(statsFile).trim();
  Deno.writeTextFileSync(statsFile, "1");
  const dir = await Deno.makeTempDir({ prefix: "huatuo-bench-prof-" });
  try {
    const bin = await buildWorkload(dir);
    const S = opts.durationS;
    const head = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stdout: "piped" })
      .output();
    const perfVersion = dec.decode(
      (await new Deno.Command(perf, { args: ["--version"], stdout: "piped" }).output()).stdout,
    );
    console.log("```");
    console.log(`date      ${new Date().toISOString()}`);
    console.log(
      `machine   ${CPUS} CPUs, ${
        cpuModelName() ?? "unknown CPU"
      }, kernel ${Deno.osRelease()}, loadavg ${loadavg3()}`,
    );
    console.log(
      `tools     deno ${Deno.version.deno}, ${perfVersion.trim()}, git ${dec.decode(head.stdout).trim()}`,
    );
    console.log(
      `command   deno run -A bench/profiler.ts --duration ${S} --runs ${opts.runs} --latency-runs ${opts.latencyRuns}`,
    );
    console.log("```\n");
    const perRun = (xs: number[]) => xs.map(f1).join(" / ");
    const pct = (x: number) => `${f2(100 * x)} %`;

    // 1. Cost on the mix load: a fresh child captures twice (cold, then warm symbol cache).
    const cold: ChildCapture[] = [];
    const warm: ChildCapture[] = [];
    const perfRec: number[] = [];
    const perfRep: number[] = [];
    for (let r = 0; r < opts.runs; r++) {
      for (const who of r % 2 === 0 ? ["ours", "perf"] : ["perf", "ours"]) {
        if (who === "ours") {
          const c = await startCapturer(S * 1000, undefined, 2);
          try {
            const { result } = await withLoad(
              bin,
              "mix",
              2 * S + 10,
              async () => [await c.capture(), await c.capture()],
            );
            cold.push(result[0]);
            warm.push(result[1]);
          } finally {
            await c.close();
          }
        } else {
          const file = `${dir}/perf-${r}.data`;
          const { result } = await withLoad(bin, "mix", S + 5, () => perfRecord(perf, file, S));
          perfRec.push(result);
          perfRep.push(await perfReport(perf, file));
          await Deno.remove(file);
        }
      }
    }
    const bpfMs = (c: ChildCapture) => (c.stats.bpfRunNs ?? 0) / 1e6;
    const total = (c: ChildCapture) => c.cpuMs + bpfMs(c);
    const med = (xs: ChildCapture[], f: (c: ChildCapture) => number) => median(xs.map(f));
    const ratioCold = med(cold, total) / median(perfRec);
    const ratioWarm = med(warm, total) / median(perfRec);
    console.log(
      `### Cost: ${S} s at 99 Hz on ${CPUS} CPUs, one \`work mix\` per CPU (median of ${opts.runs} runs)\n`,
    );
    const row = (label: string, f: (c: ChildCapture) => number) => [
      label,
      f1(med(cold, f)),
      f1(med(warm, f)),
      perRun(cold.map(f)),
    ];
    console.log(markdownTable(["ours (capture call)", "cold", "warm", "cold per run"], [
      row("process CPU (ms)", (c) => c.cpuMs),
      row("BPF program run time (ms)", bpfMs),
      row("total (ms)", total),
      row("  load (ms)", (c) => c.stats.loadMs),
      row("  attach (ms)", (c) => c.stats.attachMs),
      row("  read maps (ms)", (c) => c.stats.readMs),
      row("  symbolize (ms)", (c) => c.stats.symbolizeMs),
      row("  BPF µs per sample", (c) => (c.stats.bpfRunNs ?? 0) / 1000 / Math.max(1, c.stats.bpfRuns ?? 1)),
      row("  samples", (c) => c.total),
      row("  lost", (c) => c.lost),
      row("  distinct stacks (named)", (c) => c.stacks),
    ]));
    console.log();
    console.log(markdownTable(["perf", "median", "per run"], [
      ["perf record -F 99 -a -g: process CPU (ms)", f1(median(perfRec)), perRun(perfRec)],
      ["perf report --no-children --sort sym: process CPU (ms)", f1(median(perfRep)), perRun(perfRep)],
    ]));
    console.log(
      `\nRatio ours total / perf record: cold ${f2(ratioCold)}, warm ${f2(ratioWarm)};` +
        ` ours / (perf record + perf report): cold ${
          f2(med(cold, total) / (median(perfRec) + median(perfRep)))
        }.\n`,
    );

    // 2. Slowdown of a CPU-bound load, by rounds (wall) and by rounds per CPU second of the load.
    type Window = { rounds: number; cpuNs: number };
    const base: Window[] = [];
    const withOurs: Window[] = [];
    const withPerf: Window[] = [];
    const slow = {
      ours: [] as number[],
      perf: [] as number[],
      oursCpu: [] as number[],
      perfCpu: [] as number[],
    };
    const bpfShare: number[] = [];
    const orders = [["base", "ours", "perf"], ["base", "perf", "ours"]];
    for (let r = 0; r < opts.runs; r++) {
      let last: Window = { rounds: NaN, cpuNs: NaN };
      for (const who of orders[r % 2]) {
        let w: Window;
        if (who === "base") {
          w = await withLoad(bin, "count", S, () => Promise.resolve());
          base.push(last = w);
          continue;
        } else if (who === "ours") {
          const c = await startCapturer(S * 1000);
          try {
            const run = await withLoad(bin, "count", S, () => c.capture());
            w = run;
            // The program's run time against the CPU time the load got: its in-interrupt share.
            bpfShare.push((run.result.stats.bpfRunNs ?? NaN) / run.cpuNs);
          } finally {
            await c.close();
          }
          withOurs.push(w);
        } else {
          const file = `${dir}/perf-slow.data`;
          w = await withLoad(bin, "count", S, () => perfRecord(perf, file, S));
          await Deno.remove(file);
          withPerf.push(w);
        }
        const key = who === "ours" ? "ours" : "perf";
        slow[key].push(1 - w.rounds / last.rounds);
        slow[`${key}Cpu`].push(1 - (w.rounds / w.cpuNs) / (last.rounds / last.cpuNs));
      }
    }
    const rate = (w: Window) => w.rounds / (w.cpuNs / 1e9);
    console.log(
      `### Slowdown: one pinned \`work count ${S}\` per CPU (rounds of hot_leaf), ${opts.runs} runs\n`,
    );
    console.log(markdownTable(
      ["", "rounds", "rounds per CPU s", "slowdown, rounds", "per run", "slowdown, per CPU s", "per run"],
      [
        [
          "alone",
          fmtNumber(median(base.map((w) => w.rounds)), 0),
          fmtNumber(median(base.map(rate)), 0),
          "",
          "",
          "",
          "",
        ],
        [
          "while we capture",
          fmtNumber(median(withOurs.map((w) => w.rounds)), 0),
          fmtNumber(median(withOurs.map(rate)), 0),
          pct(median(slow.ours)),
          slow.ours.map(pct).join(" / "),
          pct(median(slow.oursCpu)),
          slow.oursCpu.map(pct).join(" / "),
        ],
        [
          "while perf records",
          fmtNumber(median(withPerf.map((w) => w.rounds)), 0),
          fmtNumber(median(withPerf.map(rate)), 0),
          pct(median(slow.perf)),
          slow.perf.map(pct).join(" / "),
          pct(median(slow.perfCpu)),
          slow.perfCpu.map(pct).join(" / "),
        ],
      ],
    ));
    console.log(
      `\nBPF program run time / CPU time of the load while we capture (the in-interrupt cost itself): ${
        pct(median(bpfShare))
      } (${bpfShare.map(pct).join(" / ")}).\n`,
    );

    // 3. Capture-to-profile latency with a python3 of many objects.
    const latency: { cold: ChildCapture; warm: ChildCapture; objects: number }[] = [];
    // The python3 process alone (its own cgroup2 cgroup), not whatever else the host runs.
    const unified = (await findHierarchies("/sys/fs/cgroup")).find((h) => h.name === "unified");
    if (!unified) throw new Error("no cgroup2 hierarchy under /sys/fs/cgroup");
    const cgroup = `${unified.path}/huatuo-bench-prof-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(cgroup);
    const cgroup2Id = BigInt((await Deno.stat(cgroup)).ino ?? 0);
    try {
      for (let r = 0; r < opts.latencyRuns; r++) {
        const py = await startPython(60);
        try {
          await Deno.writeTextFile(`${cgroup}/cgroup.procs`, `${py.child.pid}\n`);
          const c = await startCapturer(2000, py.child.pid, 2, cgroup2Id);
          try {
            latency.push({ cold: await c.capture(), warm: await c.capture(), objects: py.objects });
          } finally {
            await c.close();
          }
        } finally {
          await stopWorkload(py.child);
        }
      }
    } finally {
      await removeCgroupTree(cgroup);
    }
    const after = (c: ChildCapture) => c.stats.readMs + c.stats.symbolizeMs;
    const lc = latency.map((l) => l.cold);
    const lw = latency.map((l) => l.warm);
    const lrow = (label: string, f: (c: ChildCapture) => number) => [
      label,
      f1(med(lc, f)),
      f1(med(lw, f)),
      perRun(lc.map(f)),
    ];
    console.log(
      `### Latency: python3 with ${
        latency[0].objects
      } mapped objects, 2 s captures, ${opts.latencyRuns} fresh children\n`,
    );
    console.log(markdownTable(["", "cold", "warm", "cold per run"], [
      lrow("read maps (ms)", (c) => c.stats.readMs),
      lrow("symbolize (ms)", (c) => c.stats.symbolizeMs),
      lrow("capture-to-profile (ms)", after),
      lrow("load + attach (ms)", (c) => c.stats.loadMs + c.stats.attachMs),
      lrow("distinct stacks (named)", (c) => c.stacks),
    ]));
    const focus = lc[0].focus;
    if (focus) {
      console.log(
        `\npython3's user frames (first cold run): ${focus.frames}: ${focus.symbols} named, ${focus.modules} module only,` +
          ` ${focus.unknown} unknown; top leaves: ${focus.top.join(", ")}`,
      );
    }
    const slowdown = median(slow.oursCpu);
    const share = median(bpfShare);
    console.log("\n### Goals\n");
    console.log(
      `- [${ratioCold <= 1 ? "MET   " : "MISSED"}] CPU cost <= perf record's: ratio ${f2(ratioCold)} cold, ${
        f2(ratioWarm)
      } warm`,
    );
    console.log(
      `- [${slowdown < 0.01 && share < 0.01 ? "MET   " : "MISSED"}] slowdown < 1 %: ${
        pct(slowdown)
      } per CPU second` +
        ` (${pct(median(slow.ours))} in rounds); BPF run time ${pct(share)} of the load's CPU time`,
    );
    if (opts.json) {
      const data = { cold, warm, perfRec, perfRep, base, withOurs, withPerf, slow, bpfShare, latency };
      await Deno.writeTextFile(opts.json, JSON.stringify(data, null, 1));
    }
  } finally {
    Deno.writeTextFileSync(statsFile, prevStats);
    await Deno.remove(dir, { recursive: true });
  }
}

if (Deno.args[0] === "--child") {
  const [, ms, focus, n, cgroup] = Deno.args;
  await child(
    Number(ms),
    Number(focus) > 0 ? Number(focus) : undefined,
    Number(n ?? 1),
    cgroup ? BigInt(cgroup) : undefined,
  );
  Deno.exit(0);
}
const opts = parseOrExit(parseOptions, Deno.args, USAGE);
try {
  await main(opts);
} catch (err) {
  console.error(`bench/profiler.ts: ${err instanceof Error ? err.stack : err}`);
  Deno.exit(1);
}
