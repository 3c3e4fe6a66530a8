// Real-kernel tests for ffi/ringbuf.ts, fed by bpf/test/flood.bpf.c: every
// getppid() this process makes emits events_per_call records
// {u64 seq, u64 ts, u32 cpu, u32 pid, u64 payload = seq ^ payload_xor}.
// They need root and `./build.sh bpf`; otherwise they are ignored with the
// reason printed once.
import { assert, assertEquals, assertStrictEquals, assertThrows } from "../testing/assert.ts";
import { BpfError, BpfObject, numPossibleCpus } from "./libbpf.ts";
import { RingBufferReader } from "./ringbuf.ts";
import {
  checkFloodRecords,
  FLOOD_OBJECT,
  FLOOD_RECORD_SIZE as RECORD_SIZE,
  floodCollector,
  floodProduced,
  type FloodRecord,
  floodTestSetup,
  openFloodObject,
  triggerFlood,
} from "../testing/flood.ts";

const bpfTest = floodTestSetup("ffi/ringbuf_test.ts");

interface FloodOpts {
  eventsPerCall?: number;
  small?: boolean;
  discardEvery?: number;
}

/** flood.o with only the ring buffer program loaded and attached, filtered on this thread. */
function openFlood(opts: FloodOpts = {}): BpfObject {
  return openFloodObject("flood_ringbuf", {
    events_per_call: opts.eventsPerCall ?? 1,
    small_ring: opts.small ?? false,
    discard_every: opts.discardEvery ?? 0,
  });
}

/** Every record well-formed; seqs unique, exactly `expect`, increasing (with ts) per CPU. */
function checkRecords(recs: FloodRecord[], expect: Set<number> | number): void {
  checkFloodRecords(recs, expect, RECORD_SIZE);
}

bpfTest("ring buffer: every record exactly once, in order per CPU, fields intact", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  using rb = new RingBufferReader(obj.map("flood_rb"), handler);
  assertStrictEquals(rb.size, 16 << 20);
  assertStrictEquals(rb.lostMap, null, "flood_rb has no flood_rb_lost map");
  const N = 20000;
  triggerFlood(N);
  let got = 0;
  for (let i = 0; i < 100 && got < N; i++) got += rb.poll();
  assertStrictEquals(got, N);
  assertStrictEquals(rb.events, N);
  assertStrictEquals(rb.poll(), 0, "nothing left");
  assertStrictEquals(rb.pending, 0);
  assertStrictEquals(floodProduced(obj), N);
  checkRecords(recs, N);
});

bpfTest("ring buffer: bpf_loop emits events_per_call records per trigger", () => {
  using obj = openFlood({ eventsPerCall: 64 });
  const { recs, handler } = floodCollector();
  using rb = new RingBufferReader(obj.map("flood_rb"), handler);
  triggerFlood(1000);
  rb.poll();
  assertStrictEquals(rb.events, 64000);
  checkRecords(recs, 64000);
});

bpfTest("ring buffer: discarded records are skipped", () => {
  using obj = openFlood({ discardEvery: 3 });
  const { recs, handler } = floodCollector();
  using rb = new RingBufferReader(obj.map("flood_rb"), handler);
  triggerFlood(3000);
  assertStrictEquals(rb.poll(), 2000);
  const want = new Set<number>();
  for (let i = 0; i < 3000; i++) if (i % 3 !== 0) want.add(i);
  checkRecords(recs, want);
});

bpfTest("ring buffer: overflow is counted by the program (flood_lost) and events + lost == produced", () => {
  using obj = openFlood({ small: true });
  const { recs, handler } = floodCollector();
  using rb = new RingBufferReader(obj.map("flood_rb_small"), handler, { lostMap: obj.map("flood_lost") });
  assertStrictEquals(rb.size, 4096);
  triggerFlood(1000); // ~100 records of 40 bytes fit in 4 KiB
  rb.poll();
  const lost = rb.lost;
  assert(lost > 0, "records were lost");
  assert(rb.events > 50 && rb.events < 110, `events ${rb.events}`);
  assertStrictEquals(rb.events + lost, 1000);
  assertStrictEquals(floodProduced(obj), 1000);
  // The delivered ones are the first, in order, intact.
  checkRecords(recs, rb.events);
  // Once drained, the ring takes records again.
  triggerFlood(50);
  rb.poll();
  assertStrictEquals(rb.lost, lost);
  assertStrictEquals(rb.events + rb.lost, 1050);
});

bpfTest("ring buffer: the <map>_lost convention is found automatically", () => {
  using obj = openFlood({ small: true });
  using rb = new RingBufferReader(obj.map("flood_rb_small"), () => {});
  assertStrictEquals(rb.lostMap?.name, "flood_rb_small_lost");
  triggerFlood(300);
  const lost = rb.lost;
  assert(lost > 0);
  assertStrictEquals(rb.poll() + lost, 300);
  // Same count as the program's flood_lost.
  using other = new RingBufferReader(obj.map("flood_rb"), () => {}, { lostMap: obj.map("flood_lost") });
  assertStrictEquals(other.lost, lost);
  // No such map: lost stays 0.
  using plain = new RingBufferReader(obj.map("flood_rb"), () => {});
  assertStrictEquals(plain.lostMap, null);
  assertStrictEquals(plain.lost, 0);
});

bpfTest("ring buffer: records crossing the end of a small ring many times read correctly", () => {
  using obj = openFlood({ small: true });
  const { recs, handler } = floodCollector();
  using rb = new RingBufferReader(obj.map("flood_rb_small"), handler, { lostMap: obj.map("flood_lost") });
  const rounds = 50;
  const per = 70; // 70 × 40 bytes: the ring wraps every ~1.5 rounds, mid-record
  for (let i = 0; i < rounds; i++) {
    triggerFlood(per);
    assertStrictEquals(rb.poll(), per);
  }
  assertStrictEquals(rb.lost, 0);
  assert(rounds * per * 40 > 30 * 4096, "wrapped many times");
  checkRecords(recs, rounds * per);
});

bpfTest("ring buffer: poll(budget) hands out at most budget records", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  using rb = new RingBufferReader(obj.map("flood_rb"), handler);
  triggerFlood(1050);
  for (let i = 0; i < 10; i++) assertStrictEquals(rb.poll(100), 100);
  assertStrictEquals(rb.poll(100), 50);
  assertStrictEquals(rb.poll(100), 0);
  checkRecords(recs, 1050);
  assertThrows(() => rb.poll(0), RangeError);
  assertThrows(() => rb.poll(1.5), RangeError);
});

bpfTest("ring buffer: a throwing handler is counted and reported, and reading goes on", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  const reported: unknown[] = [];
  let calls = 0;
  using rb = new RingBufferReader(obj.map("flood_rb"), (v, o, l) => {
    calls++;
    if (calls % 10 === 0) throw new Error(`boom ${calls}`);
    handler(v, o, l);
  }, { onError: (e) => reported.push(e) });
  triggerFlood(1000);
  assertStrictEquals(rb.poll(), 1000);
  assertStrictEquals(rb.events, 1000);
  assertStrictEquals(rb.errors, 100);
  assertStrictEquals(reported.length, 100);
  assert(reported[0] instanceof Error && reported[0].message === "boom 10");
  assertStrictEquals(recs.length, 900);
  // An onError that throws too does not stop it either.
  rb.onError = () => {
    throw new Error("onError fails");
  };
  triggerFlood(100);
  assertStrictEquals(rb.poll(), 100);
  assertStrictEquals(rb.errors, 110);
});

bpfTest("ring buffer: start() drains on its timer within the per-tick budget, stop() stops", async () => {
  using obj = openFlood({ eventsPerCall: 10 });
  const { recs, handler } = floodCollector();
  let maxPerTick = 0;
  let inTick = 0;
  using rb = new RingBufferReader(obj.map("flood_rb"), (v, o, l) => {
    inTick++;
    handler(v, o, l);
  });
  // Measure records per poll through a wrapper around poll().
  const poll = rb.poll.bind(rb);
  rb.poll = (budget?: number): number => {
    inTick = 0;
    const n = poll(budget);
    maxPerTick = Math.max(maxPerTick, inTick);
    return n;
  };
  rb.start(5, 500);
  assert(rb.running);
  triggerFlood(1000); // 10000 records: needs 20 polls of 500
  const deadline = Date.now() + 5000;
  while (rb.events < 10000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  rb.stop();
  assert(!rb.running);
  assertStrictEquals(rb.events, 10000);
  assertStrictEquals(maxPerTick, 500);
  checkRecords(recs, 10000);
  triggerFlood(10);
  await new Promise((r) => setTimeout(r, 30));
  assertStrictEquals(rb.events, 10000, "stopped");
});

bpfTest("ring buffer: the poll loop allocates nothing per record", () => {
  using obj = openFlood({ eventsPerCall: 100 });
  const sums = new Float64Array(2);
  // The kind of handler the agent uses: reads fields, keeps numbers.
  const handler = (v: DataView, o: number, l: number): void => {
    sums[0] += v.getUint32(o, true);
    sums[1] += l;
  };
  using rb = new RingBufferReader(obj.map("flood_rb"), handler);
  // Warm up (JIT) on 100k records.
  triggerFlood(1000);
  assertStrictEquals(rb.poll(), 100000);
  // Then 10 windows of 20k records. A heap measurement across one window is
  // only meaningful when no GC ran inside it, and a GC only runs when the
  // young generation fills up (~1 MB at least): were the loop allocating even
  // 16 bytes per record (320 KB per window), most windows would show it. The
  // non-allocating loop grows the heap by a few hundred bytes (the per-poll
  // BigInts, memoryUsage() itself). Checked against a handler that keeps one
  // small object per record: +800 KB in the windows without a GC.
  triggerFlood(2000);
  const growth: number[] = [];
  for (let w = 0; w < 10; w++) {
    const before = Deno.memoryUsage().heapUsed;
    assertStrictEquals(rb.poll(20000), 20000);
    growth.push(Deno.memoryUsage().heapUsed - before);
  }
  const most = Math.max(...growth);
  assert(most < 64 * 1024, `heap grew by up to ${most} bytes per 20k records: ${growth.join(", ")}`);
  assertStrictEquals(sums[1], 300000 * RECORD_SIZE);
});

bpfTest("ring buffer: close() unmaps; poll and kept views throw instead of crashing", () => {
  using obj = openFlood();
  let kept: DataView | undefined;
  const rb = new RingBufferReader(obj.map("flood_rb"), (v) => {
    kept = v;
  });
  triggerFlood(1);
  assertStrictEquals(rb.poll(), 1);
  rb.close();
  rb.close(); // idempotent
  assertThrows(() => rb.poll(), BpfError);
  assert(kept !== undefined);
  assertThrows(() => kept?.getUint32(0), TypeError);
});

bpfTest("ring buffer: rejects maps of another type and unloaded maps", () => {
  using obj = openFlood();
  assertThrows(() => new RingBufferReader(obj.map("flood_pb"), () => {}), /not BPF_MAP_TYPE_RINGBUF/);
  const unloaded = BpfObject.openFile(FLOOD_OBJECT);
  try {
    assertThrows(() => new RingBufferReader(unloaded.map("flood_rb"), () => {}), /not loaded/);
  } finally {
    unloaded.close();
  }
});

bpfTest("ring buffer: flood_lost is a per-CPU map the reader sums", () => {
  using obj = openFlood({ small: true });
  using rb = new RingBufferReader(obj.map("flood_rb_small"), () => {}, { lostMap: obj.map("flood_lost") });
  triggerFlood(500);
  const lost = rb.lost;
  // Cross-check against a direct per-CPU read.
  const m = obj.map("flood_lost");
  const v = new Uint8Array(m.valueStride);
  assert(m.lookup(new Uint8Array(4), v));
  const dv = new DataView(v.buffer);
  let sum = 0n;
  for (let i = 0; i < numPossibleCpus(); i++) sum += dv.getBigUint64(i * 8, true);
  assertEquals(BigInt(lost), sum);
  assertStrictEquals(rb.poll() + lost, 500);
});

bpfTest("ring buffer: a long poll gives space back to producers as it goes (every quarter ring)", () => {
  using obj = openFlood({ small: true });
  let produce = true;
  using rb = new RingBufferReader(obj.map("flood_rb_small"), () => {
    if (produce) triggerFlood(1); // one new record per record handled
  });
  triggerFlood(100); // 4000 of 4096 bytes
  assertStrictEquals(rb.lost, 0);
  assertStrictEquals(rb.poll(), 100);
  // Storing consumer_pos only at the end would leave room for 2 of the 100
  // new records (98 lost); with a store every 1 KiB about 24 are lost.
  const lost = rb.lost;
  assert(lost > 0 && lost < 50, `lost ${lost}`);
  produce = false;
  rb.poll();
  assertStrictEquals(rb.events + lost, 200);
});
