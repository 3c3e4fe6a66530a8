// The kubelet client: polls GET /pods on this node's kubelet and keeps the
// last good view of which pod each container belongs to. A kubelet that is
// down, refuses us or answers garbage never reaches the agent: the poll
// backs off, the old view stays, and the root cause is logged once per
// outage (and once on recovery).

import https from "node:https";
import type { Config } from "../config/schema.ts";
import { readRegularFile } from "../io/read.ts";
import type { Logger } from "../log/logger.ts";
import type { Collector } from "../core/collector.ts";
import { counter, gauge } from "../core/sample.ts";
import type { PodInfo } from "./container.ts";
import { parsePodListText, type PodView } from "./pods.ts";
import type { PodSource } from "./registry.ts";

export interface KubeletOptions {
  /** Plain-http read-only port; 0 = do not use. */
  readOnlyPort: number;
  /** HTTPS port with client-certificate auth; 0 = do not use. */
  authorizedPort: number;
  /** "cert.pem,key.pem" or one PEM holding both; "" = present no client certificate. */
  clientCertPath: string;
  /** --disable-kubelet: never poll (host-only labels). */
  disabled?: boolean;
  log: Logger;
  pollIntervalMs?: number;
  requestTimeoutMs?: number;
  maxBackoffMs?: number;
  /** A larger /pods answer is refused rather than buffered. */
  maxBodyBytes?: number;
  /** Called after every successful poll (e.g. the container registry's relabel()); must not throw. */
  onUpdate?: (view: PodView) => void;
}

export interface KubeletStats {
  up: number;
  pods: number;
  errors: number;
}

const HOST = "127.0.0.1";
const DEFAULT_POLL_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_BACKOFF_MS = 60_000;
const DEFAULT_MAX_BODY = 64 << 20;

export interface ClientCert {
  cert: string;
  key: string;
}

/** A certificate chain and its key are a few KB; anything near this is not a PEM file. */
const MAX_PEM_BYTES = 1024 * 1024;

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** Splits PEM text into its certificate blocks and its private key block (any of RSA/EC/PKCS#8). */
export function splitPem(text: string): { certs: string[]; keys: string[] } {
  const certs: string[] = [];
  const keys: string[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (m[1] === "CERTIFICATE") certs.push(m[0]);
    else if (m[1].endsWith("PRIVATE KEY")) keys.push(m[0]);
  }
  return { certs, keys };
}

/**
 * Reads KubeletClientCertPath: "cert,key" (two files) or one file with both
 * (kubelet-client-current.pem). Read at every connection so a rotated
 * certificate is picked up without a restart.
 */
export async function loadClientCert(path: string): Promise<ClientCert> {
  const parts = path.split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (parts.length < 1 || parts.length > 2) {
    throw new Error(`KubeletClientCertPath "${path}": want "cert,key" or one PEM file`);
  }
  const read = async (p: string) => {
    try {
      return new TextDecoder().decode(await readRegularFile(p, MAX_PEM_BYTES));
    } catch (err) {
      throw new Error(`KubeletClientCertPath: ${err instanceof Error ? err.message : err}`);
    }
  };
  const texts = await Promise.all(parts.map(read));
  const certPem = splitPem(texts[0]);
  const keyPem = splitPem(texts[texts.length - 1]);
  if (certPem.certs.length === 0) throw new Error(`KubeletClientCertPath: no CERTIFICATE in ${parts[0]}`);
  if (keyPem.keys.length === 0) throw new Error(`KubeletClientCertPath: no PRIVATE KEY in ${parts.at(-1)}`);
  return { cert: certPem.certs.join("\n"), key: keyPem.keys[0] };
}

/** The innermost message of an error chain: fetch wraps the socket error in "fetch failed". */
export function rootCause(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 8 && e instanceof Error && e.cause !== undefined; i++) e = e.cause;
  const msg = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && !msg.includes(code) ? `${msg} (${code})` : msg;
}

interface Endpoint {
  kind: "read-only" | "authorized";
  url: string;
}

export class KubeletClient implements PodSource {
  readonly disabled: boolean;
  #opts: Required<Omit<KubeletOptions, "disabled" | "onUpdate">>;
  #onUpdate: ((view: PodView) => void) | undefined;
  #endpoints: Endpoint[] = [];
  #view: PodView | undefined;
  #up = false;
  #errors = 0;
  #failures = 0;
  #outage: { since: number; cause: string } | undefined;
  #everUp = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inflight: Promise<boolean> | undefined;
  #abort = new AbortController();
  #stopped = false;
  #generation = 0;

  constructor(opts: KubeletOptions) {
    this.#opts = {
      pollIntervalMs: DEFAULT_POLL_MS,
      requestTimeoutMs: DEFAULT_TIMEOUT_MS,
      maxBackoffMs: DEFAULT_MAX_BACKOFF_MS,
      maxBodyBytes: DEFAULT_MAX_BODY,
      ...opts,
    };
    this.#onUpdate = opts.onUpdate;
    if (opts.readOnlyPort > 0) {
      this.#endpoints.push({ kind: "read-only", url: `http://${HOST}:${opts.readOnlyPort}/pods` });
    }
    if (opts.authorizedPort > 0) {
      this.#endpoints.push({ kind: "authorized", url: `https://${HOST}:${opts.authorizedPort}/pods` });
    }
    this.disabled = opts.disabled === true || this.#endpoints.length === 0;
  }

  static fromConfig(
    config: Config,
    opts: { disableKubelet: boolean; log: Logger } & Partial<KubeletOptions>,
  ): KubeletClient {
    return new KubeletClient({
      readOnlyPort: config.Pod.KubeletReadOnlyPort,
      authorizedPort: config.Pod.KubeletAuthorizedPort,
      clientCertPath: config.Pod.KubeletClientCertPath,
      ...opts,
      disabled: opts.disableKubelet,
    });
  }

  /** Why the client is off, for the startup log; undefined when it polls. */
  get disabledReason(): string | undefined {
    if (!this.disabled) return undefined;
    return this.#endpoints.length === 0
      ? "KubeletReadOnlyPort and KubeletAuthorizedPort are 0"
      : "--disable-kubelet";
  }

  /** Polls now, then every pollIntervalMs (with backoff while failing). No-op when disabled. */
  start(): void {
    if (this.disabled || this.#stopped || this.#timer !== undefined || this.#inflight) return;
    this.#tick();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort(new Error("kubelet client stopped"));
  }

  /** One poll now; resolves true when it produced a fresh view. Never rejects. */
  refresh(): Promise<boolean> {
    if (this.disabled || this.#stopped) return Promise.resolve(false);
    this.#inflight ??= this.#poll().finally(() => this.#inflight = undefined);
    return this.#inflight;
  }

  podInfo(podUid: string, containerId: string): PodInfo | undefined {
    const v = this.#view;
    if (!v) return undefined;
    return v.byContainer.get(containerId) ?? (podUid ? v.byPod.get(podUid) : undefined);
  }

  /** The last good view (undefined before the first successful poll). */
  get view(): PodView | undefined {
    return this.#view;
  }

  /** Bumped on every successful poll, so a registry can tell when to relabel. */
  get generation(): number {
    return this.#generation;
  }

  stats(): KubeletStats {
    return { up: this.#up ? 1 : 0, pods: this.#view?.pods ?? 0, errors: this.#errors };
  }

  #tick(): void {
    this.#timer = undefined;
    void this.refresh().then(() => {
      if (this.#stopped) return;
      const o = this.#opts;
      // Backoff: one interval after the first failure, doubling up to maxBackoffMs.
      const delay = this.#failures === 0
        ? o.pollIntervalMs
        : Math.min(o.maxBackoffMs, o.pollIntervalMs * 2 ** (this.#failures - 1));
      this.#timer = setTimeout(() => this.#tick(), delay);
    });
  }

  async #poll(): Promise<boolean> {
    const causes: string[] = [];
    for (const ep of this.#endpoints) {
      try {
        const text = ep.kind === "read-only" ? await this.#getHttp(ep.url) : await this.#getHttps(ep.url);
        const view = parsePodListText(text);
        this.#succeeded(view, ep);
        // The endpoint that answered goes first next time (a cluster with the read-only port off
        // then costs no refused connection per poll).
        this.#endpoints = [ep, ...this.#endpoints.filter((e) => e !== ep)];
        return true;
      } catch (err) {
        if (this.#stopped) return false;
        causes.push(`${ep.url}: ${rootCause(err)}`);
      }
    }
    this.#failed(causes.join("; "));
    return false;
  }

  #succeeded(view: PodView, ep: Endpoint): void {
    this.#view = view;
    this.#generation++;
    this.#up = true;
    this.#failures = 0;
    if (this.#outage) {
      this.#opts.log.info("kubelet reachable again", {
        url: ep.url,
        pods: view.pods,
        down_s: Math.round((Date.now() - this.#outage.since) / 1000),
      });
      this.#outage = undefined;
    } else if (!this.#everUp) {
      this.#opts.log.info("kubelet pods fetched", { url: ep.url, pods: view.pods });
    }
    this.#everUp = true;
    try {
      this.#onUpdate?.(view);
    } catch (err) {
      this.#opts.log.error("kubelet view listener failed", { error: rootCause(err) });
    }
  }

  #failed(cause: string): void {
    this.#up = false;
    this.#errors++;
    this.#failures++;
    if (this.#outage) {
      if (cause !== this.#outage.cause) this.#opts.log.debug("kubelet still unreachable", { error: cause });
      this.#outage.cause = cause;
      return;
    }
    this.#outage = { since: Date.now(), cause };
    const hint = this.#opts.clientCertPath === "" && this.#opts.authorizedPort > 0
      ? "KubeletClientCertPath is empty: no client certificate was presented"
      : undefined;
    this.#opts.log.warn("kubelet /pods failed; keeping the last pod view and retrying with backoff", {
      error: cause,
      hint,
      pods_kept: this.#view?.pods ?? 0,
    });
  }

  async #getHttp(url: string): Promise<string> {
    // The timeout covers the body too: a kubelet that trickles its answer is cut off like a silent one.
    const timeout = this.#opts.requestTimeoutMs;
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(timeout)]);
    try {
      const res = await fetch(url, { signal });
      if (res.status !== 200) {
        const body = await readBodyPrefix(res.body, ERROR_BODY_BYTES);
        throw new Error(`HTTP ${res.status} ${res.statusText}: ${body.trim()}`);
      }
      const len = Number(res.headers.get("content-length") ?? 0);
      if (len > this.#opts.maxBodyBytes) {
        await res.body?.cancel();
        throw new Error(`/pods answer of ${len} bytes exceeds ${this.#opts.maxBodyBytes}`);
      }
      // Without a content-length (chunked) only reading tells the size: stop at the cap.
      return await readBodyCapped(res.body, this.#opts.maxBodyBytes);
    } catch (err) {
      if (signal.aborted && !this.#abort.signal.aborted) throw new Error(`no answer within ${timeout} ms`);
      throw err;
    }
  }

  async #getHttps(url: string): Promise<string> {
    const tls = this.#opts.clientCertPath ? await loadClientCert(this.#opts.clientCertPath) : undefined;
    const max = this.#opts.maxBodyBytes;
    return await new Promise<string>((resolve, reject) => {
      const req = https.request(url, {
        method: "GET",
        headers: { accept: "application/json" },
        cert: tls?.cert,
        key: tls?.key,
        // The kubelet's serving certificate is self-signed by default (or signed by a cluster CA the agent
        // is not given) and names the node, not 127.0.0.1. We only ever connect to 127.0.0.1, where an
        // impostor would already need root on this node, so server verification is skipped here and
        // nowhere else. Our client certificate is what authenticates us.
        rejectUnauthorized: false,
        agent: false,
      }, (res) => {
        const chunks: Uint8Array[] = [];
        let size = 0;
        res.on("data", (c: Uint8Array) => {
          size += c.length;
          if (size > max) req.destroy(new Error(`/pods answer exceeds ${max} bytes`));
          else chunks.push(c);
        });
        res.on("error", reject);
        res.on("end", () => {
          const body = new TextDecoder().decode(concat(chunks, size));
          if (res.statusCode !== 200) {
            reject(
              new Error(`HTTP ${res.statusCode} ${res.statusMessage ?? ""}: ${body.slice(0, 200).trim()}`),
            );
          } else resolve(body);
        });
      });
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${this.#opts.requestTimeoutMs} ms`)),
        this.#opts.requestTimeoutMs,
      );
      const onAbort = () => req.destroy(this.#abort.signal.reason as Error);
      this.#abort.signal.addEventListener("abort", onAbort, { once: true });
      req.on("error", reject);
      req.on("close", () => {
        clearTimeout(timer);
        this.#abort.signal.removeEventListener("abort", onAbort);
      });
      req.end();
    });
  }
}

/** The part of an error answer quoted in the log. */
const ERROR_BODY_BYTES = 200;

/** Reads a response body of at most `max` bytes as text; a longer one is cancelled and refused. */
export async function readBodyCapped(body: ReadableStream<Uint8Array> | null, max: number): Promise<string> {
  if (!body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > max) throw new Error(`/pods answer exceeds ${max} bytes`);
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    reader.releaseLock();
  }
  return new TextDecoder().decode(concat(chunks, size));
}

/** The first `max` bytes of a body as text (the rest is not read). */
export async function readBodyPrefix(body: ReadableStream<Uint8Array> | null, max: number): Promise<string> {
  if (!body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return new TextDecoder().decode(concat(chunks, size).subarray(0, max));
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** kubelet_up / kubelet_pods / kubelet_errors_total; no series when the client is disabled. */
export function kubeletCollector(client: KubeletClient): Collector {
  return {
    name: "kubelet",
    collect() {
      if (client.disabled) return Promise.resolve([]);
      const s = client.stats();
      return Promise.resolve([
        gauge("kubelet_up", "1 when the last poll of the kubelet's /pods succeeded, else 0.", s.up),
        gauge(
          "kubelet_pods",
          "Pods in the kubelet view in use (the last good one while the kubelet is down).",
          s.pods,
        ),
        counter(
          "kubelet_errors_total",
          "Polls of the kubelet's /pods that failed on every configured port.",
          s.errors,
        ),
      ]);
    },
  };
}
