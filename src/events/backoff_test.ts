import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import { Cooldown, StormBackoff } from "./backoff.ts";

const MIN = 60_000;

function clock(): { now: () => number; set: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, set: (ms) => t = ms };
}

Deno.test("StormBackoff: first report, then 10 min, doubling up to 3 h within one storm", () => {
  const c = clock();
  const b = new StormBackoff({ now: c.now });
  const reported: number[] = [];
  const suppressedAtReport: number[] = [];
  // A condition the kernel re-reports every 2 minutes for 10 hours.
  for (let m = 0; m <= 600; m += 2) {
    c.set(m * MIN);
    const d = b.occur();
    if (d.report) {
      reported.push(m);
      suppressedAtReport.push(d.suppressed);
    }
  }
  // Intervals 10, 20, 40, 80, 160, then capped at 180 minutes.
  assertEquals(reported, [0, 10, 30, 70, 150, 310, 490]);
  assertEquals(suppressedAtReport, [0, 4, 9, 19, 39, 79, 89]);
  assertEquals(b.intervalMs, 180 * MIN);
});

Deno.test("StormBackoff: a quiet period ends the storm; shorter gaps do not", () => {
  const c = clock();
  const b = new StormBackoff({ now: c.now });
  c.set(0);
  assert(b.occur().report, "first of a storm");
  c.set(1 * MIN);
  const d = b.occur();
  assert(!d.report, "inside the first 10 minutes");
  assertEquals(d.nextAllowedAt, 10 * MIN);
  // 29 minutes of silence: still the same storm, and 10 minutes have passed: reported, interval now 20.
  c.set(30 * MIN);
  assert(b.occur().report);
  assertEquals(b.intervalMs, 20 * MIN);
  c.set(45 * MIN);
  assert(!b.occur().report, "15 < 20 minutes after the last report");
  // 30 minutes without any occurrence: a new storm, reported at once, interval reset.
  c.set(75 * MIN);
  const fresh = b.occur();
  assert(fresh.report);
  assertEquals(fresh.suppressed, 0, "the new storm starts its own count");
  assertEquals(b.intervalMs, 10 * MIN);
  c.set(76 * MIN);
  assert(!b.occur().report);
});

Deno.test("StormBackoff: occurrences at the same instant report once; options are validated", () => {
  const c = clock();
  const b = new StormBackoff({ now: c.now, firstIntervalMs: 1000, maxIntervalMs: 4000, quietMs: 10_000 });
  assertEquals([b.occur(), b.occur(), b.occur()].map((d) => d.report), [true, false, false]);
  c.set(c.now() + 1000);
  assert(b.occur().report);
  assertEquals(b.intervalMs, 2000);
  assertThrows(() => new StormBackoff({ firstIntervalMs: 0 }), RangeError);
  assertThrows(() => new StormBackoff({ firstIntervalMs: 10, maxIntervalMs: 5 }), RangeError);
  assertThrows(() => new StormBackoff({ quietMs: 0 }), RangeError);
});

Deno.test("Cooldown: at most one report per interval, counting what it held back", () => {
  const c = clock();
  const cd = new Cooldown(1800_000, c.now);
  c.set(0);
  assert(cd.occur().report);
  for (let s = 1; s < 1800; s += 100) {
    c.set(s * 1000);
    assert(!cd.occur().report, `t=${s}s`);
  }
  c.set(1800_000);
  const d = cd.occur();
  assert(d.report);
  assertEquals(d.suppressed, 18);
  assertEquals(d.nextAllowedAt, 3600_000);
  const every = new Cooldown(0, c.now);
  assert(every.occur().report && every.occur().report, "0 disables the cooldown");
  assertThrows(() => new Cooldown(-1), RangeError);
});
