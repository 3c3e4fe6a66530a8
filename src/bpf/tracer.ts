// A BPF tracer: loads one object from the BPF directory, sets its read-only
// constants, attaches its programs, and closes everything on stop. Errors that
// mean "this host cannot do it" (no libbpf, no BTF, a missing tracepoint)
// become UnsupportedError so the manager reports, not retries; EPERM (the agent
// lacks privileges) is a failure naming the capabilities it needs.

import type { EventReader, RecordHandler } from "../../ffi/events.ts";
import {
  BPF_MAP_TYPE_RINGBUF,
  BPF_PROG_TYPE_PERF_EVENT,
  BpfError,
  BpfObject,
  ensureLibbpf,
  LibbpfUnavailableError,
  type RodataValue,
} from "../../ffi/libbpf.ts";
import { PerfBufferReader } from "../../ffi/perfbuf.ts";
import { RingBufferReader } from "../../ffi/ringbuf.ts";
import type { Logger } from "../log/logger.ts";
import { type Tracer, type TracerContext, UnsupportedError } from "../tracing/manager.ts";

const EPERM = 1;
const ENOENT = 2;

/** The reason a tracer reports when the kernel refused it for lack of privilege. */
export const PERMISSION_DENIED = "permission denied (needs CAP_BPF+CAP_PERFMON or root)";

/** EPERM from bpf() or perf_event_open(): the agent runs without the privileges BPF needs. */
export class BpfPermissionError extends Error {
  /** `detail` names the call that was refused. */
  constructor(detail: string, options?: ErrorOptions) {
    super(`${PERMISSION_DENIED}: ${detail}`, options);
    this.name = "BpfPermissionError";
  }
}

/**
 * What the tracing manager should make of a load or attach error: no libbpf is
 * unsupported (with dlopen's reason), EPERM is a failure naming the missing
 * privileges, anything else stays as it is.
 */
export function classifyLoadError(err: unknown): unknown {
  if (err instanceof LibbpfUnavailableError) return new UnsupportedError(err.message);
  if (err instanceof BpfError && err.errno === EPERM) {
    // The call that was refused; libbpf's own lines (its memlock and probe hints) are in the debug log.
    const subject = err.program ?? err.map;
    const detail = `${err.object}: ${err.op}${subject === undefined ? "" : ` ${subject}`}: EPERM`;
    return new BpfPermissionError(detail, { cause: err });
  }
  return err;
}

/** Throws (classified) when libbpf cannot be loaded; tracers call it before looking for anything else. */
export function requireLibbpf(): void {
  try {
    ensureLibbpf();
  } catch (err) {
    throw classifyLoadError(err);
  }
}

/**
 * Records an agent tracer handles per event-loop turn. A backlog (after the
 * host was busy) is then worked off in slices with I/O in between, instead of
 * one long synchronous stretch: each record becomes a document, a file line
 * and an SSE message for every watch client, and 5000 of them at once held
 * the loop ~300 ms and overflowed every client's queue (bench/events.ts).
 */
export const TRACER_RECORDS_PER_TICK = 512;

export interface BpfTracerSpec {
  /** Tracer name (= collector / BlackList name). */
  readonly name: string;
  /** Object file name inside the BPF directory, e.g. "runqlat.o". */
  readonly object: string;
  readonly rodata?: Record<string, RodataValue>;
  /** max_entries set before load, by map name (e.g. a ring buffer sized from the config). */
  readonly mapSizes?: Record<string, number>;
  /** Programs whose hook may be absent on older kernels; their attach failures are logged, not fatal. */
  readonly optionalPrograms?: readonly string[];
  /**
   * Alternative implementations inside one object, best first (e.g. tp_btf
   * programs, then raw_tp ones): each attempt loads only its own set (plus the
   * programs in no set); the first set the kernel accepts wins.
   */
  readonly alternatives?: readonly (readonly string[])[];
  /**
   * Event buffers to read while running: a BPF_MAP_TYPE_RINGBUF (kernel 5.8+)
   * or a PERF_EVENT_ARRAY, polled from the JS thread on a 10 ms timer.
   */
  readonly buffers?: readonly { readonly map: string; readonly onRecord: RecordHandler }[];
}

/** Where objects live, and the set of loaded tracers for self-observability. */
/**
 * A collector read a tracer that is not running. Its reason was already
 * logged by the tracing manager, so the registry logs this one quietly.
 */
export class TracerNotRunningError extends Error {
  readonly quiet = true;
  constructor(name: string, reason: string) {
    super(`BPF programs of ${name} are not running: ${reason}`);
    this.name = "TracerNotRunningError";
  }
}

export class BpfRuntime {
  readonly live = new Set<BpfTracer>();
  /**
   * `objects`, when given (a single-file build's archive), holds the objects
   * by file name and replaces `dir` as their source; `dir` still holds btf/.
   */
  constructor(
    readonly dir: string,
    readonly kernelBtf = "/sys/kernel/btf/vmlinux",
    readonly objects?: ReadonlyMap<string, Uint8Array>,
  ) {}
}

export class BpfTracer implements Tracer {
  #object?: BpfObject;
  #reason = "not started";
  /** Programs left unattached because their hook is missing on this kernel. */
  readonly skipped: string[] = [];
  /** Event buffer readers by map name, while running. */
  readonly readers = new Map<string, EventReader>();

  constructor(readonly spec: BpfTracerSpec, readonly runtime: BpfRuntime) {}

  get name(): string {
    return this.spec.name;
  }

  /** The loaded object; throws (naming why) when the tracer is not running. */
  get object(): BpfObject {
    if (!this.#object) throw new TracerNotRunningError(this.name, this.#reason);
    return this.#object;
  }

  start(ctx: TracerContext): Promise<void> {
    try {
      this.#object = this.#load(ctx.log);
      this.#startReaders(this.#object, ctx);
      this.runtime.live.add(this);
      this.#reason = "running";
      return Promise.resolve();
    } catch (err) {
      this.#reason = err instanceof Error ? err.message : String(err);
      return Promise.reject(err);
    }
  }

  stop(): void {
    this.runtime.live.delete(this);
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
    this.#object?.close();
    this.#object = undefined;
    if (this.#reason === "running") this.#reason = "stopped";
  }

  #startReaders(obj: BpfObject, ctx: TracerContext): void {
    for (const b of this.spec.buffers ?? []) {
      const map = obj.map(b.map);
      const onError = (err: unknown) =>
        ctx.log.warn("event record handler failed", { tracer: this.name, buffer: b.map, error: String(err) });
      const reader = map.type === BPF_MAP_TYPE_RINGBUF
        ? new RingBufferReader(map, b.onRecord, { onError })
        : new PerfBufferReader(map, b.onRecord, { onError, onWarn: (msg: string) => ctx.log.warn(msg) });
      this.readers.set(b.map, reader);
      reader.start(undefined, TRACER_RECORDS_PER_TICK);
    }
  }

  #load(log: Logger): BpfObject {
    // libbpf first: without it nothing else matters, and the other checks would blame BTF or the object.
    requireLibbpf();
    const embedded = this.runtime.objects;
    const path = embedded ? this.spec.object : `${this.runtime.dir}/${this.spec.object}`;
    if (embedded) {
      if (!embedded.has(path)) throw new Error(`BPF object ${path} is not in the single file's archive`);
    } else {
      try {
        Deno.statSync(path);
      } catch {
        throw new Error(
          `BPF object ${path} not found (build it with ./build.sh bpf, or point --bpf-dir at it)`,
        );
      }
    }
    const btfCustomPath = this.#customBtf();
    const sets = this.spec.alternatives ?? [[]];
    for (let i = 0; i < sets.length; i++) {
      try {
        const obj = this.#loadSet(path, btfCustomPath, sets, i, log);
        if (sets.length > 1) {
          log.debug("BPF implementation chosen", { tracer: this.name, programs: sets[i].join(",") });
        }
        return obj;
      } catch (err) {
        // Only a rejection of this implementation's own programs makes the next one worth trying.
        const ownRejection = err instanceof BpfError && err.program !== undefined &&
          sets[i].includes(err.program) &&
          err.errno !== EPERM;
        if (i === sets.length - 1 || !ownRejection) throw classifyLoadError(err);
        log.info("BPF implementation rejected by this kernel; trying the next", {
          tracer: this.name,
          programs: sets[i].join(","),
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    throw new Error("unreachable");
  }

  #loadSet(
    path: string,
    btfCustomPath: string | undefined,
    sets: readonly (readonly string[])[],
    chosen: number,
    log: Logger,
  ): BpfObject {
    let obj: BpfObject | undefined;
    try {
      const bytes = this.runtime.objects?.get(path);
      obj = bytes
        ? BpfObject.openMem(bytes, path, { btfCustomPath })
        : BpfObject.openFile(path, { btfCustomPath });
      // Names absent from the file are skipped: a replaced object still loads (and fails) on its own terms.
      const present = new Set(obj.programs.map((p) => p.name));
      sets.forEach((set, i) => {
        if (i === chosen) return;
        for (const p of set) if (present.has(p)) obj!.setAutoload(p, false);
      });
      if (this.spec.rodata) obj.setRodata(this.spec.rodata);
      for (const [name, n] of Object.entries(this.spec.mapSizes ?? {})) obj.map(name).setMaxEntries(n);
      obj.load();
      for (const p of obj.programs) {
        if (p.fd < 0 || p.type === BPF_PROG_TYPE_PERF_EVENT) continue;
        try {
          p.attach();
        } catch (err) {
          if (!(err instanceof BpfError && err.errno === ENOENT)) throw err;
          if (!this.spec.optionalPrograms?.includes(p.name)) {
            throw new UnsupportedError(
              `${this.spec.object}: hook of program ${p.name} (${p.section}) missing on this kernel`,
            );
          }
          this.skipped.push(p.name);
          log.info("optional BPF program not attached: hook missing", { tracer: this.name, program: p.name });
        }
      }
      return obj;
    } catch (err) {
      obj?.close();
      throw err;
    }
  }

  /** Kernels without /sys/kernel/btf/vmlinux need a BTF file shipped as <bpf-dir>/btf/<release>.btf. */
  #customBtf(): string | undefined {
    try {
      Deno.statSync(this.runtime.kernelBtf);
      return undefined;
    } catch {
      const custom = `${this.runtime.dir}/btf/${Deno.osRelease()}.btf`;
      try {
        Deno.statSync(custom);
        return custom;
      } catch {
        throw new UnsupportedError(`kernel has no BTF (${this.runtime.kernelBtf}) and no ${custom}`);
      }
    }
  }
}
