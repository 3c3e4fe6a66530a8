// WindowSampler: readings on its own timer, the last complete window for
// every reader, since-start before the first window completes, read errors
// surfaced and recovered; acquireCpuWindow: one shared /proc/stat sampler.
import { assert, assertEquals, assertStrictEquals, assertThrows } from "../../testing/assert.ts";
import { HostFs, SourceError } from "./fs.ts";
import { acquireCpuWindow } from "./stat_window.ts";
import { WindowSampler } from "./window.ts";

/** A sampler over a counter the test sets; the timer is far out so only sample() advances it. */
function counterSampler(elapsed?: (a: number, b: number) => boolean) {
  const src = { value: 0, fail: undefined as Error | undefined, reads: 0 };
  const sampler = new WindowSampler<number>({
    read: () => {
      src.reads++;
      if (src.fail) throw src.fail;
      return src.value;
    },
    windowMs: 3_600_000,
    elapsed,
  });
  return { src, sampler };
}

Deno.test("WindowSampler: first reading at construction; then windows of consecutive readings", () => {
  const { src, sampler } = counterSampler();
  try {
    assertStrictEquals(src.reads, 1);
    assertEquals(sampler.window(), { start: undefined, end: 0 });
    src.value = 10;
    // Readers between readings all get the same window, however often they ask.
    assertEquals(sampler.window(), { start: undefined, end: 0 });
    sampler.sample();
    for (let i = 0; i < 3; i++) assertEquals(sampler.window(), { start: 0, end: 10 });
    src.value = 25;
    sampler.sample();
    assertEquals(sampler.window(), { start: 10, end: 25 });
    assertStrictEquals(src.reads, 3, "window() never reads");
  } finally {
    sampler.close();
  }
});

Deno.test("WindowSampler: a reading with no time passed keeps the window (static fixtures)", () => {
  const { src, sampler } = counterSampler((a, b) => a !== b);
  try {
    src.value = 5;
    sampler.sample();
    assertEquals(sampler.window(), { start: 0, end: 5 });
    sampler.sample();
    assertEquals(sampler.window(), { start: 0, end: 5 });
  } finally {
    sampler.close();
  }
});

Deno.test("WindowSampler: a failed read is thrown to readers until a read succeeds; the window spans the gap", () => {
  const { src, sampler } = counterSampler();
  try {
    src.value = 10;
    sampler.sample();
    src.fail = new SourceError("/proc/stat", "gone");
    sampler.sample();
    assertThrows(() => sampler.window(), /\/proc\/stat: gone/);
    src.fail = undefined;
    src.value = 40;
    sampler.sample();
    assertEquals(sampler.window(), { start: 10, end: 40 });
  } finally {
    sampler.close();
  }
  // The first read failing: an error, not an empty window.
  const broken = new WindowSampler<number>({
    read: () => {
      throw new Error("unreadable");
    },
    windowMs: 3_600_000,
  });
  try {
    assertThrows(() => broken.window(), /unreadable/);
  } finally {
    broken.close();
  }
});

Deno.test("WindowSampler: its timer takes the readings, and close() stops it", async () => {
  let reads = 0;
  const sampler = new WindowSampler<number>({ read: () => ++reads, windowMs: 20 });
  await new Promise((r) => setTimeout(r, 110));
  sampler.close();
  const after = reads;
  assert(after >= 3, `${after} readings in 110 ms at one per 20 ms`);
  const w = sampler.window();
  assertEquals(w.end - w.start!, 1);
  await new Promise((r) => setTimeout(r, 60));
  assertStrictEquals(reads, after, "no reading after close()");
  sampler.close(); // twice is fine
});

Deno.test("acquireCpuWindow: one shared sampler per /proc/stat, stopped by the last release", async () => {
  const root = await Deno.makeTempDir({ prefix: "huatuo-window-" });
  try {
    await Deno.mkdir(`${root}/proc`);
    const stat = `${root}/proc/stat`;
    await Deno.writeTextFile(stat, "cpu  60 0 20 120 0 0 0 0 0 0\n");
    const fs = new HostFs(root);
    const a = acquireCpuWindow(fs);
    await Deno.writeTextFile(stat, "cpu  90 0 30 180 0 0 0 0 0 0\n");
    const b = acquireCpuWindow(fs);
    // b joined a's sampler: the same first reading, not a new one.
    assertEquals(b.window(), a.window());
    assertEquals(a.window().end.user, 60);
    a.release();
    a.release(); // a second release of one handle does not stop b's sampler
    assertEquals(b.window().end.user, 60);
    b.release();
    // All released: a new user starts a new sampler with a fresh reading.
    const c = acquireCpuWindow(fs);
    assertEquals(c.window(), { start: undefined, end: { ...c.window().end, user: 90 } });
    c.release();
    await Deno.remove(stat);
    const d = acquireCpuWindow(fs);
    assertThrows(() => d.window(), /proc\/stat: no such file or directory/);
    d.release();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
