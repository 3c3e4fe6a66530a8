// Accuracy against perf: the same kernel-heavy load sampled at the same time
// by BpfCpuProfiler and by `perf record -F 99 -a -g`; the top-10 kernel
// functions by self samples must largely agree. perf comes from linux-perf
// (./build.sh deps installs it).

import { assert } from "../../testing/assert.ts";
import {
  buildWorkload,
  findPerf,
  parsePerfReport,
  startWorkload,
  stopWorkload,
  workloadSkipReason,
} from "../../testing/profile_workload.ts";
import { setLibbpfLogger } from "../../ffi/libbpf.ts";
import { BpfCpuProfiler, type CpuProfile } from "./cpu_profiler.ts";

const OUT = new URL("../../_output/bpf", import.meta.url).pathname;
const perf = findPerf();
const skip = Deno.uid() !== 0 ? "needs root (BPF, perf -a)" : workloadSkipReason() ??
  (perf === undefined ? "perf is not installed (./build.sh deps installs linux-perf)" : undefined);
if (skip) console.warn(`cpu_profiler_perf_test: ignored: ${skip}`);
else setLibbpfLogger(() => {});

/** Self samples by kernel function of `pids`: the innermost frame of samples taken in the kernel. */
function kernelSelf(p: CpuProfile, pids: Set<number>): { sym: string; percent: number }[] {
  const by = new Map<string, number>();
  for (const s of p.samples) {
    if (s.kernelFrames === 0 || !pids.has(s.tgid)) continue;
    const leaf = s.frames[s.frames.length - 1];
    by.set(leaf, (by.get(leaf) ?? 0) + s.count);
  }
  return [...by].map(([sym, n]) => ({ sym, percent: (100 * n) / p.total })).sort((a, b) =>
    b.percent - a.percent
  );
}

const fmt = (list: { sym: string; percent: number }[]) =>
  list.map((x, i) => `    ${String(i + 1).padStart(2)}. ${x.percent.toFixed(2).padStart(6)}%  ${x.sym}`).join(
    "\n",
  );

Deno.test({
  name:
    "capture vs perf record -F 99 -a -g: the top-10 kernel functions by self samples overlap (>= 5 of 10)",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-prof-perf-" });
    const bin = await buildWorkload(dir);
    // Two per CPU: on a shared host the load's share of the CPUs (so its sample count, so the
    // stability of the ranking) grows with its number of tasks.
    const cpus = navigator.hardwareConcurrency;
    const load = Array.from(
      { length: 2 * cpus },
      (_, i) => startWorkload(bin, "mix", { seconds: 30, cpu: i % cpus }),
    );
    try {
      await new Promise((r) => setTimeout(r, 300));
      const data = `${dir}/perf.data`;
      // Both sample the same 8 s: perf record runs `sleep 8` while we capture 8 s.
      const recording = new Deno.Command(perf!, {
        args: ["record", "-F", "99", "-a", "-g", "-o", data, "--", "sleep", "8"],
        stdout: "null",
        stderr: "piped",
      }).output();
      const ours = await new BpfCpuProfiler({ bpfDir: OUT }).capture({
        durationMs: 8000,
        scope: { kind: "host" },
      });
      const rec = await recording;
      assert(rec.success, `perf record: ${new TextDecoder().decode(rec.stderr)}`);
      const report = await new Deno.Command(perf!, {
        // The load's processes only, on both sides: the host's other work is not the comparison.
        args: ["report", "-i", data, "--stdio", "--no-children", "--comms", "work", "--sort", "sym"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(report.success, `perf report: ${new TextDecoder().decode(report.stderr)}`);
      const theirs = parsePerfReport(new TextDecoder().decode(report.stdout)).slice(0, 10);
      const pids = new Set(load.map((c) => c.pid));
      const mine = kernelSelf(ours, pids).slice(0, 10);
      const overlap = mine.filter((m) => theirs.some((t) => t.sym === m.sym)).map((m) => m.sym);
      console.log(
        `  ours: ${ours.total} samples (${ours.lost} lost), ${ours.stats.clock}; top-10 kernel self of the load:`,
      );
      console.log(fmt(mine));
      console.log(
        `  perf record -F 99 -a -g; perf report --no-children --comms work --sort sym, top-10 [k]:`,
      );
      console.log(fmt(theirs));
      const loadSamples = ours.samples.filter((x) => pids.has(x.tgid)).reduce((n, x) => n + x.count, 0);
      console.log(
        `  overlap: ${overlap.length} of 10 (${overlap.join(", ")}); ${loadSamples} samples of the load`,
      );
      assert(theirs.length >= 5, `perf reported only ${theirs.length} kernel symbols`);
      assert(overlap.length >= 5, `top-10 overlap ${overlap.length} < 5`);
    } finally {
      for (const c of load) await stopWorkload(c);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
