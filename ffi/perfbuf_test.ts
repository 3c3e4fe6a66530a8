// Real-kernel tests for ffi/perfbuf.ts, fed by bpf/test/flood.bpf.c: every
// getppid() this process makes emits events_per_call records
// {u64 seq, u64 ts, u32 cpu, u32 pid, u64 payload = seq ^ payload_xor}.
// They need root and `./build.sh bpf`; otherwise they are ignored with the
// reason printed once.
import { assert, assertEquals, assertStrictEquals, assertThrows } from "../testing/assert.ts";
import { BpfError, BpfObject, numPossibleCpus } from "./libbpf.ts";
import { ENODEV, ErrnoError, pageSize, perfEventOpen } from "./libc.ts";
import { PerfBufferReader } from "./perfbuf.ts";
import {
  checkFloodRecords,
  FLOOD_OBJECT,
  FLOOD_RECORD_SIZE,
  floodCollector,
  floodProduced,
  type FloodRecord,
  floodTestSetup,
  openFloodObject,
  triggerFlood,
} from "../testing/flood.ts";

const RAW_SIZE = FLOOD_RECORD_SIZE + 4; // round_up(4 + 32, 8) - 4: the kernel's padding
// Bytes per sample in the ring: header 8 + u32 size + 36.
const SAMPLE_BYTES = 48;

const bpfTest = floodTestSetup("ffi/perfbuf_test.ts");

/** flood.o with only the perf buffer program loaded and attached, filtered on this thread. */
function openFlood(eventsPerCall = 1): BpfObject {
  return openFloodObject("flood_perfbuf", { events_per_call: eventsPerCall });
}

/** Every record well-formed; seqs unique, exactly `expect`, increasing (with ts) per CPU. */
function checkRecords(recs: FloodRecord[], expect: Set<number> | number): void {
  // The kernel pads raw samples so that u32 size + data is a multiple of 8.
  checkFloodRecords(recs, expect, RAW_SIZE);
}

/** Polls until nothing is left (the rings of every CPU). */
function drain(pb: PerfBufferReader): number {
  let total = 0;
  for (let n = pb.poll(); n > 0; n = pb.poll()) total += n;
  return total;
}

/** The program's own count of failed bpf_perf_event_output calls. */
function bpfLost(obj: BpfObject): number {
  const m = obj.map("flood_lost");
  const v = new Uint8Array(m.valueStride);
  assert(m.lookup(new Uint8Array(4), v));
  const dv = new DataView(v.buffer);
  let sum = 0;
  for (let i = 0; i < numPossibleCpus(); i++) sum += Number(dv.getBigUint64(i * 8, true));
  return sum;
}

bpfTest("perf buffer: every record exactly once, in order per CPU, fields intact", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: 256 });
  assertEquals(pb.cpus, Array.from({ length: numPossibleCpus() }, (_, i) => i));
  assertEquals(pb.skippedCpus, []);
  assertStrictEquals(pb.ringSize, 256 * pageSize());
  const N = 20000; // 960 KB: fits in one CPU's 1 MiB ring
  triggerFlood(N);
  assertStrictEquals(drain(pb), N);
  assertStrictEquals(pb.events, N);
  assertStrictEquals(pb.lost, 0);
  assertStrictEquals(floodProduced(obj), N);
  checkRecords(recs, N);
});

bpfTest("perf buffer: bpf_loop emits events_per_call records per trigger", () => {
  using obj = openFlood(16);
  const { recs, handler } = floodCollector();
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: 512 });
  triggerFlood(2000);
  assertStrictEquals(drain(pb), 32000);
  checkRecords(recs, 32000);
});

bpfTest("perf buffer: overflow arrives as PERF_RECORD_LOST and events + lost == produced", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: 1 });
  const perRing = Math.floor(pageSize() / SAMPLE_BYTES);
  triggerFlood(1000); // at most ~85 fit in each CPU's one page
  drain(pb);
  assert(pb.events > 0 && pb.events <= perRing * numPossibleCpus(), `events ${pb.events}`);
  // The kernel writes the LOST record with the next event on that CPU, once
  // there is room again: keep producing one at a time until it has arrived.
  let extra = 0;
  while (pb.events + pb.lost !== floodProduced(obj) && extra < 1000) {
    triggerFlood(1);
    extra++;
    drain(pb);
  }
  const total = 1000 + extra;
  assertStrictEquals(floodProduced(obj), total);
  assert(pb.lost > 0, "PERF_RECORD_LOST seen");
  assertStrictEquals(pb.events + pb.lost, total);
  // The program saw the same failures (bpf_perf_event_output returned -ENOSPC).
  assertStrictEquals(bpfLost(obj), pb.lost);
  const delivered = new Set(recs.map((r) => r.seq));
  checkRecords(recs, delivered);
  assertStrictEquals(delivered.size, pb.events);
});

bpfTest("perf buffer: records wrapping around the end of the ring are reassembled", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: 1 });
  const rounds = 60;
  const per = 60; // 60 × 48 bytes per round in a 4 KiB ring (85.33 records)
  for (let i = 0; i < rounds; i++) {
    triggerFlood(per);
    assertStrictEquals(drain(pb), per);
  }
  assertStrictEquals(pb.lost, 0);
  assert(pb.wrapped > 0, "some records wrapped");
  // The whole run is 42 ring lengths: whichever CPUs ran it, the rings wrapped several times.
  assert(pb.wrapped >= 5, `wrapped ${pb.wrapped}`);
  checkRecords(recs, rounds * per);
});

bpfTest("perf buffer: poll(budget) hands out at most budget records", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: 64 });
  triggerFlood(1050);
  for (let i = 0; i < 10; i++) assertStrictEquals(pb.poll(100), 100);
  assertStrictEquals(pb.poll(100), 50);
  assertStrictEquals(pb.poll(100), 0);
  checkRecords(recs, 1050);
  assertThrows(() => pb.poll(0), RangeError);
});

bpfTest("perf buffer: a throwing handler is counted and reported, and reading goes on", () => {
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  const reported: unknown[] = [];
  let calls = 0;
  using pb = new PerfBufferReader(obj.map("flood_pb"), (v, o, l) => {
    calls++;
    if (calls % 10 === 0) throw new Error(`boom ${calls}`);
    handler(v, o, l);
  }, { onError: (e) => reported.push(e), pageCount: 64 });
  triggerFlood(1000);
  assertStrictEquals(drain(pb), 1000);
  assertStrictEquals(pb.errors, 100);
  assertStrictEquals(reported.length, 100);
  assertStrictEquals(recs.length, 900);
});

bpfTest("perf buffer: start() drains on its timer within the per-tick budget", async () => {
  using obj = openFlood(10);
  const { recs, handler } = floodCollector();
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: 256 });
  let maxPerPoll = 0;
  const poll = pb.poll.bind(pb);
  pb.poll = (budget?: number): number => {
    const n = poll(budget);
    maxPerPoll = Math.max(maxPerPoll, n);
    return n;
  };
  pb.start(5, 300);
  triggerFlood(1000);
  const deadline = Date.now() + 5000;
  while (pb.events < 10000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  pb.stop();
  assertStrictEquals(pb.events, 10000);
  assertStrictEquals(maxPerPoll, 300);
  checkRecords(recs, 10000);
});

bpfTest("perf buffer: the poll loop allocates nothing per record", () => {
  using obj = openFlood(50);
  const sums = new Float64Array(2);
  const handler = (v: DataView, o: number, l: number): void => {
    sums[0] += v.getUint32(o, true);
    sums[1] += l;
  };
  // 16 MiB per CPU: the 200k measured records fit even if one CPU made them all.
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, { pageCount: 4096 });
  triggerFlood(1000); // warm-up: 50k records
  assertStrictEquals(drain(pb), 50000);
  // Same method as ffi/ringbuf_test.ts: 10 windows of 20k records; an
  // allocation per record would show in the windows without a GC.
  triggerFlood(4000);
  const growth: number[] = [];
  for (let w = 0; w < 10; w++) {
    const before = Deno.memoryUsage().heapUsed;
    assertStrictEquals(pb.poll(20000), 20000);
    growth.push(Deno.memoryUsage().heapUsed - before);
  }
  const most = Math.max(...growth);
  assert(most < 64 * 1024, `heap grew by up to ${most} bytes per 20k records: ${growth.join(", ")}`);
  assertStrictEquals(sums[1], 250000 * RAW_SIZE);
});

bpfTest("perf buffer: close() unhooks the map; poll and kept views throw", () => {
  using obj = openFlood();
  let kept: DataView | undefined;
  const pb = new PerfBufferReader(obj.map("flood_pb"), (v) => {
    kept = v;
  }, { pageCount: 1 });
  triggerFlood(1);
  assertStrictEquals(drain(pb), 1);
  pb.close();
  pb.close();
  assertThrows(() => pb.poll(), BpfError);
  assertThrows(() => kept?.getUint32(0), TypeError);
  // No fd in the map any more: the program's output fails (and counts it).
  const before = bpfLost(obj);
  triggerFlood(5);
  assertStrictEquals(bpfLost(obj), before + 5);
});

bpfTest("perf buffer: rejects maps of another type, unloaded maps and bad page counts", () => {
  using obj = openFlood();
  assertThrows(
    () => new PerfBufferReader(obj.map("flood_rb"), () => {}),
    /not BPF_MAP_TYPE_PERF_EVENT_ARRAY/,
  );
  assertThrows(() => new PerfBufferReader(obj.map("flood_pb"), () => {}, { pageCount: 3 }), /power of two/);
  const unloaded = BpfObject.openFile(FLOOD_OBJECT);
  try {
    assertThrows(() => new PerfBufferReader(unloaded.map("flood_pb"), () => {}), /not loaded/);
  } finally {
    unloaded.close();
  }
});

bpfTest("perf buffer: an offline CPU (ENODEV) is skipped with one warning; the others are read", () => {
  if (numPossibleCpus() < 2) {
    console.log("  (needs 2+ possible CPUs; skipped)");
    return;
  }
  using obj = openFlood();
  const { recs, handler } = floodCollector();
  const warnings: string[] = [];
  const offline = numPossibleCpus() - 1;
  using pb = new PerfBufferReader(obj.map("flood_pb"), handler, {
    pageCount: 64,
    onWarn: (m) => warnings.push(m),
    openEvent: (attr, cpu) => {
      if (cpu === offline) throw new ErrnoError(`perf_event_open(cpu ${cpu})`, ENODEV);
      return perfEventOpen(attr, -1, cpu, -1, 8);
    },
  });
  assertEquals(pb.skippedCpus, [offline]);
  assert(!pb.cpus.includes(offline));
  assertStrictEquals(warnings.length, 1);
  assert(warnings[0].includes(`CPUs ${offline} are offline`), warnings[0]);
  // Events made on the skipped CPU find no fd in the map: the program counts them.
  triggerFlood(2000);
  drain(pb);
  assertStrictEquals(pb.events + bpfLost(obj), 2000);
  checkRecords(recs, new Set(recs.map((r) => r.seq)));
  assert(recs.every((r) => r.cpu !== offline));
});

bpfTest(
  "perf buffer: any other perf_event_open failure fails the constructor and releases what was set up",
  () => {
    using obj = openFlood();
    const opened: number[] = [];
    assertThrows(
      () =>
        new PerfBufferReader(obj.map("flood_pb"), () => {}, {
          pageCount: 1,
          openEvent: (attr, cpu) => {
            if (cpu === numPossibleCpus() - 1) throw new ErrnoError("perf_event_open", 13);
            const fd = perfEventOpen(attr, -1, cpu, -1, 8);
            opened.push(fd);
            return fd;
          },
        }),
      /EACCES/,
    );
    // The perf events of the CPUs set up before the failure are closed again…
    assert(opened.length > 0);
    for (const fd of opened) {
      let target = "closed";
      try {
        target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
      } catch {
        // closed
      }
      assert(!target.includes("perf_event"), `fd ${fd} still open: ${target}`);
    }
    // …and the map entries removed: the program's output finds no fd and counts a loss.
    const before = bpfLost(obj);
    triggerFlood(10);
    assertStrictEquals(bpfLost(obj), before + 10);
  },
);

bpfTest("perf buffer: a long poll gives space back to the kernel as it goes (every quarter ring)", () => {
  using obj = openFlood();
  let produce = true;
  using pb = new PerfBufferReader(obj.map("flood_pb"), () => {
    if (produce) triggerFlood(1); // one new record per record handled
  }, { pageCount: 1 });
  triggerFlood(80); // 3840 of 4096 bytes (if this thread stayed on one CPU)
  assertStrictEquals(bpfLost(obj), 0);
  assertStrictEquals(pb.poll(), 80);
  // Storing data_tail only at the end would leave room for 5 of the 80 new
  // records (75 lost); with a store every 1 KiB about 20 are lost.
  const lost = bpfLost(obj);
  assert(lost < 40, `lost ${lost}`);
  produce = false;
  drain(pb);
  assertStrictEquals(pb.events + lost, 160);
});
