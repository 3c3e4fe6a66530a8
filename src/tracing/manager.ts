// Lifecycle of long-running tracers (BPF programs, event readers): start each
// enabled one, restart one that fails after its interval, stop all on
// shutdown, and report each one's state. A tracer that cannot work on this
// kernel says so once and is not retried.

import type { Logger } from "../log/logger.ts";

export type TracerState = "starting" | "running" | "disabled" | "unsupported" | "failed" | "stopped";

/** Thrown by a tracer whose kernel hook does not exist here (missing tracepoint, no kprobes, no BTF...). */
export class UnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedError";
  }
}

/** A start/stop request that cannot be honoured; `status` is the HTTP status to answer with. */
export class TracerControlError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "TracerControlError";
  }
}

export interface TracerContext {
  readonly log: Logger;
  /** Aborted when the tracer is being stopped. */
  readonly signal: AbortSignal;
  /** A running tracer reports a fatal error; the manager stops and later restarts it. */
  fail(err: Error): void;
}

export interface Tracer {
  readonly name: string;
  /** Resolves once the tracer runs; throws UnsupportedError or any error. */
  start(ctx: TracerContext): Promise<void>;
  /** Releases everything start() acquired; must be safe after a failed start. */
  stop(): Promise<void> | void;
}

export interface TracerStatus {
  name: string;
  state: TracerState;
  /** Why it is disabled, unsupported or failed. */
  reason?: string;
  restarts: number;
  since: string;
}

interface Entry {
  tracer: Tracer;
  status: TracerStatus;
  restartMs: number;
  abort?: AbortController;
  timer?: ReturnType<typeof setTimeout>;
  /** Consecutive failed starts or runs; drives the restart backoff. */
  failures: number;
}

export interface TracerOptions {
  /** Wait before restarting a failed tracer; doubles per consecutive failure up to 10 minutes. */
  restartIntervalSec?: number;
}

const MAX_BACKOFF_MS = 10 * 60 * 1000;

export class TracerManager {
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger;
  #stopping = false;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Registers a tracer; `disabledReason` marks it disabled (BlackList) without starting it. */
  add(tracer: Tracer, opts: TracerOptions = {}, disabledReason?: string): void {
    if (this.#entries.has(tracer.name)) throw new Error(`tracer ${tracer.name} registered twice`);
    this.#entries.set(tracer.name, {
      tracer,
      restartMs: (opts.restartIntervalSec ?? 10) * 1000,
      failures: 0,
      status: {
        name: tracer.name,
        state: disabledReason ? "disabled" : "stopped",
        reason: disabledReason,
        restarts: 0,
        since: new Date().toISOString(),
      },
    });
  }

  /** Starts every enabled tracer concurrently; resolves when each has started or failed once. */
  async startAll(): Promise<void> {
    await Promise.all(
      [...this.#entries.values()].filter((e) => e.status.state === "stopped").map((e) => this.#start(e)),
    );
  }

  async stopAll(): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#entries.values()].map((e) => this.#stop(e, "stopped")));
  }

  /**
   * Starts one tracer on request (HTTP control). A running tracer is left as it
   * is; a BlackList-disabled one cannot be started (the config says no);
   * stopped, failed and unsupported ones are tried again now.
   */
  async start(name: string): Promise<TracerStatus> {
    const e = this.#entry(name);
    if (e.status.state === "disabled") {
      throw new TracerControlError(409, `tracer ${name} is ${e.status.reason}`);
    }
    if (this.#stopping) throw new TracerControlError(503, "agent is shutting down");
    if (e.status.state !== "running" && e.status.state !== "starting") {
      if (e.timer !== undefined) clearTimeout(e.timer);
      e.timer = undefined;
      e.failures = 0;
      this.#log.info("tracer start requested", { tracer: name });
      await this.#start(e);
    }
    return { ...e.status };
  }

  /** Stops one tracer on request; it stays stopped (no restart) until started again. */
  async stop(name: string, reason = "stopped on request"): Promise<TracerStatus> {
    const e = this.#entry(name);
    if (e.status.state === "disabled") {
      throw new TracerControlError(409, `tracer ${name} is ${e.status.reason}`);
    }
    this.#log.info("tracer stop requested", { tracer: name });
    await this.#stop(e, "stopped");
    if (e.status.state !== "unsupported") this.#set(e, "stopped", reason);
    return { ...e.status };
  }

  #entry(name: string): Entry {
    const e = this.#entries.get(name);
    if (!e) throw new TracerControlError(404, `no tracer named ${JSON.stringify(name)}`);
    return e;
  }

  state(name: string): TracerStatus | undefined {
    const e = this.#entries.get(name);
    return e ? { ...e.status } : undefined;
  }

  statuses(): TracerStatus[] {
    return [...this.#entries.values()].map((e) => ({ ...e.status })).sort((a, b) =>
      a.name.localeCompare(b.name)
    );
  }

  #set(e: Entry, state: TracerState, reason?: string): void {
    e.status = { ...e.status, state, reason, since: new Date().toISOString() };
  }

  async #start(e: Entry): Promise<void> {
    if (this.#stopping) return;
    const abort = new AbortController();
    e.abort = abort;
    this.#set(e, "starting");
    const ctx: TracerContext = {
      log: this.#log,
      signal: abort.signal,
      fail: (err) => {
        if (e.abort !== abort || abort.signal.aborted) return;
        this.#log.error("tracer failed while running", { tracer: e.tracer.name, error: err.message });
        void this.#fail(e, err);
      },
    };
    try {
      await e.tracer.start(ctx);
      if (abort.signal.aborted) return;
      this.#set(e, "running");
      e.failures = 0;
      this.#log.info("tracer running", { tracer: e.tracer.name });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      await this.#safeStop(e);
      if (error instanceof UnsupportedError) {
        this.#set(e, "unsupported", error.message);
        this.#log.warn("tracer unsupported here", { tracer: e.tracer.name, reason: error.message });
        return;
      }
      this.#log.error("tracer failed to start", { tracer: e.tracer.name, error: error.message });
      await this.#fail(e, error, true);
    }
  }

  async #fail(e: Entry, err: Error, alreadyStopped = false): Promise<void> {
    if (!alreadyStopped) {
      e.abort?.abort();
      await this.#safeStop(e);
    }
    this.#set(e, "failed", err.message);
    if (this.#stopping) return;
    const wait = Math.min(e.restartMs * 2 ** Math.min(e.failures, 16), MAX_BACKOFF_MS);
    e.failures++;
    e.timer = setTimeout(() => {
      e.timer = undefined;
      e.status.restarts++;
      void this.#start(e);
    }, wait);
  }

  async #stop(e: Entry, final: TracerState): Promise<void> {
    if (e.timer !== undefined) clearTimeout(e.timer);
    e.timer = undefined;
    if (e.status.state === "disabled" || e.status.state === "unsupported") return;
    const wasActive = e.status.state === "running" || e.status.state === "starting";
    e.abort?.abort();
    if (wasActive) await this.#safeStop(e);
    if (e.status.state !== "failed") this.#set(e, final);
  }

  async #safeStop(e: Entry): Promise<void> {
    try {
      await e.tracer.stop();
    } catch (err) {
      this.#log.warn("tracer stop failed", { tracer: e.tracer.name, error: String(err) });
    }
  }
}
