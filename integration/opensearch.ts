// A real OpenSearch 2.19.6 node for the integration tests and benchmarks, started and stopped by the tests.
//
// The node is built from Maven Central by integration/opensearch/build.sh (cached in _output/opensearch; the
// first call builds, later calls and processes reuse it) and runs as a plain `java` child process: single
// node, plain HTTP on 127.0.0.1, no security plugin, everything it writes under dataDir. Stopping and starting
// again with the same dataDir keeps the indices. See integration/opensearch/src/main/java for why it is a small
// launcher around org.opensearch.node.Node rather than bin/opensearch (which refuses to run as root).

import { freePort, ROOT } from "./agent.ts";

export interface OpenSearchNode {
  url: string;
  port: number;
  dataDir: string;
  /** Graceful stop (SIGTERM: shards flushed, cluster state written); the data is kept. */
  stop(): Promise<void>;
  /** Starts again on the same port and dataDir; resolves when cluster health is yellow or green. */
  start(): Promise<void>;
  /** Stops and removes dataDir. */
  destroy(): Promise<void>;
  /** The node's output (stdout and stderr) of every start so far. */
  logs(): string;
}

const OUT = Deno.env.get("HUATUO_OPENSEARCH_OUT") ?? `${ROOT}/_output/opensearch`;
const BUILD_SCRIPT = `${ROOT}/integration/opensearch/build.sh`;
const MAIN_CLASS = "huatuo.it.OpenSearchNode";
/** JVM start to yellow health: 3-4 s on an idle 2-vCPU machine, 7-13 s on a loaded one; a wide margin. */
const START_TIMEOUT_MS = Number(Deno.env.get("HUATUO_OPENSEARCH_START_TIMEOUT_MS") ?? 120_000);
const STOP_TIMEOUT_MS = 60_000;
const HEAP = Deno.env.get("HUATUO_OPENSEARCH_HEAP") ?? "512m";
/** Keep the newest output only: a node that runs through a long benchmark must not grow the test process. */
const MAX_LOG_CHARS = 2_000_000;

function javaBin(): string {
  const home = Deno.env.get("JAVA_HOME");
  return home ? `${home}/bin/java` : "java";
}

/**
 * $OUT/jvm.options (from integration/opensearch/jvm.options) holds the distribution launcher's system options
 * minus -XX:+AlwaysPreTouch, which would make the whole heap resident at start, with the serial collector: a
 * cheap node on a 2-vCPU machine. node.jsa, the class-data-sharing archive build.sh records, halves the start.
 */
function jvmArgs(): string[] {
  const args = [`@${OUT}/jvm.options`, `-Xms${HEAP}`, `-Xmx${HEAP}`];
  try {
    if (Deno.statSync(`${OUT}/node.jsa`).isFile) args.push(`-XX:SharedArchiveFile=${OUT}/node.jsa`);
  } catch { /* built without it: slower start only */ }
  return args;
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { ok: o.success, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
  } catch (err) {
    return { ok: false, out: err instanceof Error ? err.message : String(err) };
  }
}

function isBuilt(): boolean {
  try {
    return Deno.statSync(`${OUT}/.stamp`).isFile;
  } catch {
    return false;
  }
}

/**
 * Undefined when a node can be started here, else why not: no Java 17+, or nothing built yet and no Maven
 * to build it with. Build failures are not a reason to skip: startOpenSearch throws them.
 */
export async function openSearchAvailable(): Promise<string | undefined> {
  const java = await run(javaBin(), ["-version"]);
  if (!java.ok) return `java not runnable (${javaBin()}): install openjdk-17-jdk-headless or set JAVA_HOME`;
  const m = java.out.match(/version "(\d+)/);
  if (!m || Number(m[1]) < 17) {
    return `OpenSearch 2.19 needs Java 17+, ${javaBin()} is ${m?.[1] ?? "unknown"}`;
  }
  if (!isBuilt() && !(await run("mvn", ["-v"])).ok && Deno.uid() !== 0) {
    return `${OUT} is not built and mvn is missing: run integration/opensearch/build.sh as root`;
  }
  return undefined;
}

let building: Promise<void> | undefined;

/** Builds the node once per process; build.sh itself returns at once when its stamp is current. */
export function buildOpenSearch(): Promise<void> {
  building ??= (async () => {
    const r = await run("bash", [BUILD_SCRIPT]);
    if (!r.ok) throw new Error(`integration/opensearch/build.sh failed:\n${r.out}`);
  })().catch((err) => {
    building = undefined;
    throw err;
  });
  return building;
}

/** Children still running, stopped when the test process unloads (a failed test may skip its finally). */
const live = new Set<Deno.ChildProcess>();
globalThis.addEventListener("unload", () => {
  for (const child of live) {
    try {
      // SIGTERM: the node closes itself cleanly after we are gone (its stdin EOF would end it too).
      child.kill("SIGTERM");
    } catch { /* already exited */ }
  }
});

/** /proc's view, ahead of Deno's child.status which resolves only once the runtime has reaped the JVM. */
function processAlive(pid: number): boolean {
  try {
    return !/^State:\s+[ZX]/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Health probes open a fresh connection each: a pooled one may lead to a JVM that was killed. */
const probeClient = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });

class Node implements OpenSearchNode {
  readonly url: string;
  #log = "";
  #starts = 0;
  #child?: Deno.ChildProcess;
  #dead = false;
  #exited?: Promise<Deno.CommandStatus>;
  #pumps?: Promise<unknown>;
  #stdin?: WritableStreamDefaultWriter<Uint8Array>;

  constructor(readonly port: number, readonly dataDir: string) {
    this.url = `http://127.0.0.1:${port}`;
  }

  logs(): string {
    return this.#log;
  }

  #append(text: string): void {
    this.#log += text;
    if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS / 2);
  }

  #tail(lines = 80): string {
    return this.#log.split("\n").slice(-lines).join("\n");
  }

  async start(): Promise<void> {
    if (this.#child && !this.#dead && processAlive(this.#child.pid)) return;
    // The JVM died on its own (crash, OOM, killed): collect it, then start anew.
    if (this.#child) await this.#reap();
    await buildOpenSearch();
    // A leftover node on this port would answer the health probe in our place.
    if (!portFree(this.port)) throw new Error(`OpenSearch port ${this.port} is already in use`);
    this.#starts++;
    this.#append(`--- huatuo-it: start #${this.#starts} (port ${this.port}, ${this.dataDir}) ---\n`);
    const t0 = performance.now();
    const child = new Deno.Command(javaBin(), {
      args: [
        ...jvmArgs(),
        "-cp",
        `${OUT}/lib/*`,
        MAIN_CLASS,
        this.dataDir,
        String(this.port),
        "--exit-on-stdin-eof",
      ],
      cwd: this.dataDir,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    live.add(child);
    this.#child = child;
    this.#dead = false;
    this.#stdin = child.stdin.getWriter();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      for await (const chunk of s) this.#append(dec.decode(chunk, { stream: true }));
    };
    this.#pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    let exited: Deno.CommandStatus | undefined;
    this.#exited = child.status.then((s) => {
      exited = s;
      this.#dead = true;
      live.delete(child);
      return s;
    });

    const deadline = t0 + START_TIMEOUT_MS;
    while (performance.now() < deadline) {
      if (exited) {
        await this.#reap();
        throw new Error(`OpenSearch exited with code ${exited.code} before it was ready:\n${this.#tail()}`);
      }
      try {
        const res = await fetch(`${this.url}/_cluster/health?wait_for_status=yellow&timeout=1s`, {
          client: probeClient,
          signal: AbortSignal.timeout(5_000),
        });
        const body = await res.json() as { status?: string };
        if (res.status === 200 && (body.status === "yellow" || body.status === "green")) {
          this.#append(`--- huatuo-it: ready in ${Math.round(performance.now() - t0)} ms ---\n`);
          return;
        }
      } catch { /* not listening yet */ }
      await sleep(200);
    }
    await this.#kill("SIGKILL");
    throw new Error(
      `OpenSearch not ready (yellow) after ${START_TIMEOUT_MS} ms on port ${this.port}; its log:\n${this.#tail()}`,
    );
  }

  async stop(): Promise<void> {
    if (!this.#child) return;
    await this.#kill("SIGTERM");
  }

  async destroy(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dataDir, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  /** Signals the JVM, escalates to SIGKILL after STOP_TIMEOUT_MS, and waits until it and its pipes are done. */
  async #kill(signal: Deno.Signal): Promise<void> {
    const child = this.#child;
    if (!child) return;
    try {
      child.kill(signal);
    } catch { /* already exited */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      this.#exited!.then(() => false),
      new Promise<boolean>((r) => timer = setTimeout(() => r(true), STOP_TIMEOUT_MS)),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#append(`--- huatuo-it: no exit ${STOP_TIMEOUT_MS} ms after ${signal}: SIGKILL ---\n`);
      try {
        child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await this.#reap();
  }

  async #reap(): Promise<void> {
    const status = await this.#exited!;
    await this.#stdin?.close().catch(() => {/* the pipe is gone with the JVM */});
    await this.#pumps;
    this.#append(
      `--- huatuo-it: exited, code ${status.code}${status.signal ? ` (${status.signal})` : ""} ---\n`,
    );
    this.#child = undefined;
    this.#stdin = undefined;
  }
}

/** Builds the node if needed and starts it on a free port (or opts.port) with a fresh temp dir (or opts.dataDir). */
export async function startOpenSearch(
  opts: { port?: number; dataDir?: string } = {},
): Promise<OpenSearchNode> {
  const dataDir = opts.dataDir ?? await Deno.makeTempDir({ prefix: "huatuo-it-opensearch-" });
  await Deno.mkdir(dataDir, { recursive: true });
  const node = new Node(opts.port ?? freePort(), dataDir);
  try {
    await node.start();
  } catch (err) {
    // Only a dir we made is ours to remove.
    if (opts.dataDir === undefined) await node.destroy();
    throw err;
  }
  return node;
}
