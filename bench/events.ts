// Kernel event → SSE client benchmark: real packet drops (UDP datagrams to
// closed ports on 127.0.0.1, each a skb:kfree_skb NO_SOCKET drop) become
// dropwatch events in the real agent and are streamed to watch clients.
//
//   deno run -A bench/events.ts [--seconds N] [--rate EV_PER_S] [--fanout-rate EV_PER_S]
//                               [--clients N] [--source] [--no-results]
//
// Two scenarios, one run:
//   latency  --rate (default 1000) events/s, one client with tracer_data; per event
//            latency = client receive time − the sender's send time (both
//            CLOCK_REALTIME), matched by destination port. Baseline in the same
//            run: bpftrace printing the same drops (tracepoint:skb:kfree_skb),
//            timed the same way; ratio = agent p99 / bpftrace p99.
//            Goal: agent p99 < 100 ms (the seed promises < 1 s).
//   fanout   --clients (default 100) clients at --fanout-rate (default 10000)
//            events/s: agent CPU, events each client got vs events published,
//            clients cut off. Goal: no drops for clients that keep up.
//
// The sender is a tiny C program (gcc) paced by clock_nanosleep that records the
// send time of every datagram. The agent runs with EventTracing.Dropwatch
// EventsPerSecond = 0 (no rate limit) and no ES storage; its local files are on.
//
// BENCH_EVENTS_DUMP=PREFIX writes every latency (ms, by datagram) to PREFIX.<consumer>.json for plotting.
//
// Exit status: 0 when the benchmark ran, 1 when something failed, 2 on bad flags.

import { startAgent } from "../integration/agent.ts";
import { closedUdpPortRange } from "../integration/load.ts";
import {
  cpuModelName,
  fmtNumber,
  markdownTable,
  numberFlag,
  parseFlags,
  parseOrExit,
  percentile,
  procCpuTicks,
  sleep,
  UsageError,
} from "./common.ts";

const USAGE =
  "usage: deno run -A bench/events.ts [--seconds N] [--rate N] [--fanout-rate N] [--clients N] [--source] [--no-results]";

interface Options {
  seconds: number;
  rate: number;
  fanoutRate: number;
  clients: number;
  source: boolean;
  results: boolean;
  only?: "latency" | "fanout";
}

function parseOptions(args: string[]): Options {
  const o: Options = {
    seconds: 10,
    rate: 1000,
    fanoutRate: 10_000,
    clients: 100,
    source: false,
    results: true,
  };
  parseFlags(args, USAGE, (flag, value) => {
    switch (flag) {
      case "--seconds":
        o.seconds = numberFlag(flag, value(), 1, true);
        return true;
      case "--rate":
        o.rate = numberFlag(flag, value(), 1, true);
        return true;
      case "--fanout-rate":
        o.fanoutRate = numberFlag(flag, value(), 1, true);
        return true;
      case "--clients":
        o.clients = numberFlag(flag, value(), 1, true);
        return true;
      case "--only": {
        const v = value();
        if (v !== "latency" && v !== "fanout") {
          throw new UsageError(`--only needs latency or fanout, got ${v}`);
        }
        o.only = v;
        return true;
      }
      case "--source":
        o.source = true;
        return true;
      case "--no-results":
        o.results = false;
        return true;
    }
    return false;
  });
  return o;
}

const SENDER_C = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
/* sender RATE COUNT PORT_BASE TS_FILE: one datagram per port, paced. */
int main(int argc, char **argv) {
  long rate = atol(argv[1]), count = atol(argv[2]), base = atol(argv[3]);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET };
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  int64_t *ts = calloc(count, sizeof(int64_t));
  struct timespec start, now, at;
  clock_gettime(CLOCK_MONOTONIC, &start);
  char payload[32] = "huatuo-bench";
  for (long i = 0; i < count; i++) {
    int64_t due = (int64_t)start.tv_sec * 1000000000LL + start.tv_nsec + i * 1000000000LL / rate;
    at.tv_sec = due / 1000000000LL;
    at.tv_nsec = due % 1000000000LL;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
    to.sin_port = htons((uint16_t)(base + i));
    clock_gettime(CLOCK_REALTIME, &now);
    ts[i] = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
    sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&to, sizeof(to));
  }
  FILE *f = fopen(argv[4], "wb");
  fwrite(ts, sizeof(int64_t), count, f);
  fclose(f);
  return 0;
}
`;

const CLIENTS_C = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
/* sse_clients PORT N BODY: N watch streams to 127.0.0.1:PORT; on SIGUSR1 prints
 * each stream's count of complete SSE messages ("\n\n"), one per line; SIGTERM exits. */
static volatile sig_atomic_t dump, quit;
static void on_usr1(int s) { (void)s; dump = 1; }
static void on_term(int s) { (void)s; quit = 1; }
int main(int argc, char **argv) {
  int port = atoi(argv[1]), n = atoi(argv[2]);
  const char *body = argv[3];
  long *count = calloc(n, sizeof(long));
  char *prev = calloc(n, 1);
  int *fds = calloc(n, sizeof(int));
  int ep = epoll_create1(0);
  char req[1024];
  int len = snprintf(req, sizeof req,
    "POST /v1/events/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    if (write(fd, req, len) != len) { perror("write"); return 1; }
    fds[i] = fd;
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  signal(SIGUSR1, on_usr1);
  signal(SIGTERM, on_term);
  printf("ready\n");
  fflush(stdout);
  static char buf[1 << 16];
  struct epoll_event evs[64];
  while (!quit) {
    if (dump) {
      dump = 0;
      for (int i = 0; i < n; i++) printf("%ld\n", count[i]);
      printf("end\n");
      fflush(stdout);
    }
    int k = epoll_wait(ep, evs, 64, 50);
    for (int e = 0; e < k; e++) {
      int i = evs[e].data.u32;
      int fd = fds[i];
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); continue; }
      char p = prev[i];
      for (ssize_t j = 0; j < r; j++) {
        /* A message ends with "\n\n"; HTTP chunk framing adds only "\r\n", never "\n\n". */
        if (buf[j] == '\n' && p == '\n') count[i]++;
        p = buf[j];
      }
      prev[i] = p;
    }
  }
  return 0;
}
`;

async function compileC(dir: string, name: string, source: string): Promise<string> {
  await Deno.writeTextFile(`${dir}/${name}.c`, source);
  const r = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-o", `${dir}/${name}`, `${dir}/${name}.c`],
  })
    .output();
  if (!r.success) throw new Error(`gcc: ${new TextDecoder().decode(r.stderr)}`);
  return `${dir}/${name}`;
}

/** Runs the sender; resolves with each datagram's send time (ms since the epoch). */
async function send(
  bin: string,
  dir: string,
  rate: number,
  count: number,
  base: number,
): Promise<Float64Array> {
  const tsFile = `${dir}/ts.bin`;
  const r = await new Deno.Command(bin, { args: [String(rate), String(count), String(base), tsFile] })
    .output();
  if (!r.success) throw new Error("sender failed");
  const ns = new BigInt64Array((await Deno.readFile(tsFile)).buffer);
  return Float64Array.from(ns, (v) => Number(v / 1000n) / 1000);
}

const nowMs = () => performance.timeOrigin + performance.now();

interface LatencyResult {
  name: string;
  sent: number;
  seen: number;
  p50: number;
  p99: number;
  max: number;
}

function latencyStats(name: string, sentAt: Float64Array, recvAt: Float64Array): LatencyResult {
  const dump = Deno.env.get("BENCH_EVENTS_DUMP");
  if (dump) {
    Deno.writeTextFileSync(
      `${dump}.${name.split(" ")[0]}.json`,
      JSON.stringify(Array.from(recvAt, (r, i) => r - sentAt[i])),
    );
  }
  const lat: number[] = [];
  for (let i = 0; i < sentAt.length; i++) if (recvAt[i] > 0) lat.push(recvAt[i] - sentAt[i]);
  lat.sort((a, b) => a - b);
  return {
    name,
    sent: sentAt.length,
    seen: lat.length,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: lat[lat.length - 1] ?? NaN,
  };
}

/** bpftrace printing the destination port of every UDP NO_SOCKET drop in the range, line-buffered. */
async function bpftraceBaseline(
  bin: string,
  dir: string,
  rate: number,
  count: number,
): Promise<LatencyResult> {
  const base = closedUdpPortRange(count);
  const prog = `tracepoint:skb:kfree_skb /args->protocol == 0x0800/ {
    $skb = (struct sk_buff *)args->skbaddr;
    $ip = (struct iphdr *)($skb->head + $skb->network_header);
    if ($ip->protocol == 17) {
      $udp = (struct udphdr *)($skb->head + $skb->transport_header);
      $d = bswap($udp->dest);
      if ($d >= ${base} && $d < ${base + count}) { printf("%d\\n", $d); }
    }
  }`;
  const child = new Deno.Command("bpftrace", {
    args: ["-B", "line", "-e", prog],
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const recvAt = new Float64Array(count);
  let attached!: () => void;
  const ready = new Promise<void>((r) => attached = r);
  const reader = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const t = nowMs();
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("Attaching")) attached();
        const port = Number(line);
        if (Number.isInteger(port) && port >= base && port < base + count) recvAt[port - base] ||= t;
      }
    }
  })();
  const exited = child.status.then(async (st) => {
    throw new Error(`bpftrace exited (${st.code}): ${await new Response(child.stderr).text()}`);
  });
  await Promise.race([
    ready,
    exited,
    sleep(30_000).then(() => Promise.reject(new Error("bpftrace did not attach"))),
  ]);
  exited.catch(() => {});
  await sleep(500);
  const sentAt = await send(bin, dir, rate, count, base);
  await sleep(1000);
  child.kill("SIGINT");
  await child.status;
  await reader;
  await child.stderr.cancel().catch(() => {});
  return latencyStats("bpftrace (baseline)", sentAt, recvAt);
}

interface SseClient {
  /** Complete SSE messages received. */
  count(): number;
  close(): void;
  done: Promise<void>;
}

/** A watch client counting messages (or timing dropwatch ports when `onEvent` is given). */
async function watchClient(
  url: string,
  body: string,
  onEvent?: (data: string, at: number) => void,
): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(`${url}/v1/events/watch`, { method: "POST", body, signal: abort.signal });
  if (res.status !== 200) throw new Error(`watch: HTTP ${res.status}: ${await res.text()}`);
  let n = 0;
  const done = (async () => {
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = "";
    let prevNl = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const at = nowMs();
        if (onEvent) {
          text += dec.decode(value, { stream: true });
          let end;
          while ((end = text.indexOf("\n\n")) >= 0) {
            const msg = text.slice(0, end);
            text = text.slice(end + 2);
            n++;
            const data = msg.split("\n").find((l) => l.startsWith("data: "));
            if (data) onEvent(data.slice(6), at);
          }
        } else {
          // Count "\n\n" (the end of each SSE message) without decoding.
          let i = value.indexOf(10);
          if (i === 0 && prevNl) n++;
          while (i >= 0) {
            if (value[i + 1] === 10) n++;
            i = value.indexOf(10, i + 1);
          }
          prevNl = value[value.length - 1] === 10;
        }
      }
    } catch { /* aborted */ }
  })();
  return { count: () => n, close: () => abort.abort(), done };
}

function agentConf(dir: string, clients: number) {
  return (port: number) =>
    [
      `[Storage.LocalFile]`,
      `Path = "${dir}/local"`,
      `RotationSize = 100`,
      `MaxRotation = 2`,
      `[EventTracing.Dropwatch]`,
      `EventsPerSecond = 0`,
      `[EventsWatch]`,
      `MaxClients = ${clients + 10}`,
      `[APIServer]`,
      `TCPAddr = "127.0.0.1:${port}"`,
    ].join("\n") + "\n";
}

async function agentLatency(bin: string, dir: string, opts: Options): Promise<LatencyResult> {
  const count = opts.rate * opts.seconds;
  const base = closedUdpPortRange(count);
  const agent = await startAgent({
    conf: agentConf(dir, 1),
    args: ["--region", "bench", "--disable-kubelet"],
  });
  try {
    const recvAt = new Float64Array(count);
    const client = await watchClient(
      agent.url,
      '{"include_tracer_data": true, "filters": {"tracer_name": "^dropwatch$"}}',
      (data, at) => {
        const td = JSON.parse(data).data.tracer_data as { dport?: number; daddr?: string };
        const p = td.dport ?? -1;
        if (td.daddr === "127.0.0.1" && p >= base && p < base + count) recvAt[p - base] ||= at;
      },
    );
    await sleep(500);
    const sentAt = await send(bin, dir, opts.rate, count, base);
    await sleep(1000);
    client.close();
    await client.done;
    return latencyStats("huatuo-bamai SSE", sentAt, recvAt);
  } finally {
    await agent.stop();
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
}

/**
 * The fan-out clients: one C process holding every stream on epoll and only
 * counting messages, so what is measured is the agent, not the clients' cost.
 */
class CClients {
  get pid(): number {
    return this.child.pid;
  }

  private constructor(
    private readonly child: Deno.ChildProcess,
    private readonly lines: AsyncIterator<string>,
  ) {}

  static async open(bin: string, port: number, body: string, n: number): Promise<CClients> {
    const child = new Deno.Command(bin, { args: [String(port), String(n), body], stdout: "piped" }).spawn();
    const lines = readLines(child.stdout);
    const first = await lines.next();
    if (first.value !== "ready") throw new Error(`sse_clients: ${first.value ?? "exited"}`);
    return new CClients(child, lines);
  }

  /** Messages each stream has received so far. */
  async counts(): Promise<number[]> {
    this.child.kill("SIGUSR1");
    const out: number[] = [];
    for (;;) {
      const { value, done } = await this.lines.next();
      if (done || value === "end") return out;
      out.push(Number(value));
    }
  }

  async close(): Promise<void> {
    this.child.kill("SIGTERM");
    await this.child.status;
  }
}

interface FanoutResult {
  clients: number;
  rate: number;
  sent: number;
  published: number;
  minGot: number;
  maxGot: number;
  cutOff: number;
  /** Event-loop stalls (>= 100 ms) in the agent during the run, and its largest lag. */
  stalls: number;
  maxLagMs: number;
  agentCpuPct: number;
  benchCpuPct: number;
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^huatuo_bamai_${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

async function fanout(bin: string, clientsBin: string, dir: string, opts: Options): Promise<FanoutResult> {
  const count = Math.min(opts.fanoutRate * opts.seconds, 60_000);
  const base = closedUdpPortRange(count);
  const agent = await startAgent({
    conf: agentConf(dir, opts.clients),
    args: ["--region", "bench", "--disable-kubelet"],
  });
  try {
    const clients = await CClients.open(
      clientsBin,
      agent.port,
      '{"filters": {"tracer_name": "^dropwatch$"}}',
      opts.clients,
    );
    await sleep(500);
    const pid = agent.child.pid;
    const tick = 100; // USER_HZ
    const a0 = procCpuTicks(pid);
    const b0 = procCpuTicks(clients.pid);
    const t0 = performance.now();
    const before = await (await fetch(`${agent.url}/metrics`)).text();
    const pub0 = metricValue(before, 'events_total\\{[^}]*tracer="dropwatch"[^}]*\\}') || 0;
    await send(bin, dir, opts.fanoutRate, count, base);
    await sleep(1500);
    const wall = (performance.now() - t0) / 1000;
    const agentCpu = (procCpuTicks(pid) - a0) / tick / wall * 100;
    const benchCpu = (procCpuTicks(clients.pid) - b0) / tick / wall * 100;
    const after = await (await fetch(`${agent.url}/metrics`)).text();
    // Read before the clients' counts: a few events of the host may land in between (min/client > published).
    const published = (metricValue(after, 'events_total\\{[^}]*tracer="dropwatch"[^}]*\\}') || 0) - pub0;
    const cutOff = metricValue(after, "events_watch_clients_cut_off_total");
    const stalls = metricValue(after, "event_loop_stalls_total") -
      metricValue(before, "event_loop_stalls_total");
    const maxLagMs = metricValue(after, "event_loop_lag_max_seconds") * 1000;
    const got = await clients.counts();
    await clients.close();
    return {
      clients: opts.clients,
      rate: opts.fanoutRate,
      sent: count,
      published,
      minGot: Math.min(...got),
      maxGot: Math.max(...got),
      cutOff,
      stalls,
      maxLagMs,
      agentCpuPct: agentCpu,
      benchCpuPct: benchCpu,
    };
  } finally {
    await agent.stop();
  }
}

async function main(args: string[]): Promise<number> {
  const opts = parseOrExit(parseOptions, args, USAGE);
  if (Deno.uid() !== 0) {
    console.error("bench/events.ts needs root (BPF, bpftrace)");
    return 1;
  }
  if (opts.source) Deno.env.set("HUATUO_IT_SOURCE", "1");
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-bench-events-" });
  try {
    const bin = await compileC(dir, "sender", SENDER_C);
    const clientsBin = await compileC(dir, "sse_clients", CLIENTS_C);
    const ms = (x: number) => fmtNumber(x, 1);
    const lines: string[] = [];
    if (opts.only !== "fanout") {
      console.error(`latency: ${opts.rate} events/s for ${opts.seconds} s, bpftrace baseline first`);
      const baseline = await bpftraceBaseline(bin, dir, opts.rate, opts.rate * opts.seconds);
      const ours = await agentLatency(bin, dir, opts);
      lines.push(
        `### Kernel event → SSE latency (${opts.rate} events/s, ${opts.seconds} s)`,
        "",
        markdownTable(
          ["consumer", "sent", "seen", "p50 ms", "p99 ms", "max ms"],
          [baseline, ours].map((
            r,
          ) => [r.name, String(r.sent), String(r.seen), ms(r.p50), ms(r.p99), ms(r.max)]),
        ),
        "",
        `ratio p99 agent/bpftrace: ${fmtNumber(ours.p99 / baseline.p99, 2)}; goal p99 < 100 ms: ${
          ours.p99 < 100 && ours.seen === ours.sent ? "met" : "NOT met"
        }`,
        "",
      );
    }
    if (opts.only !== "latency") {
      console.error(`fanout: ${opts.clients} clients at ${opts.fanoutRate} events/s`);
      const fan = await fanout(bin, clientsBin, dir, opts);
      lines.push(
        `### ${fan.clients} SSE clients at ${fan.rate} events/s`,
        "",
        markdownTable(
          [
            "sent",
            "published",
            "min/client",
            "max/client",
            "cut off",
            "agent loop stalls",
            "max lag ms",
            "agent CPU %",
            "clients CPU %",
          ],
          [[
            String(fan.sent),
            String(fan.published),
            String(fan.minGot),
            String(fan.maxGot),
            String(fan.cutOff),
            String(fan.stalls),
            fmtNumber(fan.maxLagMs, 0),
            fmtNumber(fan.agentCpuPct, 1),
            fmtNumber(fan.benchCpuPct, 1),
          ]],
          0,
        ),
        "",
        `goal (no drops for clients that keep up): ${
          fan.cutOff === 0 && fan.minGot >= fan.published ? "met" : "NOT met"
        }`,
        "",
      );
    }
    lines.push(
      `machine: ${cpuModelName() ?? "?"}, ${navigator.hardwareConcurrency} CPUs, kernel ${Deno.osRelease()}`,
    );
    console.log(lines.join("\n"));
    return 0;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
