// The AutoTracing runtime with a scripted trigger: documents, cooldown per
// key, one capture at a time, Filter, on-demand captures and their refusals,
// stop during a capture, a failing poll, the counts and their series.

import { assert, assertEquals, assertMatch, assertThrows } from "../../testing/assert.ts";
import type { EventInput } from "../events/sink.ts";
import { silentLogger } from "../log/logger.ts";
import type { Container, ContainerRegistry } from "../pod/container.ts";
import type { TracerContext } from "../tracing/manager.ts";
import { testTracerContext } from "../../testing/tracer.ts";
import { autotracingCollector } from "./metrics.ts";
import { AutoTracingRegistry } from "./registry.ts";
import { AutoTracer } from "./tracer.ts";
import type { CaptureOptions, CaptureResult, Firing, Trigger } from "./trigger.ts";
import { ManualCaptureError } from "./trigger.ts";

function container(id: string, pod = "web-1"): Container {
  return {
    id,
    podUid: "",
    qosFromPath: "burstable",
    runtime: "containerd",
    cgroupPaths: {},
    cgroupId: 7,
    memcgId: 0,
    cpuCgroupId: 0,
    blkioCgroupId: 0,
    initPid: 1,
    netnsInode: 0,
    pod: { name: "web", pod, namespace: "shop", qos: "burstable", type: "normal" },
  };
}

const A = container("a".repeat(64), "web-a");
const B = container("ab" + "0".repeat(62), "web-b");
const registry = (list: Container[]): ContainerRegistry => ({
  list: () => list,
  byId: (id) => list.find((c) => c.id === id),
  byCgroupId: () => undefined,
  byNetns: () => undefined,
});

/** A trigger whose firings and captures the test scripts. */
class Scripted implements Trigger {
  readonly name = "scripted";
  readonly intervalMs = 3_600_000; // polls are driven by the test
  readonly cooldownMs = 1000;
  captureMs: number | undefined = 2000;
  perContainer = false;
  next: Firing[] = [];
  captures: { f: Firing; opts: CaptureOptions }[] = [];
  /** When set, a capture waits for it. */
  gate: Promise<void> | undefined;
  admitted = (_c: Container) => true;
  pollError: Error | undefined;

  poll(): Firing[] {
    if (this.pollError) throw this.pollError;
    const f = this.next;
    this.next = [];
    return f;
  }
  admits(c: Container): boolean {
    return this.admitted(c);
  }
  async capture(f: Firing, opts: CaptureOptions): Promise<CaptureResult> {
    this.captures.push({ f, opts });
    if (this.gate) {
      await Promise.race([
        this.gate,
        new Promise<void>((r) => opts.signal.addEventListener("abort", () => r(), { once: true })),
      ]);
    }
    return { data: { captured: f.key }, samples: 3 };
  }
  manualData(c?: Container): Record<string, unknown> {
    return { reading: c?.id ?? "host" };
  }
}

function setup(opts: { perContainer?: boolean; captureMs?: number | undefined } = {}) {
  const trigger = new Scripted();
  trigger.perContainer = opts.perContainer ?? false;
  if ("captureMs" in opts) trigger.captureMs = opts.captureMs;
  const events: EventInput[] = [];
  let now = 10_000;
  const tracer = new AutoTracer(trigger, {
    events: (e) => events.push(e),
    containers: registry([A, B]),
    now: () => now,
  });
  return { trigger, tracer, events, advance: (ms: number) => now += ms };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

Deno.test("a firing becomes one auto document: firing data then capture data, its container, a fresh tracer_id", async () => {
  const { trigger, tracer, events } = setup({ perContainer: true });
  await tracer.start(testTracerContext());
  try {
    trigger.next = [{ key: A.id, container: A, data: { user: 80, user_threshold: 75 } }];
    await tracer.poll();
    await settle();
    assertEquals(events.length, 1);
    const e = events[0];
    assertEquals([e.tracerName, e.tracerType], ["scripted", "auto"]);
    assertEquals(e.data, { user: 80, user_threshold: 75, captured: A.id });
    assertEquals(e.container?.container_id, A.id);
    assertEquals(e.container?.container_hostname, "web-a");
    assertMatch(e.tracerId!, /^[0-9a-f]{32}$/);
    assert(e.time instanceof Date);
    assertEquals(trigger.captures[0].opts.durationMs, 2000, "RunTracingToolTimeout");
    const s = tracer.stats();
    assertEquals([s.triggers, s.captures.auto, s.samples, s.busy], [1, 1, 3, false]);
  } finally {
    await tracer.stop();
  }
});

Deno.test("cooldown is per key: the same key is suppressed until IntervalTracing has passed, others are not", async () => {
  const { trigger, tracer, events, advance } = setup({ perContainer: true });
  await tracer.start(testTracerContext());
  try {
    const fire = (c: Container) => ({ key: c.id, container: c, data: {} });
    trigger.next = [fire(A)];
    await tracer.poll();
    await settle();
    advance(999);
    trigger.next = [fire(A)];
    await tracer.poll();
    trigger.next = [fire(B)];
    await tracer.poll();
    await settle();
    assertEquals(events.map((e) => e.container?.container_id), [A.id, B.id]);
    advance(1);
    trigger.next = [fire(A)];
    await tracer.poll();
    await settle();
    assertEquals(events.length, 3, "A again once its cooldown passed");
    const s = tracer.stats();
    assertEquals([s.triggers, s.captures.auto, s.suppressed.cooldown, s.suppressed.busy], [4, 3, 1, 0]);
  } finally {
    await tracer.stop();
  }
});

Deno.test("one capture of a kind at a time: a firing while one runs is suppressed as busy, not cooled down", async () => {
  const { trigger, tracer, events } = setup({ perContainer: true });
  let open!: () => void;
  trigger.gate = new Promise((r) => open = r);
  await tracer.start(testTracerContext());
  try {
    trigger.next = [{ key: A.id, container: A, data: {} }, { key: B.id, container: B, data: {} }];
    await tracer.poll();
    assertEquals(tracer.stats().busy, true);
    assertEquals(tracer.stats().suppressed.busy, 1);
    const busy = assertManual(() => tracer.manual({ containerId: B.id }));
    assertEquals([busy.status, busy.message], [409, "scripted: a capture is already running"]);
    open();
    await settle();
    await settle();
    assertEquals(events.length, 1);
    // B was not cooled down: it fires at the next poll.
    trigger.gate = undefined;
    trigger.next = [{ key: B.id, container: B, data: {} }];
    await tracer.poll();
    await settle();
    assertEquals(events.map((e) => e.container?.container_id), [A.id, B.id]);
  } finally {
    await tracer.stop();
  }
});

Deno.test("Filter: a container it rejects is counted as suppressed (filter) and never captured", async () => {
  const { trigger, tracer, events } = setup({ perContainer: true });
  trigger.admitted = (c) => c.id !== A.id;
  await tracer.start(testTracerContext());
  try {
    trigger.next = [{ key: A.id, container: A, data: {} }];
    await tracer.poll();
    await settle();
    assertEquals(events.length, 0);
    assertEquals(tracer.stats().suppressed, { cooldown: 0, filter: 1, busy: 0 });
  } finally {
    await tracer.stop();
  }
});

function assertManual(fn: () => unknown): ManualCaptureError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ManualCaptureError) return err;
    throw err;
  }
  throw new Error("no ManualCaptureError");
}

Deno.test("on-demand capture: tracer_id known at once, tracer_type manual, no cooldown, its own duration", async () => {
  const { trigger, tracer, events } = setup({ perContainer: true });
  assertEquals(assertManual(() => tracer.manual({ containerId: A.id })).status, 409, "not running yet");
  await tracer.start(testTracerContext());
  try {
    // The automatic capture of A starts its cooldown; a manual one of A still runs.
    trigger.next = [{ key: A.id, container: A, data: {} }];
    await tracer.poll();
    await settle();
    const id = tracer.manual({ containerId: "aaaa", durationSec: 1.5 });
    await settle();
    assertEquals(events.length, 2);
    const e = events[1];
    assertEquals([e.tracerType, e.tracerId, e.container?.container_id], ["manual", id, A.id]);
    assertEquals(e.data, { reading: A.id, captured: A.id });
    assertEquals(trigger.captures[1].opts.durationMs, 1500);
    assertEquals(tracer.stats().captures, { auto: 1, manual: 1 });
  } finally {
    await tracer.stop();
  }
});

Deno.test("on-demand capture: what a trigger cannot take is a 400 naming the field", async () => {
  const per = setup({ perContainer: true });
  const host = setup({ perContainer: false, captureMs: undefined });
  await per.tracer.start(testTracerContext());
  await host.tracer.start(testTracerContext());
  try {
    const cases: [AutoTracer, Parameters<AutoTracer["manual"]>[0], RegExp][] = [
      [per.tracer, {}, /^container_id: required/],
      [per.tracer, { containerId: "ffff" }, /^container_id: no container "ffff"/],
      [per.tracer, { containerId: "a" }, /^container_id: "a" matches 2 containers/],
      [host.tracer, { containerId: A.id }, /^container_id: scripted captures the whole host/],
      [host.tracer, { durationSec: 5 }, /^duration: scripted takes a snapshot/],
      [per.tracer, { containerId: A.id, durationSec: 601 }, /^duration: expected seconds > 0 and <= 600/],
    ];
    for (const [t, req, re] of cases) {
      const err = assertManual(() => t.manual(req));
      assertEquals(err.status, 400, err.message);
      assertMatch(err.message, re);
    }
    assertEquals(per.events.length + host.events.length, 0);
    // A snapshot trigger without a duration runs at once.
    host.tracer.manual();
    await settle();
    assertEquals([host.events.length, host.trigger.captures[0].opts.durationMs], [1, 0]);
  } finally {
    await per.tracer.stop();
    await host.tracer.stop();
  }
});

Deno.test("stop during a capture aborts it: no half document, and stop waits for it", async () => {
  const { trigger, tracer, events } = setup();
  trigger.gate = new Promise(() => {}); // never opens: only the abort ends the capture
  await tracer.start(testTracerContext());
  tracer.manual();
  await settle();
  assertEquals(tracer.stats().busy, true);
  await tracer.stop();
  assertEquals([events.length, tracer.stats().busy, tracer.stats().errors], [0, false, 0]);
  assert(trigger.captures[0].opts.signal.aborted);
  assertEquals(assertManual(() => tracer.manual()).status, 409, "stopped");
});

Deno.test("a poll that throws reports the tracer failed (the manager restarts it); the timer polls every Interval", async () => {
  const trigger = new Scripted();
  (trigger as { intervalMs: number }).intervalMs = 5;
  const tracer = new AutoTracer(trigger);
  let polls = 0;
  const poll = trigger.poll.bind(trigger);
  trigger.poll = () => {
    polls++;
    return poll();
  };
  const failed = Promise.withResolvers<Error>();
  const ctx: TracerContext = {
    log: silentLogger,
    signal: new AbortController().signal,
    fail: failed.resolve,
  };
  await tracer.start(ctx);
  try {
    while (polls < 3) await new Promise((r) => setTimeout(r, 5));
    trigger.pollError = new Error("/proc/diskstats: garbled");
    assertEquals((await failed.promise).message, "/proc/diskstats: garbled");
  } finally {
    await tracer.stop();
  }
});

Deno.test("a failing capture is counted and leaves no document", async () => {
  const { trigger, tracer, events } = setup();
  trigger.capture = () => Promise.reject(new Error("profiler: perf_event_open: EACCES"));
  await tracer.start(testTracerContext());
  try {
    tracer.manual();
    await settle();
    assertEquals([events.length, tracer.stats().errors, tracer.stats().busy], [0, 1, false]);
  } finally {
    await tracer.stop();
  }
});

Deno.test("registry and huatuo_bamai_autotracing_* series", async () => {
  const { trigger, tracer } = setup();
  const reg = new AutoTracingRegistry();
  reg.add(tracer);
  reg.disable("memburst", "disabled by BlackList");
  assertThrows(() => reg.add(tracer), /registered twice/);
  assertEquals(reg.names(), ["memburst", "scripted"]);
  assertEquals([reg.get("scripted"), reg.get("memburst")], [tracer, undefined]);
  assertEquals(reg.disabledReason("memburst"), "disabled by BlackList");
  await tracer.start(testTracerContext());
  try {
    trigger.next = [{ key: "host", data: {} }];
    await tracer.poll();
    await settle();
    trigger.next = [{ key: "host", data: {} }];
    await tracer.poll();
  } finally {
    await tracer.stop();
  }
  const samples = await autotracingCollector(reg).collect();
  const value = (name: string, labels: Record<string, string>) =>
    samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
  const t = { tracer: "scripted" };
  assertEquals(value("autotracing_triggers_total", t), 2);
  assertEquals(value("autotracing_captures_total", { ...t, tracer_type: "auto" }), 1);
  assertEquals(value("autotracing_captures_total", { ...t, tracer_type: "manual" }), 0);
  assertEquals(value("autotracing_suppressed_total", { ...t, reason: "cooldown" }), 1);
  assertEquals(value("autotracing_suppressed_total", { ...t, reason: "filter" }), 0);
  assertEquals(value("autotracing_suppressed_total", { ...t, reason: "busy" }), 0);
  assertEquals(value("autotracing_samples_total", t), 3);
  assertEquals(value("autotracing_capture_errors_total", t), 0);
  assertEquals(value("autotracing_capture_running", t), 0);
  assert((value("autotracing_capture_duration_seconds", t) ?? -1) >= 0);
});
