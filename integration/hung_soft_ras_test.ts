// hungtask, softlockup and ras events through the real agent (root).
//
// - hungtask: a REAL hung task: a writer blocked on a frozen ext4 loop mount
//   while kernel.hung_task_timeout_secs is lowered to 2 s (restored after).
//   The first detection becomes one document with the writer, its D-state
//   stack and every CPU's backtrace; the kernel's later detections of the
//   same storm are counted but not reported (backoff).
// - softlockup: a real soft lockup cannot be caused safely, so this step
//   INJECTS the watchdog's report line through /dev/kmsg: it is NOT a real
//   lockup; it exercises the printk hook, the line parser, the event and the
//   backoff.
// - ras: no hardware error can be caused here; the tracer's state must match
//   the RAS tracepoints tracefs lists, and all five ras_hw_total series exist
//   at 0.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { RAS_HOOKS, RAS_SOURCES } from "../src/features/ras/ras.ts";
import { confWithPort, isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { parseExposition } from "./prom.ts";
import { frozenWriter, kmsg, readSysctl, setSysctl, sleep, withCleanup } from "./load.ts";

const NOT_ROOT = !isRoot();
if (NOT_ROOT) {
  console.warn("hung_soft_ras_test.ts: ignored: not root (loads BPF, mounts a loop device, changes sysctls)");
}

interface Doc {
  tracer_name: string;
  tracer_id: string;
  tracer_data: Record<string, unknown>;
}

function docs(dir: string, tracer: string): Doc[] {
  try {
    return Deno.readTextFileSync(`${dir}/${tracer}`).trim().split("\n").filter((l) => l !== "").map((l) =>
      JSON.parse(l)
    );
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

async function value(
  agent: RunningAgent,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const found = [...parseExposition(await scrape(agent)).values()].filter((s) =>
    s.name === `huatuo_bamai_${name}` && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  assertEquals(found.length, 1, `${name} ${JSON.stringify(labels)}`);
  return found[0].value;
}

async function waitFor<T>(what: string, ms: number, get: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function onlineCpus(): number[] {
  return Deno.readTextFileSync("/sys/devices/system/cpu/online").trim().split(",").flatMap((r) => {
    const [a, b] = r.split("-").map(Number);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
  });
}

function assertCpusStack(text: unknown): void {
  assert(typeof text === "string", "cpus_stack is text");
  assertMatch(text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Backtrace of all active CPUs/);
  for (const cpu of onlineCpus()) {
    assertMatch(text, new RegExp(`^Backtrace for cpu ${cpu}\nCPU: ${cpu} PID: \\d+ Comm: `, "m"));
  }
}

function tracefsEvents(): string {
  for (const d of ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]) {
    try {
      Deno.statSync(`${d}/events`);
      return `${d}/events`;
    } catch { /* next */ }
  }
  const out = new Deno.Command("mount", { args: ["-t", "tracefs", "nodev", "/sys/kernel/tracing"] })
    .outputSync();
  if (!out.success) throw new Error("tracefs is not mounted and cannot be");
  return "/sys/kernel/tracing/events";
}

Deno.test({
  name: "hungtask (real hung task), softlockup (injected watchdog line) and ras events through the agent",
  ignore: NOT_ROOT,
  async fn(t) {
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-hsr-" });
    const agent = await startAgent({
      args: ["--region", "it", "--disable-storage", "--disable-kubelet"],
      conf: (port) =>
        confWithPort(port, (text) => text.replace(/^\s*# Path = "huatuo-local"\s*$/m, `\tPath = "${local}"`)),
    });
    try {
      await t.step("ras: state matches tracefs; five ras_hw_total series at 0", async () => {
        const events = tracefsEvents();
        const exists = (tp: string) => {
          try {
            Deno.statSync(`${events}/${tp.replace(":", "/")}`);
            return true;
          } catch {
            return false;
          }
        };
        const present = RAS_SOURCES.filter((s) => exists(RAS_HOOKS[s].tracepoint));
        const missing = RAS_SOURCES.filter((s) => !present.includes(s)).map((s) => RAS_HOOKS[s].tracepoint);
        const res = await fetch(`${agent.url}/v1/tracers`);
        const body = await res.json() as { tracers: { name: string; state: string; reason?: string }[] };
        const ras = body.tracers.find((x) => x.name === "ras");
        console.log(`  tracefs has ${present.length} of 5 RAS hooks; agent: ${JSON.stringify(ras)}`);
        if (present.length === 0) {
          assertEquals(ras?.state, "unsupported");
          for (const tp of missing) assert(ras?.reason?.includes(tp), `${tp} named in ${ras?.reason}`);
          return;
        }
        assertEquals(ras?.state, "running");
        if (missing.length > 0) {
          assert(
            agent.output().includes(`missing="${missing.join(", ")}"`),
            `the agent logged the missing tracepoints:\n${agent.output()}`,
          );
        }
        for (const type of RAS_SOURCES) assertEquals(await value(agent, "ras_hw_total", { type }), 0, type);
        assertEquals(await value(agent, "scrape_collector_success", { collector: "ras" }), 1);
      });

      await t.step(
        "hungtask: a REAL writer blocked on a frozen fs → one event with its D stack; backoff",
        async () => {
          await withCleanup(async (c) => {
            setSysctl(c, "kernel.hung_task_timeout_secs", 2);
            const detected = () => Number(readSysctl("kernel.hung_task_detect_count"));
            const n0 = await value(agent, "hungtask_total");
            const k0 = detected();
            const before = docs(local, "hungtask").length;
            // Keep the writer hung through 3 detections (every 2 s): the 2nd and 3rd fall in the backoff window.
            const { pid, blockedMs } = await frozenWriter(c, () => detected() - k0 >= 3, 30_000);
            const k1 = detected();
            const mine = await waitFor("the hungtask document", 10_000, () => {
              const d = docs(local, "hungtask").filter((d) => d.tracer_data.pid === pid);
              return d.length > 0 ? d : undefined;
            });
            await sleep(500); // a second document, if the backoff failed, would be here by now
            const n1 = await value(agent, "hungtask_total");
            const all = docs(local, "hungtask");
            console.log(
              `  writer ${pid} blocked ${blockedMs} ms; kernel detections +${k1 - k0}; hungtask_total +${
                n1 - n0
              }; ` +
                `documents +${all.length - before}`,
            );
            assert(k1 - k0 >= 3, "the kernel detected the hung writer 3 times");
            assert(n1 - n0 >= k1 - k0, `every detection counted (${n1 - n0} >= ${k1 - k0})`);
            assertEquals(before, 0, "no earlier hung task in this agent");
            assertEquals(mine.length, 1, "later detections of the storm are held back");
            assertEquals(all.length, 1, "and no other hungtask document");
            const d = mine[0].tracer_data;
            assertEquals(d.comm, "sh");
            assertCpusStack(d.cpus_stack);
            const blocked = d.blocked_processes_stack;
            assert(typeof blocked === "string");
            // The writer's own block: header, then kernel frames, one per line.
            const m = new RegExp(`^task:sh state:D pid:${pid} tgid:${pid}\n((?: \\S+\n?)+)`, "m").exec(
              blocked,
            );
            assert(m, `writer ${pid} in blocked_processes_stack:\n${blocked}`);
            const frames = m[1].trim().split("\n").map((l) => l.trim());
            console.log(`  blocked_processes_stack (writer):\n    ${m[0].trim().split("\n").join("\n    ")}`);
            assert(frames.length >= 3, `frames: ${frames}`);
            assert(frames.every((f) => /^[\w.]+\+0x[0-9a-f]+\/0x[0-9a-f]+/.test(f)), `frames: ${frames}`);
            // Blocked in the freeze protection of the frozen superblock.
            assert(
              frames.some((f) => /percpu_rwsem|sb_start_write|mnt_want_write|freeze/.test(f)),
              `frames: ${frames}`,
            );
            assert(agent.output().includes(`msg="hung task detected" pid=${pid} comm=sh`), "logged");
          });
        },
      );

      await t.step(
        "softlockup: INJECTED watchdog line (/dev/kmsg, NOT a real lockup) → event; backoff",
        async () => {
          const n0 = await value(agent, "softlockup_total");
          // Not a real soft lockup: the report line the watchdog would print, written to /dev/kmsg.
          kmsg("<4>watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [huatuo-it:inj:4242]");
          const first = await waitFor("the softlockup document", 5_000, () => {
            const d = docs(local, "softlockup");
            return d.length > 0 ? d : undefined;
          });
          // A second report of the same storm (injected too), and look-alikes that are not reports.
          kmsg("<4>watchdog: BUG: soft lockup - CPU#0 stuck for 49s! [huatuo-it:4243]");
          kmsg("<4>huatuo-it: BUG: soft lockup - CPU#0 stuck for 23s! [decoy:1]");
          kmsg("<6>huatuo-it: an ordinary line");
          await sleep(500);
          const n1 = await value(agent, "softlockup_total");
          assertEquals(n1 - n0, 2, "both injected reports counted, the decoys not");
          assertEquals(docs(local, "softlockup").length, 1, "the second report is held back");
          assertEquals(first.length, 1);
          const d = first[0].tracer_data;
          assertEquals({ cpu: d.cpu, pid: d.pid, comm: d.comm }, {
            cpu: 1,
            pid: 4242,
            comm: "huatuo-it:inj",
          });
          assertCpusStack(d.cpus_stack);
        },
      );

      const res = await fetch(`${agent.url}/v1/tracers`);
      const body = await res.json() as { tracers: { name: string; state: string }[] };
      for (const name of ["hungtask", "softlockup"]) {
        assertEquals(body.tracers.find((x) => x.name === name)?.state, "running", name);
      }
    } finally {
      assertEquals((await agent.stop()).code, 0);
      Deno.removeSync(local, { recursive: true });
    }
  },
});
