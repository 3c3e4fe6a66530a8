// softlockup: the watchdog line parser and the record decoder; on the real
// kernel (root) an INJECTED watchdog line (written to /dev/kmsg: not a real
// soft lockup, which cannot be caused safely) arrives through printk:console
// as a record with its text.
import { setLibbpfLogger } from "../../../ffi/libbpf.ts";
import { BpfRuntime, BpfTracer } from "../../bpf/tracer.ts";
import { readCounter } from "../../bpf/zones.ts";
import { silentLogger } from "../../log/logger.ts";
import { assertEquals, assertThrows } from "../../../testing/assert.ts";
import { ShortRecordError } from "../../bpf/record.ts";
import { HUNGTASK_RECORD, hungtaskRecord } from "../hungtask/hungtask.ts";
import {
  parseSoftlockupLine,
  SOFTLOCKUP_RECORD,
  SOFTLOCKUP_TEXT_MAX,
  softlockupRecord,
  softlockupTracerData,
} from "./softlockup.ts";

const OUT = new URL("../../../_output/bpf", import.meta.url).pathname;

Deno.test("parseSoftlockupLine: the watchdog's report, with or without a time stamp; odd comms", () => {
  assertEquals(
    parseSoftlockupLine("watchdog: BUG: soft lockup - CPU#15 stuck for 22s! [kworker/15:0:12345]"),
    {
      cpu: 15,
      stuckSeconds: 22,
      comm: "kworker/15:0",
      pid: 12345,
    },
  );
  // Before 5.15 printk:console carried the time stamp; 4.x said "NMI watchdog:".
  assertEquals(
    parseSoftlockupLine("[ 1234.567890] NMI watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [a b]c:1]"),
    { cpu: 0, stuckSeconds: 23, comm: "a b]c", pid: 1 },
  );
  assertEquals(parseSoftlockupLine("watchdog: BUG: soft lockup - CPU#1 stuck for 3s! [x:y:9]\n"), {
    cpu: 1,
    stuckSeconds: 3,
    comm: "x:y",
    pid: 9,
  });
  assertEquals(parseSoftlockupLine("watchdog: BUG: soft lockup - CPU#1 stuck for 3s!"), undefined);
  assertEquals(parseSoftlockupLine("an ordinary line"), undefined);
});

function softRecord(cpu: number, text: string, lenOverride?: number): DataView {
  const buf = new ArrayBuffer(4 + SOFTLOCKUP_RECORD.size);
  const v = new DataView(buf, 4);
  const bytes = new TextEncoder().encode(text).subarray(0, SOFTLOCKUP_TEXT_MAX);
  v.setUint32(0, cpu, true);
  v.setUint32(4, lenOverride ?? bytes.length, true);
  new Uint8Array(buf, 4 + 8).set(bytes);
  // Stale bytes of an earlier, longer message after the valid part must not leak in.
  new Uint8Array(buf, 4 + 8 + bytes.length).fill(0x41);
  return v;
}

Deno.test("softlockupRecord decodes struct softlockup_event; tracer_data falls back to the printing CPU", () => {
  assertEquals(SOFTLOCKUP_RECORD.size, 200);
  const line = "watchdog: BUG: soft lockup - CPU#3 stuck for 26s! [stress-ng:4242]";
  const r = softlockupRecord(softRecord(3, line), 0, SOFTLOCKUP_RECORD.size);
  assertEquals(r, { cpu: 3, text: line });
  assertEquals(softlockupTracerData(r), { cpu: 3, pid: 4242, comm: "stress-ng" });
  // A line cut by the 192-byte capture (a long prefix) keeps the CPU the BPF program saw.
  const cut = softlockupRecord(
    softRecord(1, `${"x".repeat(180)}watchdog: BUG: soft lockup - CPU#1 stuck`),
    0,
    SOFTLOCKUP_RECORD.size,
  );
  assertEquals(cut.text.length, SOFTLOCKUP_TEXT_MAX);
  assertEquals(softlockupTracerData(cut), { cpu: 1, pid: 0, comm: "" });
  // A length beyond the text field is clamped.
  assertEquals(
    softlockupRecord(softRecord(0, "ab", 1000), 0, SOFTLOCKUP_RECORD.size).text.length,
    SOFTLOCKUP_TEXT_MAX,
  );
  // The ring's length counts: a short record is rejected even inside a large buffer.
  assertThrows(() => softlockupRecord(softRecord(0, "x"), 0, SOFTLOCKUP_RECORD.size - 1), ShortRecordError);
  assertThrows(() => softlockupRecord(softRecord(0, "x"), 8, SOFTLOCKUP_RECORD.size), RangeError);
});

Deno.test("hungtaskRecord decodes struct hungtask_event", () => {
  const v = new DataView(new ArrayBuffer(40));
  v.setUint32(8, 2567042, true);
  new Uint8Array(v.buffer, 12, 16).set(new TextEncoder().encode("kworker/u48:2"));
  v.setBigUint64(32, 987654321n, true);
  assertEquals(hungtaskRecord(v, 8, HUNGTASK_RECORD.size), {
    pid: 2567042,
    comm: "kworker/u48:2",
    ts: 987654321n,
  });
  assertThrows(() => hungtaskRecord(v, 8, HUNGTASK_RECORD.size - 1), ShortRecordError);
});

const skip = Deno.uid() !== 0 ? "needs root" : (() => {
  try {
    Deno.statSync(`${OUT}/softlockup.o`);
    return undefined;
  } catch {
    return "run ./build.sh bpf first";
  }
})();
if (skip) console.warn(`softlockup_test: real-kernel test skipped (${skip})`);
else setLibbpfLogger(() => {});

Deno.test({
  name:
    "softlockup.o: an INJECTED watchdog line (/dev/kmsg, not a real lockup) arrives as a record with its text",
  ignore: skip !== undefined,
  async fn() {
    const got: { cpu: number; text: string }[] = [];
    const t = new BpfTracer({
      name: "softlockup",
      object: "softlockup.o",
      buffers: [{ map: "softlockup_events", onRecord: (v, o, l) => got.push(softlockupRecord(v, o, l)) }],
    }, new BpfRuntime(OUT));
    await t.start({ log: silentLogger, signal: new AbortController().signal, fail: () => {} });
    try {
      const before = readCounter(t.object.map("softlockup_count"));
      const line = `watchdog: BUG: soft lockup - CPU#1 stuck for 41s! [huatuo-it inj:${Deno.pid}]`;
      await Deno.writeTextFile("/dev/kmsg", `<4>${line}\n`);
      await Deno.writeTextFile(
        "/dev/kmsg",
        "<6>huatuo-it: BUG: soft lockup - CPU#1 stuck for 41s! [decoy:1]\n",
      );
      const deadline = Date.now() + 2000;
      while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50));
      assertEquals(readCounter(t.object.map("softlockup_count")) - before, 1);
      const mine = got.filter((g) => g.text.includes(`[huatuo-it inj:${Deno.pid}]`));
      assertEquals(mine.length, 1, JSON.stringify(got));
      // /dev/kmsg stores the message without its trailing newline.
      assertEquals(mine[0].text.replace(/\n$/, ""), line);
      assertEquals(softlockupTracerData(mine[0]), { cpu: 1, pid: Deno.pid, comm: "huatuo-it inj" });
    } finally {
      t.stop();
    }
  },
});
