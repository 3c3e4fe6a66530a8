import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import type { StackSample } from "./profile.ts";
import {
  flamedata,
  FlameDataError,
  flameInconsistencies,
  flameTree,
  flameTreeFromSamples,
  foldedFromFlamedata,
  foldedFromSamples,
  foldedFromTree,
  foldedTotal,
  framesOfTree,
  TooLargeError,
} from "./flamegraph.ts";

const s = (tgid: number, process: string, frames: string[], count: number): StackSample => ({
  tgid,
  process,
  frames,
  count,
});

// Two "nginx" processes (merged by name), one "java", a process with no frames.
const SAMPLES: StackSample[] = [
  s(10, "nginx", ["main", "ngx_process_events", "epoll_wait"], 5),
  s(11, "nginx", ["main", "ngx_process_events", "epoll_wait"], 3),
  s(11, "nginx", ["main", "ngx_process_events"], 2),
  s(11, "nginx", ["main", "ngx_http_handler", "write"], 4),
  s(20, "java", ["start_thread", "JavaMain"], 7),
  s(30, "kworker/0:1", [], 1),
];

Deno.test("flamedata: depth-first, root all, processes merged by name, children by label", () => {
  assertEquals(flamedata(SAMPLES), [
    { level: 0, value: 22, self: 0, label: "all" },
    { level: 1, value: 7, self: 0, label: "java" },
    { level: 2, value: 7, self: 0, label: "start_thread" },
    { level: 3, value: 7, self: 7, label: "JavaMain" },
    { level: 1, value: 1, self: 1, label: "kworker/0:1" },
    { level: 1, value: 14, self: 0, label: "nginx" },
    { level: 2, value: 14, self: 0, label: "main" },
    { level: 3, value: 4, self: 0, label: "ngx_http_handler" },
    { level: 4, value: 4, self: 4, label: "write" },
    { level: 3, value: 10, self: 2, label: "ngx_process_events" },
    { level: 4, value: 8, self: 8, label: "epoll_wait" },
  ]);
});

Deno.test("flamedata: the order does not depend on the order of the samples", () => {
  const a = flamedata(SAMPLES);
  const b = flamedata([...SAMPLES].reverse());
  assertEquals(a, b);
});

Deno.test("flamedata: zero, negative and NaN counts are no samples", () => {
  assertEquals(flamedata([s(1, "a", ["x"], 0), s(1, "a", ["x"], -3), s(1, "a", ["y"], NaN)]), [
    { level: 0, value: 0, self: 0, label: "all" },
  ]);
});

Deno.test("flamedata invariants: value = self + children; folded counts add up to the root", () => {
  const frames = flamedata(SAMPLES);
  const tree = flameTree(frames);
  assertEquals(flameInconsistencies(tree), []);
  assertEquals(foldedTotal(foldedFromFlamedata(frames)), frames[0].value);
  assertEquals(foldedTotal(foldedFromSamples(SAMPLES)), 22);
  // Round trip: tree → flamedata → tree.
  assertEquals(framesOfTree(tree), frames);
});

Deno.test("folded: proc;frames count lines, without the root; from samples and from flamedata alike", () => {
  const folded = foldedFromSamples(SAMPLES);
  assertEquals(
    folded,
    [
      "java;start_thread;JavaMain 7",
      "kworker/0:1 1",
      "nginx;main;ngx_http_handler;write 4",
      "nginx;main;ngx_process_events 2",
      "nginx;main;ngx_process_events;epoll_wait 8",
      "",
    ].join("\n"),
  );
  assertEquals(foldedFromFlamedata(flamedata(SAMPLES)), folded);
  assertEquals(foldedFromSamples([]), "");
});

Deno.test("folded: ; and line breaks in names cannot split a line", () => {
  const folded = foldedFromSamples([s(1, "a;b", ["Lcom/x;", "two\nlines"], 2)]);
  assertEquals(folded, "a:b;Lcom/x:;two lines 2\n");
});

Deno.test("flameTree: parses the seed's example and raises a value below its parts", () => {
  // The seed's cpusys example: a root of 1000 listing only one child of 350 (frames left out).
  const seed = flameTree([
    { level: 0, value: 1000, self: 0, label: "all" },
    { level: 1, value: 350, self: 350, label: "do_syscall_64" },
  ]);
  assertEquals(seed.value, 1000);
  assertEquals(seed.children.map((c) => [c.label, c.value]), [["do_syscall_64", 350]]);
  const raised = flameTree([
    { level: 0, value: 1, self: 0, label: "all" },
    { level: 1, value: 2, self: 1, label: "p" },
    { level: 2, value: 3, self: 3, label: "f" },
  ]);
  assertEquals([raised.value, raised.children[0].value], [4, 4]);
});

Deno.test("flameTree: malformed flamedata is a FlameDataError naming the frame", () => {
  const root = { level: 0, value: 1, self: 0, label: "all" };
  const cases: [unknown[], RegExp][] = [
    [[], /no frames/],
    [[{ level: 1, value: 1, self: 1, label: "x" }], /frame 0: the root/],
    [[root, { level: 2, value: 1, self: 1, label: "x" }], /frame 1: level 2 follows level 0/],
    [[root, root], /frame 1: a second root/],
    [[root, { level: 1, value: -1, self: 0, label: "x" }], /frame 1: value/],
    [[root, { level: 1, value: 1, self: "1", label: "x" }], /frame 1: self/],
    [[root, { level: 1, value: 1, self: 1 }], /frame 1: label/],
    [[root, null], /frame 1: not an object/],
    [[{ ...root, level: 0.5 }], /frame 0: level/],
  ];
  for (const [frames, re] of cases) {
    assertThrows(() => flameTree(frames), FlameDataError);
    let msg = "";
    try {
      flameTree(frames);
    } catch (err) {
      msg = (err as Error).message;
    }
    assert(re.test(msg), `${msg} !~ ${re}`);
  }
});

Deno.test("deep stacks (5000 frames) need no recursion", () => {
  const frames = Array.from({ length: 5000 }, (_, i) => `f${i}`);
  const tree = flameTreeFromSamples([s(1, "deep", frames, 3)]);
  const data = framesOfTree(tree);
  assertEquals(data.length, 5002);
  assertEquals(data[5001], { level: 5001, value: 3, self: 3, label: "f4999" });
  assertEquals(flameInconsistencies(flameTree(data)), []);
  assertEquals(foldedTotal(foldedFromTree(flameTree(data))), 3);
  // Collapsed stacks grow with depth × stacks: they are bounded.
  assertThrows(() => foldedFromTree(tree, 20000), TooLargeError);
});

Deno.test("a random profile keeps its invariants", () => {
  // A fixed linear congruential generator: the same "random" profile every run.
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const samples: StackSample[] = [];
  for (let i = 0; i < 500; i++) {
    const depth = rnd(12);
    samples.push(s(rnd(5), `p${rnd(4)}`, Array.from({ length: depth }, () => `fn${rnd(6)}`), 1 + rnd(9)));
  }
  const total = samples.reduce((a, x) => a + x.count, 0);
  const frames = flamedata(samples);
  assertEquals(frames[0].value, total);
  assertEquals(flameInconsistencies(flameTree(frames)), []);
  assertEquals(foldedTotal(foldedFromFlamedata(frames)), total);
  assertEquals(foldedFromFlamedata(frames), foldedFromSamples(samples));
});
