// RecordReader and the per-CPU sum on hand-built bytes.

import { assertEquals, assertThrows } from "../../testing/assert.ts";
import { recordLayout, RecordReader, ShortRecordError, sumPerCpu } from "./record.ts";

const LAYOUT = recordLayout("test.o", "test_event", 24, { id: 0, comm: 4, stack: 8 });

Deno.test("RecordReader: bounds are the ring's length; a record shorter than its struct is rejected", () => {
  const v = new DataView(new ArrayBuffer(64));
  v.setUint32(8, 7, true);
  new Uint8Array(v.buffer).set(new TextEncoder().encode("ab"), 12);
  const r = RecordReader.of(LAYOUT, v, 8, 24);
  assertEquals([r.length, r.u32(LAYOUT.fields.id), r.cString(LAYOUT.fields.comm, 4)], [24, 7, "ab"]);
  assertThrows(() => r.u64(20), RangeError); // past the record, though inside the buffer
  assertThrows(() => RecordReader.of(LAYOUT, v, 8, 23), ShortRecordError);
  assertThrows(() => RecordReader.of(LAYOUT, v, 48, 24), RangeError); // past the buffer
});

Deno.test("RecordReader.stack: frames up to the first zero, within bpf_get_stack's byte count", () => {
  const v = new DataView(new ArrayBuffer(40));
  v.setBigUint64(8, 0xffffffff81000232n, true);
  v.setBigUint64(16, 0xffffffff81000110n, true);
  const r = new RecordReader(v, 0, 40);
  assertEquals(r.stack(8, 4), [0xffffffff81000232n, 0xffffffff81000110n]);
  assertEquals(r.stack(8, 4, 8), [0xffffffff81000232n]);
  assertEquals(r.stack(8, 4, -14), []); // -EFAULT
});

Deno.test("sumPerCpu adds one u64 per CPU slot", () => {
  const b = new Uint8Array(48); // 3 CPUs × a 16-byte value {u64 a; u64 b}
  const v = new DataView(b.buffer);
  [1n, 2n, 3n].forEach((x, cpu) => {
    v.setBigUint64(cpu * 16, x, true);
    v.setBigUint64(cpu * 16 + 8, x * 10n, true);
  });
  assertEquals([sumPerCpu(b, 16), sumPerCpu(b, 16, 8)], [6n, 60n]);
  assertEquals(sumPerCpu(new Uint8Array(new BigUint64Array([5n, 6n]).buffer)), 11n);
});
