import { assert, assertEquals, assertMatch, assertStrictEquals } from "../../testing/assert.ts";
import {
  formatTracerTime,
  formatUploadedTime,
  localOffsetMinutes,
  newDocument,
  newTracerId,
} from "./document.ts";

// 2025-06-11 08:05:16.251 UTC == 16:05:16.251 at +08:00, the seed's example.
const SEED_INSTANT = new Date(Date.UTC(2025, 5, 11, 8, 5, 16, 251));

Deno.test("formatTracerTime matches the seed example at +0800", () => {
  assertStrictEquals(formatTracerTime(SEED_INSTANT, 480), "2025-06-11 16:05:16.251 +0800");
});

Deno.test("formatTracerTime handles negative, half-hour and zero offsets and date rollover", () => {
  assertStrictEquals(formatTracerTime(SEED_INSTANT, -300), "2025-06-11 03:05:16.251 -0500");
  assertStrictEquals(formatTracerTime(SEED_INSTANT, 330), "2025-06-11 13:35:16.251 +0530");
  assertStrictEquals(formatTracerTime(SEED_INSTANT, 0), "2025-06-11 08:05:16.251 +0000");
  const lateUtc = new Date(Date.UTC(2025, 11, 31, 20, 0, 0, 7));
  assertStrictEquals(formatTracerTime(lateUtc, 480), "2026-01-01 04:00:00.007 +0800");
  assertStrictEquals(formatTracerTime(lateUtc, -570), "2025-12-31 10:30:00.007 -0930");
});

Deno.test("formatUploadedTime is RFC 3339 with nanoseconds like the seed example", () => {
  assertStrictEquals(
    formatUploadedTime(SEED_INSTANT, 480, 152_703),
    "2025-06-11T16:05:16.251152703+08:00",
  );
});

Deno.test("formatUploadedTime trims trailing zeros like Go's RFC3339Nano", () => {
  assertStrictEquals(formatUploadedTime(SEED_INSTANT, 480), "2025-06-11T16:05:16.251+08:00");
  const whole = new Date(Date.UTC(2025, 5, 11, 8, 5, 16, 0));
  assertStrictEquals(formatUploadedTime(whole, 0), "2025-06-11T08:05:16+00:00");
  const tenMs = new Date(Date.UTC(2025, 5, 11, 8, 5, 16, 10));
  assertStrictEquals(formatUploadedTime(tenMs, -300), "2025-06-11T03:05:16.01-05:00");
});

Deno.test("localOffsetMinutes is the negated getTimezoneOffset", () => {
  const d = new Date();
  assertStrictEquals(localOffsetMinutes(d), -d.getTimezoneOffset());
});

Deno.test("newTracerId is 32 lowercase hex digits and unique", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const id = newTracerId();
    assertMatch(id, /^[0-9a-f]{32}$/);
    ids.add(id);
  }
  assertStrictEquals(ids.size, 1000);
});

Deno.test("newDocument fills every common field with the seed formats", () => {
  const doc = newDocument({
    hostname: "host-1",
    region: "az-1",
    tracerName: "softirq_tracing",
    tracerType: "auto",
    data: { offtime: 237328905, comm: "agent" },
    now: SEED_INSTANT,
    offsetMinutes: 480,
  });
  const { tracer_id, ...rest } = doc;
  assertMatch(tracer_id, /^[0-9a-f]{32}$/);
  assertEquals(rest, {
    hostname: "host-1",
    region: "az-1",
    uploaded_time: "2025-06-11T16:05:16.251+08:00",
    time: "2025-06-11 16:05:16.251 +0800",
    tracer_name: "softirq_tracing",
    tracer_time: "2025-06-11 16:05:16.251 +0800",
    tracer_type: "auto",
    tracer_data: { offtime: 237328905, comm: "agent" },
  });
  assert(!("container_id" in doc), "host events carry no container fields");
});

Deno.test("newDocument copies only the known container fields", () => {
  const doc = newDocument({
    hostname: "h",
    region: "r",
    tracerName: "oom",
    tracerType: "manual",
    data: {},
    container: {
      container_id: "abc123",
      container_hostname: "pod-a",
      container_host_namespace: "default",
      container_type: "normal",
      container_qos: "burstable",
    },
    now: SEED_INSTANT,
    offsetMinutes: 0,
  });
  assertStrictEquals(doc.container_id, "abc123");
  assertStrictEquals(doc.container_hostname, "pod-a");
  assertStrictEquals(doc.container_host_namespace, "default");
  assertStrictEquals(doc.container_type, "normal");
  assertStrictEquals(doc.container_qos, "burstable");
  assertStrictEquals(doc.tracer_type, "manual");
  assertStrictEquals(doc.time, "2025-06-11 08:05:16.251 +0000");
});

Deno.test("newDocument omits empty container values", () => {
  const doc = newDocument({
    hostname: "h",
    region: "r",
    tracerName: "oom",
    tracerType: "auto",
    data: {},
    container: { container_id: "abc", container_qos: "" },
  });
  assertStrictEquals(doc.container_id, "abc");
  assert(!("container_qos" in doc));
});

Deno.test("newDocument defaults to now in the local offset", () => {
  const before = Date.now();
  const doc = newDocument({ hostname: "h", region: "r", tracerName: "t", tracerType: "auto", data: {} });
  const parsed = Date.parse(doc.uploaded_time);
  assert(parsed >= before - 1 && parsed <= Date.now() + 1, doc.uploaded_time);
  assertMatch(doc.tracer_time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4}$/);
  assertStrictEquals(doc.time, doc.tracer_time);
});

Deno.test("documents round-trip through JSON", () => {
  const doc = newDocument({
    hostname: "h",
    region: "r",
    tracerName: "dropwatch",
    tracerType: "auto",
    data: { nested: { a: [1, 2] }, s: "x\ny" },
    now: SEED_INSTANT,
    offsetMinutes: 480,
  });
  const line = JSON.stringify(doc);
  assert(!line.includes("\n"), "one document per line");
  assertEquals(JSON.parse(line), doc);
});

Deno.test("newDocument: a caller's tracer_id, and tracer_time at the trigger while uploaded_time is now", () => {
  const doc = newDocument({
    hostname: "h",
    region: "r",
    tracerName: "cpusys",
    tracerType: "manual",
    data: {},
    now: SEED_INSTANT,
    tracerTime: new Date(SEED_INSTANT.getTime() - 10_000),
    tracerId: "0123456789abcdef0123456789abcdef",
    offsetMinutes: 480,
  });
  assertEquals(doc.tracer_id, "0123456789abcdef0123456789abcdef");
  assertEquals(doc.tracer_time, "2025-06-11 16:05:06.251 +0800");
  assertEquals(doc.time, doc.tracer_time);
  assertEquals(doc.uploaded_time, "2025-06-11T16:05:16.251+08:00");
});
