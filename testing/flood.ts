// Test-only helpers shared by ffi/ringbuf_test.ts and ffi/perfbuf_test.ts: the
// real-kernel tests fed by bpf/test/flood.bpf.c. Every getppid() the test
// process makes emits events_per_call records
// {u64 seq, u64 ts, u32 cpu, u32 pid, u64 payload = seq ^ payload_xor}.
// Loading flood.o needs root and `./build.sh bpf`; otherwise the tests are
// ignored with the reason printed once.
import { assert, assertStrictEquals } from "./assert.ts";
import { BpfObject, numPossibleCpus, type RodataValue, setLibbpfLogger } from "../ffi/libbpf.ts";
import { getppidSymbol, gettid } from "../ffi/libc.ts";

/** Path of the built flood.o. */
export const FLOOD_OBJECT = new URL("../_output/bpf/test/flood.o", import.meta.url).pathname;
/** flood.bpf.c's payload_xor: payload = seq ^ FLOOD_PAYLOAD_XOR. */
export const FLOOD_PAYLOAD_XOR = 0x5eed5eed5eed5eedn;
/** sizeof(struct flood_event). */
export const FLOOD_RECORD_SIZE = 32;

/** Why the flood tests cannot run here, or undefined when they can. */
export function floodSkipReason(): string | undefined {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "not root: loading BPF programs needs CAP_BPF/CAP_PERFMON (run as root)";
  try {
    Deno.statSync(FLOOD_OBJECT);
  } catch {
    return `${FLOOD_OBJECT} is missing: run ./build.sh bpf first`;
  }
  return undefined;
}

/** A Deno.test that is ignored when the flood tests cannot run. */
export type FloodTest = (name: string, fn: () => void | Promise<void>) => void;

/**
 * Checks once whether the flood tests can run (printing the reason as
 * `<testFile>: skipping real-kernel tests: …` when not), silences libbpf when
 * they can, and returns the test registrar.
 */
export function floodTestSetup(testFile: string): FloodTest {
  const skip = floodSkipReason();
  if (skip) console.log(`${testFile}: skipping real-kernel tests: ${skip}`);
  if (!skip) setLibbpfLogger(() => {});
  return (name, fn) => Deno.test({ name, ignore: skip !== undefined, fn });
}

/** flood.o's two programs: the one that is not kept is not loaded. */
export type FloodProgram = "flood_ringbuf" | "flood_perfbuf";

/**
 * flood.o with only `program` loaded and attached, filtered on this thread;
 * `rodata` is set on top of target_tgid and target_tid.
 */
export function openFloodObject(program: FloodProgram, rodata: Record<string, RodataValue>): BpfObject {
  const obj = BpfObject.openFile(FLOOD_OBJECT);
  try {
    obj.setRodata({ target_tgid: Deno.pid, target_tid: gettid(), ...rodata });
    obj.setAutoload(program === "flood_ringbuf" ? "flood_perfbuf" : "flood_ringbuf", false);
    obj.load();
    obj.attachAll();
  } catch (e) {
    obj.close();
    throw e;
  }
  return obj;
}

/** Makes `calls` getppid() calls: each emits events_per_call records. */
export function triggerFlood(calls: number): void {
  const f = getppidSymbol();
  for (let i = 0; i < calls; i++) f();
}

/** flood_seq: records the program tried to write (consumed + discarded + lost). */
export function floodProduced(obj: BpfObject): number {
  const bss = obj.maps.find((m) => m.name.endsWith(".bss"));
  assert(bss, "flood.o has a .bss map");
  const v = new Uint8Array(bss.valueSize);
  assert(bss.lookup(new Uint8Array(4), v));
  return Number(new DataView(v.buffer).getBigUint64(0, true));
}

/** One decoded flood record. */
export interface FloodRecord {
  seq: number;
  ts: bigint;
  cpu: number;
  pid: number;
  payloadOk: boolean;
  length: number;
}

/** A handler that decodes every record (allocating freely: this is a test). */
export function floodCollector(): {
  recs: FloodRecord[];
  handler: (v: DataView, o: number, l: number) => void;
} {
  const recs: FloodRecord[] = [];
  return {
    recs,
    handler: (v, o, l) => {
      const seq = v.getBigUint64(o, true);
      recs.push({
        seq: Number(seq),
        ts: v.getBigUint64(o + 8, true),
        cpu: v.getUint32(o + 16, true),
        pid: v.getUint32(o + 20, true),
        payloadOk: v.getBigUint64(o + 24, true) === (seq ^ FLOOD_PAYLOAD_XOR),
        length: l,
      });
    },
  };
}

/**
 * Every record well-formed (of `length` bytes); seqs unique, exactly `expect`,
 * increasing (with ts) per CPU.
 */
export function checkFloodRecords(recs: FloodRecord[], expect: Set<number> | number, length: number): void {
  const want = typeof expect === "number" ? new Set(Array.from({ length: expect }, (_, i) => i)) : expect;
  assertStrictEquals(recs.length, want.size, "record count");
  const seen = new Set<number>();
  const lastSeq = new Map<number, number>();
  const lastTs = new Map<number, bigint>();
  const cpus = numPossibleCpus();
  for (const r of recs) {
    assertStrictEquals(r.length, length);
    assertStrictEquals(r.pid, Deno.pid);
    assert(r.payloadOk, `payload of seq ${r.seq}`);
    assert(r.cpu < cpus, `cpu ${r.cpu}`);
    assert(!seen.has(r.seq), `seq ${r.seq} delivered twice`);
    assert(want.has(r.seq), `unexpected seq ${r.seq}`);
    seen.add(r.seq);
    assert((lastSeq.get(r.cpu) ?? -1) < r.seq, `seq ${r.seq} out of order on cpu ${r.cpu}`);
    assert((lastTs.get(r.cpu) ?? 0n) <= r.ts, `ts of seq ${r.seq} goes back on cpu ${r.cpu}`);
    lastSeq.set(r.cpu, r.seq);
    lastTs.set(r.cpu, r.ts);
  }
}
