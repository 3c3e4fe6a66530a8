import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import { type Json, validate } from "../../testing/json_schema.ts";
import { flamedata, flameTree, flameTreeFromSamples, TooLargeError } from "./flamegraph.ts";
import type { StackSample } from "./profile.ts";
import { SPEEDSCOPE_SCHEMA, speedscopeFromSamples, speedscopeFromTree } from "./speedscope.ts";

const SCHEMA = JSON.parse(
  await Deno.readTextFile(new URL("../../fixtures/speedscope/file-format-schema.json", import.meta.url)),
) as Json;

const SAMPLES: StackSample[] = [
  { tgid: 10, process: "nginx", frames: ["main", "ngx_process_events", "epoll_wait"], count: 5 },
  { tgid: 11, process: "nginx", frames: ["main", "ngx_process_events", "epoll_wait"], count: 3 },
  { tgid: 11, process: "nginx", frames: ["main", "ngx_process_events"], count: 2 },
  { tgid: 20, process: "java", frames: ["start_thread", "main"], count: 7 },
];

/** The file as it goes over the wire: what speedscope parses. */
const wire = (v: unknown) => JSON.parse(JSON.stringify(v)) as Json;

Deno.test("speedscope: a sampled profile over shared frames, root first, weights are counts", () => {
  const file = speedscopeFromSamples(SAMPLES, { name: "cpusys 0123", exporter: "huatuo-bamai test" });
  assertEquals(file.$schema, SPEEDSCOPE_SCHEMA);
  assertEquals(file.shared.frames.map((f) => f.name), [
    "java",
    "start_thread",
    "main",
    "nginx",
    "ngx_process_events",
    "epoll_wait",
  ]);
  const p = file.profiles[0];
  assertEquals([p.type, p.name, p.unit, p.startValue, p.endValue], ["sampled", "cpusys 0123", "none", 0, 17]);
  // "main" is one frame (index 2) under both processes.
  assertEquals(p.samples, [[0, 1, 2], [3, 2, 4], [3, 2, 4, 5]]);
  assertEquals(p.weights, [7, 2, 8]);
  assertEquals(file.exporter, "huatuo-bamai test");
});

Deno.test("speedscope: output validates against speedscope's own schema; indices and lengths agree", () => {
  const files = [
    speedscopeFromSamples(SAMPLES),
    speedscopeFromSamples([]),
    speedscopeFromTree(flameTree(flamedata(SAMPLES)), { name: "from flamedata" }),
  ];
  for (const file of files) {
    assertEquals(validate(SCHEMA, wire(file)), []);
    // What the schema cannot say: every index names a frame, one weight per sample.
    const p = file.profiles[0];
    assertEquals(p.samples.length, p.weights.length);
    for (const stack of p.samples) for (const i of stack) assert(i >= 0 && i < file.shared.frames.length);
    assertEquals(p.weights.reduce((a, w) => a + w, 0), p.endValue);
  }
  // The same profile whether built from samples or from their stored flamedata.
  assertEquals(speedscopeFromTree(flameTree(flamedata(SAMPLES))), speedscopeFromSamples(SAMPLES));
});

Deno.test("the schema validator catches what speedscope would reject", () => {
  const good = wire(speedscopeFromSamples(SAMPLES)) as { [k: string]: Json };
  const broken: [Json, RegExp][] = [
    [{ ...good, $schema: "https://example.com/x.json" }, /\$\.\$schema: expected/],
    [{ ...good, shared: {} }, /\$\.shared: missing frames/],
    [{ ...good, profiles: [{ type: "sampled" }] }, /matches none of anyOf/],
    [{ ...good, profiles: [{ ...(good.profiles as Json[])[0] as object, unit: "furlongs" }] }, /anyOf/],
    [{ ...good, shared: { frames: [{ name: 1 }] } }, /\$\.shared\.frames\[0\]\.name: expected string/],
  ];
  for (const [doc, re] of broken) {
    const errors = validate(SCHEMA, doc);
    assert(errors.some((e) => re.test(e)), `${re}: ${errors.join("; ")}`);
  }
  assertThrows(() => validate({ type: "object", additionalProperties: false }, {}), /unsupported keyword/);
});

Deno.test("speedscope: deep stacks, and the bound on stack entries", () => {
  const frames = Array.from({ length: 3000 }, (_, i) => `f${i}`);
  const tree = flameTreeFromSamples([{ tgid: 1, process: "deep", frames, count: 1 }]);
  assertEquals(speedscopeFromTree(tree).profiles[0].samples[0].length, 3001);
  assertThrows(() => speedscopeFromTree(tree, { maxStackEntries: 3000 }), TooLargeError);
});
