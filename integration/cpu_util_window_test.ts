// cpu_util end to end on the live host: under a steady load (stress-ng, one
// worker at 50 % of a CPU), two scrapers reading /metrics 20 ms apart — as two
// Prometheus replicas do — get the same cpu_util_{usr,sys,total}, and that is
// what /proc/stat says over a window of the same length (5 s), measured here
// by the test itself over the agent's window (found by watching the value
// change at each window boundary).

import { assert } from "../testing/assert.ts";
import { type RunningAgent, scrape, startAgent } from "./agent.ts";
import { type Cleanup, sleep, spawnBackground, withCleanup } from "./load.ts";
import { parseExposition } from "./prom.ts";

/** The agent's window (src/host/stat_window.ts CPU_WINDOW_MS). */
const WINDOW_MS = 5000;
/** Points by which two readings may differ. */
const TOLERANCE = 2;

const hasStressNg = (() => {
  try {
    return new Deno.Command("stress-ng", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();
if (!hasStressNg) console.warn("cpu_util window test skipped: no stress-ng (./build.sh deps installs it)");

interface Util {
  usr: number;
  sys: number;
  total: number;
}

/** The aggregate "cpu" line's counters, read independently of the agent's parser. */
function procStat(): number[] {
  const line = Deno.readTextFileSync("/proc/stat").split("\n").find((l) => l.startsWith("cpu "))!;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  while (f.length < 8) f.push(0);
  return f;
}

/** Percent of all CPUs between two readings: usr = user+nice, sys = system+irq+softirq, total = not idle/iowait. */
function utilBetween(a: number[], b: number[]): Util {
  const d = b.map((v, i) => v - a[i]);
  const [user, nice, system, idle, iowait, irq, softirq] = d;
  const all = d.reduce((x, y) => x + y, 0);
  return {
    usr: (user + nice) / all * 100,
    sys: (system + irq + softirq) / all * 100,
    total: 100 - (idle + iowait) / all * 100,
  };
}

async function agentUtil(agent: RunningAgent): Promise<Util> {
  const series = parseExposition(await scrape(agent));
  const get = (k: string) => {
    const s = [...series.values()].find((x) => x.name === `huatuo_bamai_cpu_util_${k}`);
    assert(s, `no cpu_util_${k}`);
    return s.value;
  };
  return { usr: get("usr"), sys: get("sys"), total: get("total") };
}

const fmt = (u: Util) => `usr=${u.usr.toFixed(1)} sys=${u.sys.toFixed(1)} total=${u.total.toFixed(1)}`;

function assertClose(a: Util, b: Util, what: string): void {
  for (const k of ["usr", "sys", "total"] as const) {
    assert(
      Math.abs(a[k] - b[k]) <= TOLERANCE,
      `${what}: ${k} differs by more than ${TOLERANCE}: ${fmt(a)} vs ${fmt(b)}`,
    );
  }
}

/** Waits for the agent's cpu_util to change (a window boundary), polling every `everyMs`; returns the new value. */
async function nextWindow(agent: RunningAgent, everyMs: number, timeoutMs = 3 * WINDOW_MS): Promise<Util> {
  const before = await agentUtil(agent);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    await sleep(everyMs);
    const now = await agentUtil(agent);
    if (now.usr !== before.usr || now.sys !== before.sys || now.total !== before.total) return now;
    assert(performance.now() < deadline, `cpu_util did not change within ${timeoutMs} ms (${fmt(now)})`);
  }
}

function startStress(c: Cleanup): void {
  // --timeout: never outlives a test that dies without its cleanup.
  spawnBackground(c, "stress-ng", "stress-ng", [
    "--cpu",
    "1",
    "--cpu-load",
    "50",
    "--timeout",
    "120s",
    "--quiet",
  ]);
}

Deno.test({
  name:
    "cpu_util: two scrapers 20 ms apart get the same value, the one /proc/stat gives over the same window",
  ignore: !hasStressNg,
  async fn() {
    await withCleanup(async (c) => {
      startStress(c);
      const agent = await startAgent({
        args: ["--region", "dev", "--disable-kubelet", "--disable-storage"],
        conf: (p) => `[Storage.LocalFile]\nPath = ""\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
      });
      c.defer("stop agent", () => agent.stop());

      // Find the window's phase (coarse), then catch the next boundary closely: the agent's window starts there.
      await nextWindow(agent, 100);
      await sleep(WINDOW_MS - 300);
      await nextWindow(agent, 20);
      const t0 = procStat();
      await sleep(WINDOW_MS - 300);
      await nextWindow(agent, 20);
      const t1 = procStat();
      const own = utilBetween(t0, t1);

      // Two scrapers 20 ms apart, five times over the next second: every reading is the window [t0, t1].
      const readings: { a: Util; b: Util }[] = [];
      for (let i = 0; i < 5; i++) {
        const a = await agentUtil(agent);
        await sleep(20);
        const b = await agentUtil(agent);
        readings.push({ a, b });
        await sleep(150);
      }
      console.log(`test's window: ${fmt(own)}; agent: ${readings.map((r) => fmt(r.a)).join(" | ")}`);
      assert(own.total > 15, `stress-ng --cpu-load 50 on one CPU is load: ${fmt(own)}`);
      for (const [i, { a, b }] of readings.entries()) {
        assertClose(a, b, `pair ${i}: scraper A vs scraper B 20 ms later`);
        assertClose(a, own, `pair ${i}: the agent vs /proc/stat over the same 5 s`);
      }
    });
  },
});
