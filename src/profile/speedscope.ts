// A profile in speedscope's file format (https://www.speedscope.app; schema
// vendored in fixtures/speedscope/): one "sampled" profile whose stacks are
// arrays of indices into a shared frame list, root first, each with a weight
// (its sample count). As in the flame graph, a stack's outermost frame is the
// process name, so speedscope's left-heavy and sandwich views group by
// process. Frames are shared by name: a function called from many places is
// one frame, which is what the sandwich view sums over. Pure.

import { type FlameNode, flameTreeFromSamples, TooLargeError } from "./flamegraph.ts";
import type { StackSample } from "./profile.ts";

export const SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json";

export interface SpeedscopeFrame {
  name: string;
  file?: string;
  line?: number;
  col?: number;
}

export interface SpeedscopeSampledProfile {
  type: "sampled";
  name: string;
  /** Weights are sample counts: no unit. */
  unit: "none";
  startValue: number;
  endValue: number;
  /** Stacks as indices into shared.frames, root first. */
  samples: number[][];
  weights: number[];
}

export interface SpeedscopeFile {
  $schema: typeof SPEEDSCOPE_SCHEMA;
  shared: { frames: SpeedscopeFrame[] };
  profiles: SpeedscopeSampledProfile[];
  name?: string;
  activeProfileIndex?: number;
  exporter?: string;
}

export interface SpeedscopeOptions {
  /** The profile's and the file's name (shown in speedscope's title bar). */
  name?: string;
  /** Who wrote the file, e.g. "huatuo-bamai 1.2.3". */
  exporter?: string;
  /** At most this many frame indices over all stacks (MAX_STACK_ENTRIES). */
  maxStackEntries?: number;
}

/**
 * The bound on a file's stack entries: ~16 M indices is ~100 MB of JSON. A
 * file is a frame index per frame of every distinct stack; profiles the agent
 * takes are far below (stacks of at most a few hundred frames).
 */
export const MAX_STACK_ENTRIES = 16 * 1024 * 1024;

/**
 * A flame tree as a speedscope file: one weighted stack per frame with self
 * samples (the tree's root, "all", is not a frame: speedscope draws its own).
 * Throws TooLargeError past maxStackEntries.
 */
export function speedscopeFromTree(root: FlameNode, opts: SpeedscopeOptions = {}): SpeedscopeFile {
  const frames: SpeedscopeFrame[] = [];
  const index = new Map<string, number>();
  const frameOf = (label: string): number => {
    let i = index.get(label);
    if (i === undefined) {
      i = frames.push({ name: label }) - 1;
      index.set(label, i);
    }
    return i;
  };
  const samples: number[][] = [];
  const weights: number[] = [];
  const limit = opts.maxStackEntries ?? MAX_STACK_ENTRIES;
  let entries = 0;
  // Depth-first, children in the tree's order; `path` holds the frames from the process down to the
  // current one (a stack entry's depth says how much of it is its ancestors).
  const path: number[] = [];
  const todo: { node: FlameNode; depth: number }[] = [];
  for (let i = root.children.length - 1; i >= 0; i--) todo.push({ node: root.children[i], depth: 0 });
  while (todo.length > 0) {
    const { node, depth } = todo.pop()!;
    path.length = depth;
    path.push(frameOf(node.label));
    if (node.self > 0) {
      entries += path.length;
      if (entries > limit) {
        throw new TooLargeError(`more than ${limit} stack entries: use the folded format`);
      }
      samples.push(path.slice());
      weights.push(node.self);
    }
    for (let i = node.children.length - 1; i >= 0; i--) {
      todo.push({ node: node.children[i], depth: depth + 1 });
    }
  }
  const name = opts.name ?? "huatuo-bamai profile";
  const file: SpeedscopeFile = {
    $schema: SPEEDSCOPE_SCHEMA,
    shared: { frames },
    profiles: [{
      type: "sampled",
      name,
      unit: "none",
      startValue: 0,
      endValue: weights.reduce((a, w) => a + w, 0),
      samples,
      weights,
    }],
    name,
    activeProfileIndex: 0,
  };
  if (opts.exporter !== undefined) file.exporter = opts.exporter;
  return file;
}

/** Samples as a speedscope file (equal stacks of same-named processes merged, as in flamedata). */
export function speedscopeFromSamples(
  samples: readonly StackSample[],
  opts: SpeedscopeOptions = {},
): SpeedscopeFile {
  return speedscopeFromTree(flameTreeFromSamples(samples), opts);
}
