// Storage.ES: ships event documents to Elasticsearch/OpenSearch with the bulk
// API, from the durable outbox (outbox.ts), _id = tracer_id so a resend never
// duplicates. Per-item results decide: 2xx acknowledged, 429/5xx (and auth,
// missing-index or blocked-index answers, which an operator fixes) retried with
// exponential backoff capped at 60 s, any other 4xx (a mapping error) failed for
// good and logged with the tracer_id. Shipping is async and one batch at a
// time with the next one read ahead; the tracer path only appends to the outbox.

import { Buffer } from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { gunzipSync, inflateSync } from "node:zlib";
// The client (and the Node compatibility modules it pulls in: ~6 MB of heap) is
// loaded on first use, so an agent without ES storage never loads it.
import type { Client } from "@opensearch-project/opensearch";
import { type Config, indexNameError } from "../config/schema.ts";
import { readRegularFileSync } from "../io/read.ts";
import type { Logger } from "../log/logger.ts";
import type { EventDocument } from "../core/document.ts";
import { Outbox, type OutboxBatch, type OutboxDoc } from "./outbox.ts";

export const ES_PASSWORD_ENV = "HUATUO_BAMAI_ES_PASSWORD";

const MB = 1024 * 1024;
/**
 * Bytes of document lines per bulk request (besides BulkSize): a few MB is the usual sweet spot, and with
 * one batch in flight and one read ahead (each with its request body) memory stays within ~16 MB.
 */
export const MAX_BATCH_BYTES = 4 * MB;
/** Whole-request deadline, the answer's body included (the client's own timeout stops at the headers). */
const REQUEST_TIMEOUT_MS = 30_000;
/**
 * The largest answer read from the store, compressed or not. A bulk answer filtered to status and error is
 * ~100 bytes per item (BulkSize is at most 10,000); the client itself would buffer any size.
 */
export const MAX_RESPONSE_BYTES = 16 * MB;
/** A CA bundle is a few hundred KB at most. */
const MAX_CA_FILE_BYTES = 4 * MB;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 60_000;
const STILL_FAILING_LOG_MS = 60_000;
/** Idle safety net: the shipper re-reads the outbox at least this often. */
const IDLE_POLL_MS = 5_000;
/** The parts of a bulk answer we read: smaller to parse than the full one. */
/** Items come back in the order of the actions, so no _id is needed: half the answer to parse. */
const FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason";

// ---------------------------------------------------------------- settings

export interface EsSettings {
  address: string;
  index: string;
  username: string;
  password: string;
  caFile: string;
  insecureSkipVerify: boolean;
  outboxPath: string;
  outboxMaxBytes: number;
  bulkSize: number;
}

export type EsDecision =
  | { enabled: true; settings: EsSettings }
  | { enabled: false; reason: string; error?: boolean };

/** The seed's rule: ES/OS storage is off when Address, Username or Password is empty (or --disable-storage). */
export function resolveEs(
  config: Config,
  opts: { disableStorage: boolean; env?: (name: string) => string | undefined },
): EsDecision {
  if (opts.disableStorage) return { enabled: false, reason: "--disable-storage" };
  const es = config.Storage.ES;
  const envPassword = (opts.env ?? ((n) => Deno.env.get(n)))(ES_PASSWORD_ENV);
  // An empty variable is treated as unset, so a blank export cannot silently turn storage off.
  const password = envPassword ? envPassword : es.Password;
  if (es.Address === "") return { enabled: false, reason: "Storage.ES.Address is empty" };
  if (es.Username === "") return { enabled: false, reason: "Storage.ES.Username is empty" };
  if (password === "") {
    return { enabled: false, reason: `Storage.ES.Password is empty and ${ES_PASSWORD_ENV} is not set` };
  }
  const indexError = checkIndexName(es.Index);
  if (indexError) {
    return {
      enabled: false,
      reason: `Storage.ES.Index ${JSON.stringify(es.Index)} is not a valid index name (${indexError})`,
      error: true,
    };
  }
  const local = config.Storage.LocalFile.Path;
  return {
    enabled: true,
    settings: {
      address: es.Address,
      index: es.Index,
      username: es.Username,
      password,
      caFile: es.CAFile,
      insecureSkipVerify: es.InsecureSkipVerify,
      outboxPath: es.OutboxPath || (local ? `${local}/.es-outbox` : "huatuo-es-outbox"),
      outboxMaxBytes: es.OutboxMaxSize * MB,
      bulkSize: es.BulkSize,
    },
  };
}

/**
 * Why an index name is refused by Elasticsearch/OpenSearch (undefined when it is fine). The config schema
 * already refuses such a name at start-up; this guards settings built without it.
 */
export function checkIndexName(index: string): string | undefined {
  return indexNameError(index);
}

/** The address without credentials, for logs. */
export function redactAddress(address: string): string {
  try {
    const u = new URL(address);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return address;
  }
}

// ---------------------------------------------------------------- transport

export interface BulkItem {
  status: number;
  /** "type: reason" of a failed item. */
  error?: string;
}

/** A whole request failed: no per-item answer. */
export class StoreError extends Error {
  /** HTTP status when the store answered. */
  readonly status?: number;
  constructor(message: string, status?: number, opts?: ErrorOptions) {
    super(message, opts);
    this.name = "StoreError";
    this.status = status;
  }
}

export interface BulkTransport {
  /** Sends an NDJSON bulk body; resolves with one result per action, in order; throws StoreError. */
  bulk(body: Uint8Array, signal: AbortSignal): Promise<BulkItem[]>;
  /** Checks the store answers (and accepts our credentials); throws StoreError. */
  ping(signal: AbortSignal): Promise<string>;
  close(): Promise<void>;
}

interface BulkAnswer {
  errors?: boolean;
  items?: Record<string, { status?: number; error?: { type?: string; reason?: string } }>[];
}

export interface TransportLimits {
  /** Deadline of one request, the answer's body included. */
  requestTimeoutMs?: number;
  /** Largest answer read (compressed, and again decompressed). */
  maxResponseBytes?: number;
}

/** What a request to the store came back with. */
interface StoreAnswer {
  statusCode: number;
  body: unknown;
}

/**
 * The bulk API through npm:@opensearch-project/opensearch (works against Elasticsearch 7/8 too).
 * The client buffers any answer whole and its requestTimeout ends with the headers (3.9.0 has no
 * maxResponseSize), so answers are taken as streams and read here under a size cap and a deadline.
 */
export class OpenSearchTransport implements BulkTransport {
  readonly #settings: EsSettings;
  readonly #timeoutMs: number;
  readonly #maxResponse: number;
  #client: Client | undefined;

  constructor(settings: EsSettings, limits: TransportLimits = {}) {
    this.#settings = settings;
    this.#timeoutMs = limits.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.#maxResponse = limits.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  }

  /** Built lazily, so a CAFile fixed after a failure is read again on the next attempt. */
  async #getClient(): Promise<Client> {
    if (this.#client) return this.#client;
    const s = this.#settings;
    let ssl: { ca?: string; rejectUnauthorized: boolean } | undefined;
    if (s.address.startsWith("https:")) {
      ssl = { rejectUnauthorized: !s.insecureSkipVerify };
      if (s.caFile) {
        try {
          ssl.ca = new TextDecoder().decode(readRegularFileSync(s.caFile, MAX_CA_FILE_BYTES));
        } catch (err) {
          throw new StoreError(`cannot read Storage.ES.CAFile ${s.caFile}: ${message(err)}`);
        }
      }
    }
    const { Client } = await import("@opensearch-project/opensearch");
    this.#client = new Client({
      node: s.address,
      auth: { username: s.username, password: s.password },
      ssl,
      // Retries, backoff and timeouts are the shipper's: one attempt per call here.
      maxRetries: 0,
      requestTimeout: this.#timeoutMs,
      resurrectStrategy: "none",
    });
    return this.#client;
  }

  /**
   * One request; the answer's body is read as a stream, at most maxResponseBytes and within the deadline,
   * and parsed as JSON when it is JSON. A status >= 400 not in `ignore` throws a StoreError.
   */
  async #request(
    params: { method: string; path: string; bulkBody?: Buffer; querystring?: Record<string, string> },
    signal: AbortSignal,
    ignore: number[] = [],
  ): Promise<StoreAnswer> {
    const client = await this.#getClient();
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const abort = AbortSignal.any([signal, deadline]);
    const timedOut = () => new StoreError(`no answer within ${this.#timeoutMs / 1000} s`);
    let stream: IncomingMessage | undefined;
    const req = client.transport.request(params, { asStream: true, ignore });
    const onAbort = () => {
      req.abort();
      stream?.destroy(); // the read then ends with "connection closed before the answer ended"
    };
    abort.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await req;
      stream = res.body as IncomingMessage;
      if (abort.aborted) stream.destroy();
      const raw = await readCapped(stream, this.#maxResponse);
      const body = decodeAnswer(raw, res.headers ?? {}, params.method, this.#maxResponse);
      const statusCode = res.statusCode ?? 0;
      if (statusCode >= 400 && !ignore.includes(statusCode)) throw httpError(statusCode, body);
      return { statusCode, body };
    } catch (err) {
      if ((deadline.aborted && !signal.aborted) || isClientError(err, "TimeoutError")) throw timedOut();
      throw storeError(err);
    } finally {
      abort.removeEventListener("abort", onAbort);
    }
  }

  async bulk(body: Uint8Array, signal: AbortSignal): Promise<BulkItem[]> {
    // The raw transport takes the NDJSON bytes as they are (the typed bulk() wants objects to serialize).
    const res = await this.#request({
      method: "POST",
      path: `/${encodeURIComponent(this.#settings.index)}/_bulk`,
      bulkBody: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      querystring: { filter_path: FILTER_PATH },
    }, signal);
    const answer = (res.body ?? {}) as BulkAnswer;
    return (answer.items ?? []).map((item) => {
      const r = Object.values(item)[0] ?? {};
      const error = r.error ? `${r.error.type ?? "error"}: ${r.error.reason ?? ""}`.trim() : undefined;
      return { status: Number(r.status ?? 0), error };
    });
  }

  async ping(signal: AbortSignal): Promise<string> {
    const res = await this.#request({ method: "GET", path: "/" }, signal);
    const body = res.body as { version?: { number?: string; distribution?: string } } | undefined;
    await this.#ensureIndex(signal);
    return `${body?.version?.distribution ?? "elasticsearch"} ${body?.version?.number ?? "?"}`;
  }

  /**
   * Creates the index when it does not exist (no mapping: dynamic, as auto-create would), so the first
   * event is not delayed by index creation (0.7-1.8 s on a test node) and a store that forbids
   * auto-create still works. An existing index, alias or data stream is left alone; a user without the
   * right to create it relies on auto-create.
   */
  async #ensureIndex(signal: AbortSignal): Promise<void> {
    const path = `/${encodeURIComponent(this.#settings.index)}`;
    const head = await this.#request({ method: "HEAD", path }, signal, [404]);
    if (head.statusCode !== 404) return;
    await this.#request({ method: "PUT", path }, signal, [400, 403]);
  }

  async close(): Promise<void> {
    await this.#client?.close();
    this.#client = undefined;
  }
}

/** Reads a node stream to its end, or fails once more than `max` bytes came (the rest is not read). */
export function readCapped(stream: Readable, max: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      stream.removeListener("data", onData);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer | string) => {
      const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      size += b.length;
      if (size > max) {
        finish(new StoreError(`answer larger than ${max} bytes`));
        // Without an error: the client logs errors of a request whose answer it has handed over.
        stream.destroy();
        return;
      }
      chunks.push(b);
    };
    stream.on("data", onData);
    stream.once("end", () => finish());
    stream.once("error", (err: Error) => finish(err));
    stream.once("close", () => finish(new Error("connection closed before the answer ended")));
  });
}

/** The answer's body: JSON parsed when it is JSON, gzip/deflate undone within `max` bytes. */
export function decodeAnswer(
  raw: Buffer,
  headers: Record<string, string | string[] | undefined>,
  method: string,
  max: number,
): unknown {
  const encoding = String(headers["content-encoding"] ?? "").toLowerCase();
  let bytes = raw;
  try {
    if (encoding.includes("gzip")) bytes = gunzipSync(raw, { maxOutputLength: max });
    else if (encoding.includes("deflate")) bytes = inflateSync(raw, { maxOutputLength: max });
  } catch (err) {
    throw new StoreError(
      err instanceof RangeError
        ? `answer larger than ${max} bytes decompressed`
        : `bad ${encoding}: ${message(err)}`,
    );
  }
  const text = bytes.toString("utf8");
  const type = String(headers["content-type"] ?? "");
  if (method === "HEAD" || text === "" || !/application\/(vnd\.opensearch\+)?json/.test(type)) return text;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new StoreError(`answer is not valid JSON: ${message(err)}`);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const TLS_HINT = /certificate|self[- ]signed|unable to verify|UNKNOWN_ISSUER|CERT_|tls|ssl/i;

/** The client's error classes by name (the client module is loaded lazily, its classes are not at hand). */
function isClientError(err: unknown, name: "ResponseError" | "TimeoutError"): err is Error {
  return err instanceof Error && err.name === name;
}

/** An error answer (HTTP status >= 400) as a StoreError whose message says what an operator should check. */
export function httpError(status: number | undefined, answer: unknown, cause?: unknown): StoreError {
  const body = (typeof answer === "object" && answer !== null ? answer : {}) as {
    error?: { type?: string; reason?: string } | string;
  };
  const detail = typeof body.error === "string"
    ? body.error
    : body.error
    ? `${body.error.type ?? ""}: ${body.error.reason ?? ""}`
    : "";
  const hint = status === 401
    ? " (check Storage.ES.Username/Password)"
    : status === 403
    ? " (the user may not write to the index)"
    : "";
  return new StoreError(`HTTP ${status}${detail ? ` ${detail}` : ""}${hint}`, status, { cause });
}

/** A client error as a StoreError whose message says what an operator should check. */
export function storeError(err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  if (isClientError(err, "ResponseError")) {
    return httpError((err as { statusCode?: number }).statusCode, (err as { body?: unknown }).body, err);
  }
  if (isClientError(err, "TimeoutError")) {
    return new StoreError(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`, undefined, { cause: err });
  }
  const msg = message(err);
  if (TLS_HINT.test(msg)) {
    return new StoreError(
      `TLS: ${msg} (the server certificate is not trusted: check Storage.ES.CAFile)`,
      undefined,
      { cause: err },
    );
  }
  return new StoreError(msg, undefined, { cause: err });
}

/** Per-item statuses worth retrying: overload and server errors, plus answers an operator fixes without losing data. */
export function retriableStatus(status: number, error?: string): boolean {
  if (status === 429 || status >= 500 || status === 408) return true;
  if (status === 401 || status === 403) return true; // auth, or a read-only (flood-stage) index block
  if (status === 404) return error === undefined || error.startsWith("index_not_found"); // auto-create disabled
  return false;
}

// ---------------------------------------------------------------- shipper

export interface ShipperOptions {
  outbox: Outbox;
  transport: BulkTransport;
  bulkSize: number;
  log: Logger;
  /** For logs (no credentials). */
  target: string;
  maxBatchBytes?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

interface Prepared {
  batch: OutboxBatch;
  body: Uint8Array;
}

export interface ShipperStats {
  sent: number;
  failed: number;
  /** 1 when the last request to the store succeeded, else 0. */
  up: number;
  bulkRequests: number;
  retries: number;
}

const ACTION_PREFIX = new TextEncoder().encode('{"index":{"_id":');
const ACTION_SUFFIX = new TextEncoder().encode("}}\n");
const NL = new TextEncoder().encode("\n");

/** The NDJSON bulk body for `docs`: an index action with _id = tracer_id, then the document line. */
export function bulkBody(docs: readonly OutboxDoc[]): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const ids = docs.map((d) => enc.encode(JSON.stringify(d.id)));
  let size = 0;
  for (let i = 0; i < docs.length; i++) {
    size += ACTION_PREFIX.length + ids[i].length + ACTION_SUFFIX.length + docs[i].line.length + 1;
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (let i = 0; i < docs.length; i++) {
    for (const part of [ACTION_PREFIX, ids[i], ACTION_SUFFIX, docs[i].line, NL]) {
      out.set(part, off);
      off += part.length;
    }
  }
  return out;
}

export class Shipper {
  readonly #o: Required<ShipperOptions>;
  readonly #stats: ShipperStats = { sent: 0, failed: 0, up: 0, bulkRequests: 0, retries: 0 };
  #loop: Promise<void> | undefined;
  #stopping = false;
  #deadline = Infinity;
  /** Aborts the request in flight (shutdown deadline). */
  #abort = new AbortController();
  /** Wakes an idle wait or a backoff sleep. */
  #wake: (() => void) | undefined;
  // Failure streak, for logs that say when it started and when it ended without repeating every attempt.
  #failingSince: number | undefined;
  #failures = 0;
  #lastError = "";
  #lastErrorLogAt = 0;
  #everUp = false;

  constructor(opts: ShipperOptions) {
    this.#o = {
      maxBatchBytes: MAX_BATCH_BYTES,
      backoffBaseMs: BACKOFF_BASE_MS,
      backoffMaxMs: BACKOFF_MAX_MS,
      ...opts,
    };
  }

  get stats(): Readonly<ShipperStats> {
    return this.#stats;
  }

  start(): void {
    this.#loop ??= this.#run().catch((err) => {
      this.#o.log.error("storage: Elasticsearch/OpenSearch shipper stopped on an unexpected error", {
        error: message(err),
      });
    });
  }

  /**
   * Stops shipping: keeps sending what is queued while the store answers, for
   * up to graceMs, then aborts the request in flight (its documents stay
   * queued; the caller's outbox.close() persists the cursor).
   */
  async stop(graceMs = 2000): Promise<void> {
    this.#stopping = true;
    this.#deadline = performance.now() + graceMs;
    this.#wake?.();
    const timer = setTimeout(() => this.#abort.abort(), graceMs);
    try {
      await this.#loop;
    } finally {
      clearTimeout(timer);
      await this.#o.transport.close().catch(() => {});
    }
  }

  #shouldStop(): boolean {
    if (!this.#stopping) return false;
    // A store that is down will not come back within the grace period: leave the rest queued.
    return performance.now() >= this.#deadline || this.#stats.up === 0 ||
      this.#o.outbox.queuedDocuments === 0;
  }

  async #run(): Promise<void> {
    await this.#probe();
    const outbox = this.#o.outbox;
    const read = () => outbox.readBatch(this.#o.bulkSize, this.#o.maxBatchBytes);
    /** The next batch and its body, read and built while the current one is on the wire. */
    let ahead: Promise<Prepared | undefined> | undefined;
    const prepare = async (): Promise<Prepared | undefined> => {
      const batch = await read();
      return batch && { batch, body: bulkBody(batch.docs) };
    };
    try {
      while (!this.#shouldStop()) {
        if (this.#stats.up === 0 && outbox.queuedDocuments === 0) {
          // Idle with the store down: keep probing so `up` (and the log) say when it is back.
          await this.#sleep(this.#backoffMs());
          if (!this.#stopping) await this.#probe();
          continue;
        }
        // Taken before reading, so an append during the read is not missed.
        const appended = outbox.nextAppend();
        let next = ahead ? await ahead : undefined;
        ahead = undefined;
        next ??= await prepare();
        if (!next) {
          if (this.#stopping) break;
          await this.#idle(appended);
          continue;
        }
        const { batch, body } = next;
        if (batch.corrupt > 0) this.#stats.failed += batch.corrupt;
        ahead = prepare();
        if (!(await this.#deliver(batch, body))) break; // stopped: what is outstanding stays queued
        outbox.commit(batch);
      }
    } finally {
      await ahead?.catch(() => undefined);
      outbox.releaseAll();
    }
  }

  /** Sends a batch until every document is acknowledged or failed for good; false when stopped first. */
  async #deliver(batch: OutboxBatch, firstBody: Uint8Array): Promise<boolean> {
    let pending: readonly OutboxDoc[] = batch.docs;
    let chunk = pending.length;
    /** The body built ahead, for exactly these documents (any retry or split builds its own). */
    const first = pending;
    while (pending.length > 0) {
      if (this.#stopping && (performance.now() >= this.#deadline || this.#abort.signal.aborted)) return false;
      const part = pending.slice(0, chunk);
      const rest = pending.slice(chunk);
      let retry: OutboxDoc[];
      try {
        this.#stats.bulkRequests++;
        const body = pending === first && part.length === first.length ? firstBody : bulkBody(part);
        const items = await this.#o.transport.bulk(body, this.#abort.signal);
        if (items.length !== part.length) {
          throw new StoreError(`bulk answer has ${items.length} items for ${part.length} documents`);
        }
        retry = this.#settle(part, items);
      } catch (err) {
        // Aborted at the shutdown deadline: the documents stay queued for the next run.
        if (this.#abort.signal.aborted) return false;
        const e = storeError(err);
        if (e.status === 413) {
          if (part.length > 1) {
            // Too large for http.max_content_length: halve until it fits.
            chunk = Math.ceil(part.length / 2);
            continue;
          }
          this.#failed(part[0].id, "HTTP 413: the document is larger than the store accepts");
          pending = rest;
          continue;
        }
        this.#requestFailed(e.message);
        if (this.#stopping) return false;
        await this.#sleep(this.#backoffMs());
        this.#stats.retries++;
        continue;
      }
      pending = [...retry, ...rest];
      if (retry.length > 0) {
        if (this.#stopping) return false;
        await this.#sleep(this.#backoffMs());
        this.#stats.retries++;
      }
    }
    return true;
  }

  /** Counts acknowledged and failed items; returns the documents to retry. */
  #settle(part: readonly OutboxDoc[], items: BulkItem[]): OutboxDoc[] {
    const retry: OutboxDoc[] = [];
    let firstRetry: BulkItem | undefined;
    for (let i = 0; i < part.length; i++) {
      const item = items[i];
      if (item.status >= 200 && item.status < 300) this.#stats.sent++;
      else if (retriableStatus(item.status, item.error)) {
        retry.push(part[i]);
        firstRetry ??= item;
      } else this.#failed(part[i].id, `HTTP ${item.status} ${item.error ?? ""}`.trim());
    }
    if (firstRetry) {
      this.#requestFailed(
        `${retry.length} of ${part.length} documents to retry, e.g. HTTP ${firstRetry.status} ${
          firstRetry.error ?? ""
        }`.trim(),
      );
    } else this.#requestSucceeded();
    return retry;
  }

  #failed(id: string, reason: string): void {
    this.#stats.failed++;
    this.#o.log.error("storage: Elasticsearch/OpenSearch rejected a document; it is skipped", {
      tracer_id: id,
      reason: reason.slice(0, 500),
    });
  }

  async #probe(): Promise<void> {
    try {
      const version = await this.#o.transport.ping(this.#abort.signal);
      if (!this.#everUp) {
        this.#o.log.info("storage: Elasticsearch/OpenSearch reachable", { address: this.#o.target, version });
      }
      this.#requestSucceeded();
    } catch (err) {
      this.#requestFailed(storeError(err).message);
    }
  }

  #requestSucceeded(): void {
    this.#stats.up = 1;
    this.#everUp = true;
    if (this.#failingSince !== undefined) {
      this.#o.log.info("storage: Elasticsearch/OpenSearch reachable again", {
        address: this.#o.target,
        failed_attempts: this.#failures,
        outage_s: ((performance.now() - this.#failingSince) / 1000).toFixed(1),
        queued: this.#o.outbox.queuedDocuments,
      });
    }
    this.#failingSince = undefined;
    this.#failures = 0;
    this.#lastError = "";
  }

  #requestFailed(error: string): void {
    this.#stats.up = 0;
    const now = performance.now();
    this.#failures++;
    this.#failingSince ??= now;
    // Log the first failure, a changed error, then once a minute: never once per retry.
    if (error !== this.#lastError || now - this.#lastErrorLogAt >= STILL_FAILING_LOG_MS) {
      this.#o.log.error("storage: Elasticsearch/OpenSearch request failed; documents stay queued", {
        address: this.#o.target,
        error,
        attempts: this.#failures,
        queued: this.#o.outbox.queuedDocuments,
      });
      this.#lastError = error;
      this.#lastErrorLogAt = now;
    }
  }

  #backoffMs(): number {
    const exp = Math.min(this.#o.backoffMaxMs, this.#o.backoffBaseMs * 2 ** Math.min(30, this.#failures - 1));
    // Equal jitter: agents of a fleet that lost the same store do not retry in lockstep.
    return exp / 2 + Math.random() * exp / 2;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  async #idle(appended: Promise<void>): Promise<void> {
    await Promise.race([appended, this.#sleep(IDLE_POLL_MS)]);
    this.#wake?.();
  }
}

// ---------------------------------------------------------------- storage

export interface EsStats extends ShipperStats {
  queuedDocuments: number;
  queuedBytes: number;
  dropped: number;
}

/** What the event sink and the agent hold: append a document, read stats, close. */
export interface EsStorage {
  append(doc: EventDocument): void;
  stats(): EsStats;
  /** Flushes what the store takes within graceMs, persists the cursor, closes the outbox. */
  close(graceMs?: number): Promise<void>;
}

const lineEncoder = new TextEncoder();

export class OutboxEsStorage implements EsStorage {
  readonly outbox: Outbox;
  readonly shipper: Shipper;

  constructor(outbox: Outbox, shipper: Shipper) {
    this.outbox = outbox;
    this.shipper = shipper;
  }

  append(doc: EventDocument): void {
    this.outbox.append(lineEncoder.encode(JSON.stringify(doc) + "\n"));
  }

  stats(): EsStats {
    return {
      ...this.shipper.stats,
      queuedDocuments: this.outbox.queuedDocuments,
      queuedBytes: this.outbox.queuedBytes,
      dropped: this.outbox.droppedTotal,
    };
  }

  async close(graceMs = 2000): Promise<void> {
    await this.shipper.stop(graceMs);
    this.outbox.close();
  }
}

/**
 * Decides whether Storage.ES is on (logging which, once), opens the outbox and
 * starts shipping. Undefined when it is off or the outbox cannot be opened
 * (then events still go to the local files).
 */
export function startEsStorage(
  config: Config,
  opts: { disableStorage: boolean; log: Logger; env?: (name: string) => string | undefined },
): EsStorage | undefined {
  const { log } = opts;
  const decision = resolveEs(config, opts);
  if (!decision.enabled) {
    const fields = { reason: decision.reason };
    if (decision.error) log.error("storage: Elasticsearch/OpenSearch disabled", fields);
    else log.info("storage: Elasticsearch/OpenSearch disabled", fields);
    return undefined;
  }
  const s = decision.settings;
  const target = redactAddress(s.address);
  const https = s.address.startsWith("https:");
  let outbox: Outbox;
  try {
    outbox = Outbox.open({ dir: s.outboxPath, maxBytes: s.outboxMaxBytes, log });
  } catch (err) {
    log.error("storage: Elasticsearch/OpenSearch disabled: cannot open the outbox", {
      outbox: s.outboxPath,
      error: message(err),
    });
    return undefined;
  }
  log.info("storage: Elasticsearch/OpenSearch enabled", {
    address: target,
    index: s.index,
    username: s.username,
    tls: !https
      ? "off"
      : s.insecureSkipVerify
      ? "no verification"
      : s.caFile
      ? `CA ${s.caFile}`
      : "system CAs",
    outbox: s.outboxPath,
    outbox_max_mb: s.outboxMaxBytes / MB,
    bulk_size: s.bulkSize,
  });
  if (https && s.insecureSkipVerify) {
    log.warn("storage: Storage.ES.InsecureSkipVerify is on: the server certificate is not verified", {
      address: target,
    });
  }
  const shipper = new Shipper({
    outbox,
    transport: new OpenSearchTransport(s),
    bulkSize: s.bulkSize,
    log,
    target,
  });
  shipper.start();
  return new OutboxEsStorage(outbox, shipper);
}
