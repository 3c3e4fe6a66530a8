// softirq_tracing and memory_reclaim_events through the real agent (root), with
// the thresholds lowered in its config:
// - softirq_tracing: a REAL 100+ ms softirq-off section: tcp_close() purging a
//   TCP write queue of 300k one-byte skbs with softirqs disabled;
// - memory_reclaim_events: a REAL process churning 768 MiB of file data through
//   a 32 MiB cgroup v1 memory cgroup, so it stalls in memory cgroup reclaim.
// Each must arrive as a document in <LocalFile.Path>/<tracer> and as a
// CloudEvent on POST /v1/events/watch.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { isRoot, startAgent } from "./agent.ts";
import { type Cleanup, memoryCgroup, PYTHON, sleep, withCleanup } from "./load.ts";
import { exists } from "../testing/fs.ts";

const MEMCG_V1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
const skip = !isRoot()
  ? "not root (loads BPF, creates a memory cgroup)"
  : !exists(MEMCG_V1)
  ? "no cgroup v1 memory controller"
  : undefined;
if (skip) console.warn(`sched_mem_events_test.ts: ignored: ${skip}`);

interface Doc {
  tracer_name: string;
  tracer_id: string;
  tracer_type: string;
  hostname: string;
  region: string;
  tracer_data: Record<string, unknown>;
}

/** Documents of one tracer in the local store: its file and rotated siblings (<tracer>*). */
function docs(dir: string, tracer: string): Doc[] {
  const out: Doc[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile || !e.name.startsWith(tracer)) continue;
    const text = Deno.readTextFileSync(`${dir}/${e.name}`);
    for (const line of text.split("\n")) if (line !== "") out.push(JSON.parse(line));
  }
  return out;
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

interface CloudEvent {
  source: string;
  data: { tracer_name: string; tracer_id: string; tracer_data?: Record<string, unknown> };
}

/** CloudEvents from an open watch stream, collected in the background. */
function collect(body: ReadableStream<Uint8Array>): { events: CloudEvent[]; done: Promise<void> } {
  const events: CloudEvent[] = [];
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const done = (async () => {
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m = /^data: (.*)$/m.exec(frame);
          if (m) events.push(JSON.parse(m[1]));
        }
      }
    } catch { /* aborted at the end of the test */ }
  })();
  return { events, done };
}

// Same recipes as the unit tests of the two tracers (src/features/<name>/*_test.ts).
const TCP_PURGE = `
import os, socket, sys, time
n, cpu = int(sys.argv[1]), int(sys.argv[2])
os.sched_setaffinity(0, {cpu})
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, 32, 1 << 30)  # SO_SNDBUFFORCE
c.connect(ls.getsockname())
s, _ = ls.accept()
s.setsockopt(socket.SOL_SOCKET, 33, 4096)  # SO_RCVBUFFORCE
s.send(b"x")  # unread data: close() resets and destroys the socket at once
time.sleep(0.05)
c.setblocking(False)
for _ in range(n):
    try:
        c.send(b"y", socket.MSG_EOR)
    except BlockingIOError:
        break
t0 = time.monotonic_ns()
c.close()
print(time.monotonic_ns() - t0, flush=True)
s.close()
`;

const FILE_CHURN = `
import os, sys
p = sys.argv[1]
buf = b"\\1" * (1 << 20)
with open(p, "wb") as f:
    for i in range(256):
        f.write(buf)
    f.flush()
    os.fsync(f.fileno())
    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
for _ in range(2):
    with open(p, "rb") as f:
        while f.read(1 << 20):
            pass
`;

async function python(args: string[], cgroup?: string): Promise<{ pid: number; stdout: string }> {
  const join = cgroup ? `echo $$ > ${cgroup}/cgroup.procs && ` : "";
  const child = new Deno.Command("sh", {
    args: ["-c", `${join}exec "$0" "$@"`, PYTHON, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = await child.output();
  const td = new TextDecoder();
  assertEquals(out.code, 0, td.decode(out.stderr));
  return { pid: child.pid, stdout: td.decode(out.stdout) };
}

function lastCpu(): number {
  const text = Deno.readTextFileSync("/sys/devices/system/cpu/online").trim();
  return Math.max(...text.split(",").map((r) => Number(r.split("-").pop())));
}

Deno.test({
  name:
    "softirq_tracing and memory_reclaim_events: real kernel activity → local file documents and CloudEvents",
  ignore: skip !== undefined,
  async fn(t) {
    await withCleanup(async (c: Cleanup) => {
      const local = Deno.makeTempDirSync({ prefix: "huatuo-it-schedmem-" });
      c.defer(`remove ${local}`, () => Deno.removeSync(local, { recursive: true }));
      const softirqThreshold = 5_000_000;
      const reclaimThreshold = 1_000_000;
      const agent = await startAgent({
        args: ["--region", "it", "--disable-kubelet"],
        conf: (p) =>
          `[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n[Storage.LocalFile]\nPath = "${local}"\n` +
          `[EventTracing.Softirq]\nDisabledThreshold = ${softirqThreshold}\n` +
          `[EventTracing.MemoryReclaim]\nBlockedThreshold = ${reclaimThreshold}\n`,
      });
      c.defer("stop the agent", async () => assertEquals((await agent.stop()).code, 0, agent.output()));

      const res = await fetch(`${agent.url}/v1/tracers`);
      const body = await res.json() as { tracers: { name: string; state: string; reason?: string }[] };
      for (const name of ["softirq_tracing", "memory_reclaim_events"]) {
        const st = body.tracers.find((x) => x.name === name);
        assertEquals(st?.state, "running", `${name}: ${JSON.stringify(st)}\n${agent.output()}`);
      }

      const abort = new AbortController();
      const stream = await fetch(`${agent.url}/v1/events/watch`, {
        method: "POST",
        body:
          '{"filters": {"tracer_name": "^(softirq_tracing|memory_reclaim_events)$"}, "include_tracer_data": true}',
        signal: abort.signal,
      });
      assertEquals(stream.status, 200);
      const watch = collect(stream.body!);
      c.defer("close the watch stream", async () => {
        abort.abort();
        await watch.done;
      });

      await t.step("softirq_tracing: tcp_close() purging 300k skbs with softirqs off", async () => {
        const cpu = lastCpu();
        const { pid, stdout } = await python(["-c", TCP_PURGE, "300000", String(cpu)]);
        const closeNs = Number(stdout.trim());
        const mine = (d: Doc) =>
          d.tracer_data.pid === pid && /\ntcp_close\+/.test(String(d.tracer_data.stack));
        const doc = await waitFor(
          "the softirq_tracing document",
          5000,
          () => docs(local, "softirq_tracing").find(mine),
        );
        const ev = await waitFor(
          "the softirq_tracing CloudEvent",
          2000,
          () => watch.events.find((e) => e.data.tracer_id === doc.tracer_id),
        );
        const d = doc.tracer_data;
        console.log(
          `  close() ${(closeNs / 1e6).toFixed(1)} ms; offtime ${
            ((d.offtime as number) / 1e6).toFixed(1)
          } ms`,
        );
        assertEquals(doc.tracer_name, "softirq_tracing");
        assertEquals(doc.tracer_type, "auto");
        assertEquals(doc.region, "it");
        assertEquals(ev.source, `/huatuo/${Deno.hostname()}/softirq_tracing`);
        assertEquals(ev.data.tracer_name, "softirq_tracing");
        assertEquals(ev.data.tracer_data, d);
        assertEquals(Object.keys(d).sort(), ["comm", "cpu", "now", "offtime", "pid", "stack", "threshold"]);
        assertEquals({ comm: d.comm, cpu: d.cpu, threshold: d.threshold }, {
          comm: "python3",
          cpu,
          threshold: softirqThreshold,
        });
        const off = d.offtime as number;
        assert(
          off >= softirqThreshold && off <= closeNs + 1_000_000,
          `offtime ${off} ns, close() ${closeNs} ns`,
        );
        for (const f of String(d.stack).split("\n")) assertMatch(f, /^[\w.$]+\+0x[0-9a-f]+\/0x[0-9a-f]+/);
      });

      await t.step("memory_reclaim_events: 768 MiB of file data through a 32 MiB memory cgroup", async () => {
        const cg = memoryCgroup(c, "huatuo-it-reclaim-agent", 32 << 20);
        const file = Deno.makeTempFileSync({ dir: "/var/tmp", prefix: "huatuo-it-reclaim-" });
        c.defer(`remove ${file}`, () => Deno.removeSync(file));
        const { pid } = await python(["-c", FILE_CHURN, file], cg.path);
        const mine = (d: Doc) => d.tracer_data.pid === pid;
        const doc = await waitFor(
          "the memory_reclaim_events document",
          5000,
          () => docs(local, "memory_reclaim_events").find(mine),
        );
        const ev = await waitFor(
          "the memory_reclaim_events CloudEvent",
          2000,
          () => watch.events.find((e) => e.data.tracer_id === doc.tracer_id),
        );
        const d = doc.tracer_data;
        console.log(
          `  pid ${pid}: deltatime ${((d.deltatime as number) / 1e6).toFixed(1)} ms, memcg ${d.memcg_id}`,
        );
        assertEquals(doc.tracer_name, "memory_reclaim_events");
        assertEquals(ev.source, `/huatuo/${Deno.hostname()}/memory_reclaim_events`);
        assertEquals(ev.data.tracer_data, d);
        assertEquals(Object.keys(d).sort(), ["comm", "deltatime", "memcg_id", "pid"]);
        assertEquals({ comm: d.comm, memcg_id: d.memcg_id }, { comm: "python3", memcg_id: cg.ino });
        assert((d.deltatime as number) >= reclaimThreshold, `deltatime ${d.deltatime}`);
      });
    });
  },
});
