// Event buffer benchmark: a synthetic high-rate tracepoint program
// (bpf/test/flood.bpf.c) feeding a BPF ring buffer and a perf buffer; events/s
// consumed, loss, agent CPU and /metrics p99 latency while events flow.
//
//   deno run -A bench/buffers.ts [--seconds N] [--rate EVENTS_PER_S | --max] [--events-per-call N]
//                                [--modes ring,ring-libbpf,perf,perf-libbpf]
//                                [--no-results] [--json FILE]
//
// Goal (ring buffer path): >= 1 M events/s with no loss at < 25 % of one core,
// and /metrics p99 < 20 ms meanwhile.
//
// Three kinds of processes, all started and stopped here:
//   producer  a tiny C program (compiled with gcc into a temp dir) that calls
//             getppid() in a loop, paced to a rate or flat out; flood.o emits
//             --events-per-call records per call (bpf_loop). By default every
//             mode runs twice: paced to 1.25 M events/s (the goal's load), then
//             flat out (the ceiling); --rate or --max runs only one of them.
//   consumer  the thing measured: a Deno process (this file, --consumer MODE)
//             that loads flood.o filtered on the producer's pid, reads the
//             buffer on a 10 ms timer, and serves the agent's real /metrics
//             (src/metrics Registry + every host collector, through the agent's
//             own HTTP handler) plus /stats (its counters) on 127.0.0.1.
//   driver    this process: scrapes /metrics every 100 ms for the whole run,
//             reads the consumer's CPU time from /proc/<pid>/stat.
//
// Modes (same handler work in each: read seq/cpu/payload, check per-CPU order):
//   ring         ffi/ringbuf.ts RingBufferReader (ours), 16 MiB ring
//   ring-libbpf  baseline: libbpf ring_buffer__new + ring_buffer__consume with a
//                JS callback (UnsafeCallback), budgeted per tick by returning -1
//   perf         ffi/perfbuf.ts PerfBufferReader (ours), 8 MiB per CPU
//   perf-libbpf  baseline: libbpf perf_buffer__new (its defaults: a wakeup per
//                event) + perf_buffer__consume with JS callbacks, 8 MiB per CPU
// Every mode is driven by the same EventReaderBase timer (10 ms, budget 65536,
// follow-up poll when the budget is used up).
//
// Each mode runs: an idle phase (3 s, scrapes only: the consumer's CPU without
// events), then the producer for --seconds, then a drain (until consumed + lost
// == produced, at most 3 s). CPU % = consumer CPU time / wall time of that
// window (100 % = one core). Loss = records the kernel could not store (BPF
// side count for the ring buffer, PERF_RECORD_LOST for perf buffers) plus
// records never delivered.
//
// Exit status: 0 when the benchmark ran, 1 when something failed, 2 on bad flags.

import { BpfObject, numPossibleCpus, setLibbpfLogger } from "../ffi/libbpf.ts";
import { RingBufferReader } from "../ffi/ringbuf.ts";
import { PerfBufferReader } from "../ffi/perfbuf.ts";
import { DEFAULT_BUDGET_PER_TICK, EventReaderBase, type RecordHandler } from "../ffi/events.ts";
import { Registry } from "../src/metrics/registry.ts";
import { FEATURES } from "../src/features/index.ts";
import { HostFs } from "../src/host/fs.ts";
import { defaultConfig } from "../src/config/schema.ts";
import { silentLogger } from "../src/log/logger.ts";
import { BpfRuntime } from "../src/bpf/tracer.ts";
import { createHandler } from "../src/server/http.ts";
import {
  cpuModelName,
  loadavg3,
  memTotalKiB,
  numberFlag,
  parseFlags,
  parseOrExit,
  percentile,
  procCpuTicks,
  sleep,
  stringFlag,
  UsageError,
} from "./common.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const FLOOD = `${ROOT}/_output/bpf/test/flood.o`;
const RESULTS = `${ROOT}/bench/RESULTS.md`;
const SECTION = "## Event buffer readers";

const MODES = ["ring", "ring-libbpf", "perf", "perf-libbpf"] as const;
type Mode = typeof MODES[number];
const RING_BYTES = 16 << 20;
const PERF_PAGES = 2048; // 8 MiB per CPU with 4 KiB pages
const TICK_MS = 10;
const IDLE_S = 3;
const SCRAPE_EVERY_MS = 100;

// ---------------------------------------------------------------- options

interface Options {
  seconds: number;
  rates: number[]; // events/s the producer aims at; 0 = flat out
  eventsPerCall: number;
  modes: Mode[];
  writeResults: boolean;
  json?: string;
}

const USAGE = "usage: deno run -A bench/buffers.ts [--seconds N] [--rate EVENTS_PER_S | --max]\n" +
  "         [--events-per-call N] [--modes ring,ring-libbpf,perf,perf-libbpf] [--no-results] [--json FILE]";

function parseOptions(args: string[]): Options {
  const opts: Options = {
    seconds: 10,
    rates: [1_250_000, 0],
    eventsPerCall: 8,
    modes: [...MODES],
    writeResults: true,
  };
  parseFlags(args, USAGE, (flag, value) => {
    switch (flag) {
      case "--seconds":
        opts.seconds = numberFlag(flag, value(), 1, false);
        break;
      case "--rate":
        opts.rates = [numberFlag(flag, value(), 1, false)];
        break;
      case "--max":
        opts.rates = [0];
        break;
      case "--events-per-call":
        opts.eventsPerCall = Math.floor(numberFlag(flag, value(), 1, false));
        break;
      case "--modes": {
        const v = (value() ?? "").split(",");
        for (const m of v) {
          if (!(MODES as readonly string[]).includes(m)) throw new UsageError(`unknown mode ${m}`);
        }
        opts.modes = v as Mode[];
        break;
      }
      case "--no-results":
        opts.writeResults = false;
        break;
      case "--json":
        opts.json = stringFlag(flag, value(), "a file name");
        break;
      default:
        return false;
    }
    return true;
  });
  return opts;
}

// ---------------------------------------------------------------- consumer process

/** What the consumer reports on /stats. */
interface ConsumerStats {
  mode: Mode;
  events: number;
  /** The reader's lost count (ring: flood_lost; perf: PERF_RECORD_LOST). */
  lost: number;
  /** flood_lost: failed reserve/output calls, counted by the program. */
  bpfLost: number;
  /** flood_seq: records the program tried to write. */
  produced: number;
  errors: number;
  outOfOrder: number;
  polls: number;
  pollMsTotal: number;
  pollMsMax: number;
}

// libbpf's own consumers, for the baseline.
const LIBBPF_SYMBOLS = {
  ring_buffer__new: { parameters: ["i32", "function", "pointer", "pointer"], result: "pointer" },
  ring_buffer__consume: { parameters: ["pointer"], result: "i32" },
  ring_buffer__free: { parameters: ["pointer"], result: "void" },
  perf_buffer__new: {
    parameters: ["i32", "usize", "function", "function", "pointer", "pointer"],
    result: "pointer",
  },
  perf_buffer__consume: { parameters: ["pointer"], result: "i32" },
  perf_buffer__free: { parameters: ["pointer"], result: "void" },
} as const;

type LibbpfBaseline = Deno.DynamicLibrary<typeof LIBBPF_SYMBOLS>["symbols"];

// size_t/u64 parameters would arrive as BigInt (an allocation per call): the
// sizes fit in 32 bits and the x86_64/aarch64 ABIs pass them in a full
// register, so the callbacks declare them u32 — the cheapest libbpf baseline.
const RING_CB = { parameters: ["pointer", "pointer", "u32"], result: "i32" } as const;
const PERF_SAMPLE_CB = { parameters: ["pointer", "i32", "pointer", "u32"], result: "void" } as const;
const PERF_LOST_CB = { parameters: ["pointer", "i32", "u64"], result: "void" } as const;

/** The baselines copy each record out of libbpf's pointer into one buffer, through views cached per size. */
class Scratch {
  readonly bytes = new Uint8Array(256);
  readonly view = new DataView(this.bytes.buffer);
  #bySize: Uint8Array[] = [];

  target(size: number): Uint8Array {
    const n = Math.min(size, 256);
    return this.#bySize[n] ??= this.bytes.subarray(0, n);
  }
}

/** Baseline: libbpf ring_buffer__consume, budgeted by stopping from the callback. */
class LibbpfRingReader extends EventReaderBase {
  #rb: Deno.PointerObject;
  #cb: Deno.UnsafeCallback<typeof RING_CB>;
  #lib: LibbpfBaseline;
  #copy = new Scratch();
  #view = this.#copy.view;
  #budget = 0;
  #n = 0;
  #lostFn: () => number;

  constructor(lib: LibbpfBaseline, mapFd: number, handler: RecordHandler, lost: () => number) {
    super(handler, {});
    this.#lib = lib;
    this.#lostFn = lost;
    this.#cb = new Deno.UnsafeCallback(RING_CB, (_ctx, data, size) => {
      if (data !== null) {
        Deno.UnsafePointerView.copyInto(data, this.#copy.target(size));
        try {
          this.handler(this.#view, 0, size);
        } catch (err) {
          this.handlerFailed(err);
        }
      }
      return ++this.#n >= this.#budget ? -1 : 0; // < 0 stops ring_buffer__consume
    });
    const rb = lib.ring_buffer__new(mapFd, this.#cb.pointer, null, null);
    if (rb === null) throw new Error("ring_buffer__new failed");
    this.#rb = rb;
  }

  get lost(): number {
    return this.#lostFn();
  }

  poll(budget = Infinity): number {
    this.#budget = budget;
    this.#n = 0;
    this.#lib.ring_buffer__consume(this.#rb);
    this.eventCount += this.#n;
    return this.#n;
  }

  close(): void {
    this.stop();
    this.#lib.ring_buffer__free(this.#rb);
    this.#cb.close();
  }
}

/** Baseline: libbpf perf_buffer__new defaults + perf_buffer__consume (no way to budget it). */
class LibbpfPerfReader extends EventReaderBase {
  #pb: Deno.PointerObject;
  #sample: Deno.UnsafeCallback<typeof PERF_SAMPLE_CB>;
  #lostCb: Deno.UnsafeCallback<typeof PERF_LOST_CB>;
  #lib: LibbpfBaseline;
  #copy = new Scratch();
  #view = this.#copy.view;
  #n = 0;
  #lost = 0;

  constructor(lib: LibbpfBaseline, mapFd: number, pages: number, handler: RecordHandler) {
    super(handler, {});
    this.#lib = lib;
    this.#sample = new Deno.UnsafeCallback(PERF_SAMPLE_CB, (_ctx, _cpu, data, size) => {
      this.#n++;
      if (data === null) return;
      Deno.UnsafePointerView.copyInto(data, this.#copy.target(size));
      try {
        this.handler(this.#view, 0, size);
      } catch (err) {
        this.handlerFailed(err);
      }
    });
    this.#lostCb = new Deno.UnsafeCallback(PERF_LOST_CB, (_ctx, _cpu, cnt) => {
      this.#lost += Number(cnt);
    });
    const pb = lib.perf_buffer__new(
      mapFd,
      BigInt(pages),
      this.#sample.pointer,
      this.#lostCb.pointer,
      null,
      null,
    );
    if (pb === null) throw new Error("perf_buffer__new failed");
    this.#pb = pb;
  }

  get lost(): number {
    return this.#lost;
  }

  poll(_budget = Infinity): number {
    this.#n = 0;
    this.#lib.perf_buffer__consume(this.#pb);
    this.eventCount += this.#n;
    return this.#n;
  }

  close(): void {
    this.stop();
    this.#lib.perf_buffer__free(this.#pb);
    this.#sample.close();
    this.#lostCb.close();
  }
}

function u64At(obj: BpfObject, mapName: string | ((n: string) => boolean)): () => number {
  const m = typeof mapName === "string" ? obj.map(mapName) : obj.maps.find((x) => mapName(x.name));
  if (m === undefined) throw new Error("map not found");
  const key = new Uint8Array(4);
  const val = new Uint8Array(m.valueStride);
  const dv = new DataView(val.buffer);
  const slots = m.isPerCpu ? numPossibleCpus() : 1;
  return () => {
    if (!m.lookup(key, val)) return 0;
    let sum = 0;
    for (let i = 0; i < slots; i++) sum += Number(dv.getBigUint64(i * 8, true));
    return sum;
  };
}

function runConsumer(args: string[]): void {
  const get = (flag: string): string => {
    const i = args.indexOf(flag);
    if (i < 0 || i + 1 >= args.length) throw new UsageError(`consumer needs ${flag}`);
    return args[i + 1];
  };
  const mode = get("--consumer") as Mode;
  const tgid = Number(get("--tgid"));
  const eventsPerCall = Number(get("--events-per-call"));
  setLibbpfLogger(() => {});

  const obj = BpfObject.openFile(FLOOD);
  obj.setRodata({ target_tgid: tgid, events_per_call: eventsPerCall });
  obj.setAutoload(mode.startsWith("ring") ? "flood_perfbuf" : "flood_ringbuf", false);
  obj.load();
  obj.attachAll();
  const bpfLost = u64At(obj, "flood_lost");
  const produced = u64At(obj, (n) => n.endsWith(".bss"));

  // The handler every mode runs: per-CPU order of seq (low 32 bits suffice
  // for a run), a checksum of the payloads. No allocation.
  const lastSeq = new Float64Array(numPossibleCpus()).fill(-1);
  const counters = new Float64Array(2); // [outOfOrder, checksum]
  const handler: RecordHandler = (v, o) => {
    const seq = v.getUint32(o, true);
    const cpu = v.getUint32(o + 16, true);
    if (seq <= lastSeq[cpu]) counters[0]++;
    lastSeq[cpu] = seq;
    counters[1] += v.getUint32(o + 24, true);
  };

  let reader: EventReaderBase;
  if (obj.map("flood_rb").maxEntries !== RING_BYTES) throw new Error("flood.o: flood_rb is not 16 MiB");
  if (mode === "ring") {
    reader = new RingBufferReader(obj.map("flood_rb"), handler, { lostMap: obj.map("flood_lost") });
  } else if (mode === "perf") {
    reader = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: PERF_PAGES });
  } else {
    const lib = Deno.dlopen("libbpf.so.1", LIBBPF_SYMBOLS).symbols;
    reader = mode === "ring-libbpf"
      ? new LibbpfRingReader(lib, obj.map("flood_rb").fd, handler, bpfLost)
      : new LibbpfPerfReader(lib, obj.map("flood_pb").fd, PERF_PAGES, handler);
  }

  // Time every poll the timer makes (how long the event loop is held).
  const timing = new Float64Array(3); // polls, total ms, max ms
  const poll = reader.poll.bind(reader);
  reader.poll = (budget?: number): number => {
    const t0 = performance.now();
    const n = poll(budget);
    const dt = performance.now() - t0;
    timing[0]++;
    timing[1] += dt;
    if (dt > timing[2]) timing[2] = dt;
    return n;
  };
  reader.start(TICK_MS, DEFAULT_BUDGET_PER_TICK);

  // The agent's /metrics: the real registry, host collectors and HTTP handler.
  // BPF-backed collectors are left out: their tracers would add their own
  // programs' cost to the run (and without a tracer manager they only fail).
  const ctx = { fs: new HostFs(), config: defaultConfig(), log: silentLogger, bpf: new BpfRuntime("") };
  const registry = new Registry({ host: Deno.hostname(), region: "bench" }, silentLogger);
  for (const f of FEATURES) {
    const c = f.tracing ? undefined : f.create(ctx).collector;
    if (c) registry.register(c);
  }
  const agent = createHandler({
    registry,
    log: silentLogger,
    version: { version: "bench" },
    isReady: () => true,
  });
  const stats = (): ConsumerStats => ({
    mode,
    events: reader.events,
    lost: reader.lost,
    bpfLost: bpfLost(),
    produced: produced(),
    errors: reader.errors,
    outOfOrder: counters[0],
    polls: timing[0],
    pollMsTotal: timing[1],
    pollMsMax: timing[2],
  });
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: ({ port }) => console.log(`READY ${port}`),
  }, (req) => new URL(req.url).pathname === "/stats" ? Response.json(stats()) : agent(req));

  const shutdown = async (): Promise<void> => {
    reader.close();
    obj.close();
    registry.close();
    ac.abort();
    await server.finished;
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void shutdown());
  Deno.addSignalListener("SIGINT", () => void shutdown());
}

// ---------------------------------------------------------------- driver helpers

const dec = new TextDecoder();
const enc = new TextEncoder();

const PRODUCER_C = String.raw`
// bench/buffers.ts producer: waits for a line on stdin, then calls getppid()
// for SECONDS, paced to CALLS_PER_S (0: flat out); prints "calls elapsed_ns".
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	if (argc != 3) return 2;
	double rate = atof(argv[1]), secs = atof(argv[2]);
	char line[64];
	if (!fgets(line, sizeof line, stdin)) return 1;
	unsigned long calls = 0;
	double t0 = now(), el = 0;
	for (;;) {
		for (int i = 0; i < 32; i++) getppid();
		calls += 32;
		el = now() - t0;
		if (el >= secs) break;
		if (rate > 0) {
			double ahead = calls / rate - el;
			if (ahead > 0.0001) {
				struct timespec ts = { 0, (long)(ahead * 1e9) };
				nanosleep(&ts, NULL);
			}
		}
	}
	printf("%lu %.0f\n", calls, el * 1e9);
	return 0;
}
`;

async function compileProducer(dir: string): Promise<string> {
  await Deno.writeTextFile(`${dir}/producer.c`, PRODUCER_C);
  const out = `${dir}/producer`;
  const r = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-o", out, `${dir}/producer.c`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`gcc failed: ${dec.decode(r.stderr)}`);
  return out;
}

function cpuSeconds(pid: number): number {
  return procCpuTicks(pid) / CLK_TCK;
}
const CLK_TCK = 100; // USER_HZ on Linux

function loadavg(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

/** Reads lines from a stream until `match` matches one. */
async function waitLine(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  match: RegExp,
  timeoutMs: number,
): Promise<RegExpExecArray> {
  let buf = "";
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await Promise.race([
      reader.read(),
      sleep(deadline - Date.now()).then(() => ({ done: true, value: undefined })),
    ]);
    if (r.done || r.value === undefined) break;
    buf += dec.decode(r.value, { stream: true });
    for (const line of buf.split("\n")) {
      const m = match.exec(line);
      if (m) return m;
    }
  }
  throw new Error(`timed out waiting for ${match} (got: ${buf.slice(-500)})`);
}

/** Scrapes /metrics every SCRAPE_EVERY_MS until stop() resolves; returns latencies in ms. */
function scraper(port: number): { stop: () => Promise<number[]> } {
  const lat: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: { "accept-encoding": "identity" },
      });
      const body = await res.text();
      const dt = performance.now() - t0;
      if (res.status !== 200 || !body.includes("huatuo_bamai_")) throw new Error(`/metrics: ${res.status}`);
      lat.push(dt);
      const wait = SCRAPE_EVERY_MS - dt;
      if (wait > 0) await sleep(wait);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return lat;
    },
  };
}

async function stats(port: number): Promise<ConsumerStats> {
  const res = await fetch(`http://127.0.0.1:${port}/stats`);
  return await res.json() as ConsumerStats;
}

interface RunResult {
  mode: Mode;
  /** The producer's target in events/s; 0 = flat out. */
  target: number;
  /** 1-minute loadavg when the producer started and when the drain ended (the VM is shared). */
  loadStart: number;
  loadEnd: number;
  seconds: number;
  producedRate: number;
  consumedRate: number;
  produced: number;
  events: number;
  /** Records not delivered: the reader's count plus any never accounted for. */
  loss: number;
  lossPct: number;
  cpuPct: number;
  idleCpuPct: number;
  /** /metrics latency in the idle phase (no events), ms. */
  idleP50: number;
  idleP99: number;
  p50: number;
  p99: number;
  maxScrape: number;
  scrapes: number;
  pollMsMax: number;
  /** Wall time inside poll() (the reader + handler) per event consumed, ns. */
  pollNsPerEvent: number;
  outOfOrder: number;
  errors: number;
  bpfLost: number;
  readerLost: number;
}

async function runMode(mode: Mode, rate: number, opts: Options, producerBin: string): Promise<RunResult> {
  const callRate = rate > 0 ? rate / opts.eventsPerCall : 0;
  const producer = new Deno.Command(producerBin, {
    args: [String(callRate), String(opts.seconds)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const consumer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--consumer",
      mode,
      "--tgid",
      String(producer.pid),
      "--events-per-call",
      String(opts.eventsPerCall),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const producerOut = producer.stdout.getReader();
  const consumerOut = consumer.stdout.getReader();
  const stdin = producer.stdin.getWriter();
  try {
    const port = Number((await waitLine(consumerOut, /^READY (\d+)$/, 30000))[1]);
    // Idle phase: scrapes only.
    await stats(port);
    let s = scraper(port);
    const idleCpu0 = cpuSeconds(consumer.pid);
    const idleT0 = performance.now();
    await sleep(IDLE_S * 1000);
    const idleCpuPct = (cpuSeconds(consumer.pid) - idleCpu0) / ((performance.now() - idleT0) / 1000) * 100;
    const idleLat = (await s.stop()).sort((a, b) => a - b);

    // Events.
    s = scraper(port);
    const loadStart = loadavg();
    const cpu0 = cpuSeconds(consumer.pid);
    const t0 = performance.now();
    await stdin.write(enc.encode("go\n"));
    const done = await waitLine(producerOut, /^(\d+) (\d+)$/, (opts.seconds + 30) * 1000);
    const producerSeconds = Number(done[2]) / 1e9;
    let st = await stats(port);
    const drainUntil = performance.now() + 3000;
    while (st.events + st.lost < st.produced && performance.now() < drainUntil) {
      await sleep(20);
      st = await stats(port);
    }
    const wall = (performance.now() - t0) / 1000;
    const cpuPct = (cpuSeconds(consumer.pid) - cpu0) / wall * 100;
    const loadEnd = loadavg();
    const lat = (await s.stop()).sort((a, b) => a - b);
    const calls = Number(done[1]);
    if (st.produced !== calls * opts.eventsPerCall) {
      console.error(`${mode}: produced ${st.produced} != ${calls} calls × ${opts.eventsPerCall}`);
    }
    const loss = st.produced - st.events;
    return {
      mode,
      target: rate,
      loadStart,
      loadEnd,
      seconds: producerSeconds,
      producedRate: st.produced / producerSeconds,
      consumedRate: st.events / wall,
      produced: st.produced,
      events: st.events,
      loss,
      lossPct: st.produced > 0 ? loss / st.produced * 100 : 0,
      cpuPct,
      idleCpuPct,
      idleP50: percentile(idleLat, 50),
      idleP99: percentile(idleLat, 99),
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      maxScrape: lat[lat.length - 1],
      scrapes: lat.length,
      pollMsMax: st.pollMsMax,
      pollNsPerEvent: st.events > 0 ? st.pollMsTotal * 1e6 / st.events : NaN,
      outOfOrder: st.outOfOrder,
      errors: st.errors,
      bpfLost: st.bpfLost,
      readerLost: st.lost,
    };
  } finally {
    await stdin.close().catch(() => {});
    try {
      consumer.kill("SIGTERM");
    } catch {
      // already gone
    }
    try {
      producer.kill("SIGKILL");
    } catch {
      // already gone
    }
    await Promise.allSettled([consumer.status, producer.status]);
    consumerOut.releaseLock();
    producerOut.releaseLock();
    await Promise.allSettled([consumer.stdout.cancel(), producer.stdout.cancel()]);
  }
}

// ---------------------------------------------------------------- report

const fmtRate = (r: number) => r >= 1e6 ? `${(r / 1e6).toFixed(2)} M/s` : `${(r / 1e3).toFixed(0)} k/s`;
const fmtPct = (p: number) => `${p.toFixed(1)} %`;
const fmtMs = (ms: number) => `${ms.toFixed(1)} ms`;
const fmtRatio = (r: number) => Number.isFinite(r) ? `${r.toFixed(2)}×` : "n/a";

const loadLabel = (target: number) => target > 0 ? `paced ${fmtRate(target)}` : "flat out";

function table(results: RunResult[]): string {
  const head = [
    "mode",
    "load",
    "produced",
    "consumed",
    "loss",
    "consumer CPU",
    "idle CPU",
    "ns/event in poll",
    "ns CPU/event",
    "/metrics p50 / p99",
    "idle /metrics p50 / p99",
    "longest poll",
    "order errors",
    "loadavg",
  ];
  const rows = results.map((r) => [
    r.mode,
    loadLabel(r.target),
    fmtRate(r.producedRate),
    fmtRate(r.consumedRate),
    `${r.loss} (${r.lossPct.toFixed(2)} %)`,
    fmtPct(r.cpuPct),
    fmtPct(r.idleCpuPct),
    Number.isFinite(r.pollNsPerEvent) ? r.pollNsPerEvent.toFixed(0) : "n/a",
    fmtNs(nsPerEvent(r)),
    `${fmtMs(r.p50)} / ${fmtMs(r.p99)}`,
    `${fmtMs(r.idleP50)} / ${fmtMs(r.idleP99)}`,
    fmtMs(r.pollMsMax),
    String(r.outOfOrder),
    `${r.loadStart.toFixed(1)} → ${r.loadEnd.toFixed(1)}`,
  ]);
  return [head, head.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

function ratios(ours: RunResult | undefined, base: RunResult | undefined, label: string): string[] {
  if (!ours || !base) return [];
  const lossRatio = base.loss === 0 ? (ours.loss === 0 ? "both 0" : "∞") : fmtRatio(ours.loss / base.loss);
  return [
    `${label}: events/s ${fmtRatio(ours.consumedRate / base.consumedRate)}, ` +
    `loss ${lossRatio} (${ours.loss} vs ${base.loss}), CPU ${fmtRatio(ours.cpuPct / base.cpuPct)} ` +
    `(${fmtPct(ours.cpuPct)} vs ${fmtPct(base.cpuPct)}), CPU per event ` +
    fmtRatio((ours.cpuPct / ours.consumedRate) / (base.cpuPct / base.consumedRate)) +
    `, time in poll per event ${fmtRatio(ours.pollNsPerEvent / base.pollNsPerEvent)} ` +
    `(${ours.pollNsPerEvent.toFixed(0)} vs ${base.pollNsPerEvent.toFixed(0)} ns)`,
  ];
}

function goals(ring: RunResult | undefined): string[] {
  if (!ring) return ["ring buffer path not run: goals not evaluated"];
  const yes = (b: boolean) => b ? "met" : "NOT met";
  return [
    `>= 1 M events/s consumed: ${fmtRate(ring.consumedRate)} — ${yes(ring.consumedRate >= 1e6)}`,
    `no loss: ${ring.loss} lost — ${yes(ring.loss === 0)}`,
    `< 25 % of one core: ${fmtPct(ring.cpuPct)} — ${yes(ring.cpuPct < 25)}`,
    `/metrics p99 < 20 ms while events flow: ${fmtMs(ring.p99)} — ${yes(ring.p99 < 20)}`,
  ];
}

const nsPerEvent = (r: RunResult) => (r.cpuPct - r.idleCpuPct) / 100 / r.consumedRate * 1e9;
const fmtNs = (ns: number) => !Number.isFinite(ns) ? "n/a" : ns <= 0 ? "< noise" : ns.toFixed(0);

function notes(results: RunResult[]): string[] {
  const out: string[] = [];
  const cpus = navigator.hardwareConcurrency;
  const peak = (r: RunResult) => Math.max(r.loadStart, r.loadEnd);
  const maxLoad = Math.max(...results.map(peak));
  if (maxLoad > cpus) {
    const busy = results.filter((r) => peak(r) > cpus).map((r) => `${r.mode} (${loadLabel(r.target)})`);
    const load = maxLoad.toFixed(1);
    out.push(
      `The VM is shared with other jobs: loadavg reached ${load} on ${cpus} CPUs. In the rows run above ` +
        `${cpus} (${busy.join(", ")}) consumer and producer competed for CPU: their loss, production rate ` +
        "and latency percentiles show CPU starvation as much as the reader.",
    );
  }
  for (const r of results) {
    if (r.mode !== "ring" && r.mode !== "perf") continue;
    const above = Math.max(0, r.cpuPct - r.idleCpuPct).toFixed(1);
    const inPoll = r.pollNsPerEvent.toFixed(0);
    out.push(
      `${r.mode} (ours, ${loadLabel(r.target)}): ${fmtRate(r.consumedRate)} took ${above} % of one core ` +
        `above the scrape-only level, ${inPoll} ns per event inside poll(); the other ` +
        `${fmtPct(r.idleCpuPct)} is serving /metrics 10×/s. /metrics p99 ${fmtMs(r.p99)} while events ` +
        `flowed vs ${fmtMs(r.idleP99)} idle; the longest poll held the event loop ${fmtMs(r.pollMsMax)}.`,
    );
  }
  for (const r of results) {
    if (r.mode === "ring-libbpf") {
      const inPoll = r.pollNsPerEvent.toFixed(0);
      out.push(
        `ring-libbpf (${loadLabel(r.target)}): ring_buffer__consume with a JS callback per record costs ` +
          `${inPoll} ns per event inside poll() (Deno's FFI trampoline, a pointer object and a copy per ` +
          `record); it consumed ${fmtRate(r.consumedRate)} of ${fmtRate(r.producedRate)} produced, and a ` +
          `tick held the event loop up to ${fmtMs(r.pollMsMax)} with the same 65536-record budget.`,
      );
    } else if (r.mode === "perf-libbpf") {
      const ours = results.find((x) => x.mode === "perf" && x.target === r.target);
      const vs = ours ? ` (vs ${fmtRate(ours.producedRate)} with our watermark setup)` : "";
      out.push(
        `perf-libbpf (${loadLabel(r.target)}): perf_buffer__new's default (wakeup_events = 1) makes the ` +
          "kernel raise a wakeup per sample inside bpf_perf_event_output, so the producer itself only " +
          `reached ${fmtRate(r.producedRate)}${vs}; little is lost because the producer is throttled, not ` +
          "because the consumer is fast.",
      );
    }
  }
  return out;
}

function machine(): string {
  const cpu = cpuModelName() ?? "?";
  const mem = memTotalKiB() ?? "0";
  const load = loadavg3();
  return `${navigator.hardwareConcurrency} CPU (${cpu}), ${(Number(mem) / 1048576).toFixed(1)} GiB RAM, ` +
    `kernel ${Deno.osRelease()}, Deno ${Deno.version.deno}; loadavg at start ${load}`;
}

function section(opts: Options, results: RunResult[], cmd: string, mach: string): string {
  const by = (m: Mode, target: number) => results.find((r) => r.mode === m && r.target === target);
  const loads = opts.rates.map(loadLabel).join(", then ");
  const ratioLines: string[] = [];
  for (const t of opts.rates) {
    ratioLines.push(
      ...ratios(by("ring", t), by("ring-libbpf", t), `ring, ${loadLabel(t)}`),
      ...ratios(by("perf", t), by("perf-libbpf", t), `perf, ${loadLabel(t)}`),
    );
  }
  const paced = results.find((r) => r.mode === "ring" && r.target > 0) ?? by("ring", 0);
  return [
    SECTION,
    "",
    `- Machine: ${mach}`,
    `- Date: ${new Date().toISOString()}`,
    `- Command: \`${cmd}\``,
    `- Producer: a getppid() loop (${loads}), ${opts.eventsPerCall} records of 32 bytes per call (bpf_loop in ` +
    "`bpf/test/flood.bpf.c`), " + `${opts.seconds} s per mode; consumer on a ${TICK_MS} ms timer, budget ` +
    `${DEFAULT_BUDGET_PER_TICK}/tick; ring 16 MiB, perf 8 MiB per CPU; /metrics (real registry, every host ` +
    `collector) scraped every ${SCRAPE_EVERY_MS} ms during the run.`,
    "- consumer CPU = the consumer process's CPU time over production + drain (100 % = one core), including " +
    `serving the scrapes; idle CPU and idle /metrics = the same process with scrapes only (${IDLE_S} s before ` +
    "the producer starts); ns/event in poll = wall time inside the timer's poll() calls (reader + handler) / " +
    "events; ns CPU/event = (consumer CPU − idle CPU) / events consumed per second, the same cost seen from " +
    "outside with GC and FFI included (“< noise” when within the idle level's jitter). " +
    "loss = produced − delivered (produced = the program's flood_seq). longest poll = the longest time one " +
    "timer tick held the event loop (wall time). loadavg = 1-minute load at the producer's start → the " +
    "drain's end.",
    "",
    table(results),
    "",
    "Ratios ours/libbpf (same run, same load):",
    "",
    ...ratioLines.map((l) => `- ${l}`),
    "",
    `Goals (ring buffer path, ours, ${paced ? loadLabel(paced.target) : "not run"}):`,
    "",
    ...goals(paced).map((l) => `- ${l}`),
    "",
    "Notes (generated from the numbers above):",
    "",
    ...notes(results).map((l) => `- ${l}`),
    "",
  ].join("\n");
}

/** Replaces this benchmark's section of RESULTS.md (from its heading to the next `## `), or appends it. */
async function writeResults(text: string): Promise<void> {
  let cur = "";
  try {
    cur = await Deno.readTextFile(RESULTS);
  } catch {
    // new file
  }
  const at = cur.indexOf(`\n${SECTION}\n`);
  if (at < 0) {
    await Deno.writeTextFile(RESULTS, `${cur}${cur === "" || cur.endsWith("\n\n") ? "" : "\n"}${text}`);
    return;
  }
  const next = cur.indexOf("\n## ", at + 1);
  const after = next < 0 ? "" : cur.slice(next + 1);
  await Deno.writeTextFile(RESULTS, `${cur.slice(0, at + 1)}${text}${after ? `\n${after}` : ""}`);
}

// ---------------------------------------------------------------- main

async function main(args: string[]): Promise<number> {
  if (args.includes("--consumer")) {
    runConsumer(args);
    return -1; // keeps running until SIGTERM
  }
  const opts = parseOrExit(parseOptions, args, USAGE);
  if (Deno.uid() !== 0) {
    console.error("bench/buffers.ts: needs root (loads BPF programs)");
    return 1;
  }
  try {
    Deno.statSync(FLOOD);
  } catch {
    console.error(`bench/buffers.ts: ${FLOOD} is missing: run ./build.sh bpf first`);
    return 1;
  }
  const mach = machine();
  const dir = await Deno.makeTempDir({ prefix: "bench-buffers-" });
  try {
    const producer = await compileProducer(dir);
    const results: RunResult[] = [];
    for (const rate of opts.rates) {
      for (const mode of opts.modes) {
        console.error(`bench/buffers.ts: ${mode}, ${loadLabel(rate)} …`);
        const r = await runMode(mode, rate, opts, producer);
        console.error(
          `  produced ${fmtRate(r.producedRate)}, consumed ${fmtRate(r.consumedRate)}, loss ${r.loss}, ` +
            `CPU ${fmtPct(r.cpuPct)} (idle ${fmtPct(r.idleCpuPct)}), /metrics p99 ${fmtMs(r.p99)}`,
        );
        results.push(r);
      }
    }
    const cmd = `deno run -A bench/buffers.ts${args.length ? " " + args.join(" ") : ""}`;
    const text = section(opts, results, cmd, mach);
    console.log(text);
    if (opts.json) await Deno.writeTextFile(opts.json, JSON.stringify(results, null, 2) + "\n");
    if (opts.writeResults) {
      await writeResults(text);
      console.error(`bench/buffers.ts: wrote the "${SECTION.slice(3)}" section of ${RESULTS}`);
    }
    return 0;
  } catch (err) {
    console.error(`bench/buffers.ts: ${err instanceof Error ? err.stack : String(err)}`);
    return 1;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  if (code >= 0) Deno.exit(code);
}
