import { silentLogger } from "../log/logger.ts";
import { assert, assertEquals } from "../../testing/assert.ts";
import { type Tracer, type TracerContext, TracerManager, UnsupportedError } from "./manager.ts";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fake(
  name: string,
  behaviour: () => Promise<void>,
): Tracer & { starts: number; stops: number; ctx?: TracerContext } {
  const t = {
    name,
    starts: 0,
    stops: 0,
    ctx: undefined as TracerContext | undefined,
    async start(ctx: TracerContext) {
      t.starts++;
      t.ctx = ctx;
      await behaviour();
    },
    stop() {
      t.stops++;
    },
  };
  return t;
}

Deno.test("running, disabled, unsupported and failed tracers each get their state", async () => {
  const m = new TracerManager(silentLogger);
  const ok = fake("ok", () => Promise.resolve());
  const unsupported = fake("nohook", () => Promise.reject(new UnsupportedError("no kprobes")));
  const broken = fake("broken", () => Promise.reject(new Error("load program x: EACCES")));
  const off = fake("off", () => Promise.resolve());
  m.add(ok);
  m.add(unsupported);
  m.add(broken, { restartIntervalSec: 3600 });
  m.add(off, {}, "disabled by BlackList");
  await m.startAll();
  const s = Object.fromEntries(m.statuses().map((x) => [x.name, [x.state, x.reason]]));
  assertEquals(s, {
    broken: ["failed", "load program x: EACCES"],
    nohook: ["unsupported", "no kprobes"],
    off: ["disabled", "disabled by BlackList"],
    ok: ["running", undefined],
  });
  assertEquals(off.starts, 0);
  // A failed start still releases what it acquired.
  assertEquals(broken.stops, 1);
  await m.stopAll();
  assertEquals(m.state("ok")!.state, "stopped");
  assertEquals(ok.stops, 1);
  assertEquals(unsupported.starts, 1, "unsupported tracers are not retried");
});

Deno.test("a failed tracer is restarted after its interval and counts restarts", async () => {
  let attempts = 0;
  const m = new TracerManager(silentLogger);
  const flaky = fake(
    "flaky",
    () => (++attempts < 3 ? Promise.reject(new Error(`attempt ${attempts}`)) : Promise.resolve()),
  );
  m.add(flaky, { restartIntervalSec: 0.02 });
  await m.startAll();
  assertEquals(m.state("flaky")!.state, "failed");
  for (let i = 0; i < 50 && m.state("flaky")!.state !== "running"; i++) await tick(20);
  assertEquals(m.state("flaky")!.state, "running");
  assertEquals(m.state("flaky")!.restarts, 2);
  await m.stopAll();
});

Deno.test("a running tracer that reports failure is stopped, then restarted", async () => {
  const m = new TracerManager(silentLogger);
  const t = fake("reader", () => Promise.resolve());
  m.add(t, { restartIntervalSec: 0.02 });
  await m.startAll();
  t.ctx!.fail(new Error("ring buffer gone"));
  await tick(1);
  assertEquals(m.state("reader")!.state, "failed");
  assertEquals(m.state("reader")!.reason, "ring buffer gone");
  assert(t.stops >= 1);
  for (let i = 0; i < 50 && m.state("reader")!.state !== "running"; i++) await tick(20);
  assertEquals(m.state("reader")!.state, "running");
  assertEquals(t.starts, 2);
  await m.stopAll();
});

Deno.test("stopAll cancels pending restarts", async () => {
  const m = new TracerManager(silentLogger);
  const t = fake("never", () => Promise.reject(new Error("boom")));
  m.add(t, { restartIntervalSec: 0.01 });
  await m.startAll();
  await m.stopAll();
  await tick(50);
  assertEquals(t.starts, 1);
});
