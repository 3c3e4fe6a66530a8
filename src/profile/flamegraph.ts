// The seed's flamedata (section 5.3) from stack samples, and the ways back
// out of it: a tree (for renderers) and collapsed ("folded") stacks, the text
// flamegraph.pl, inferno and speedscope import.
//
// flamedata is a depth-first (pre-order) list of frames: "all" at level 0;
// level 1 is the process name (same-named processes merge, as the seed says);
// then the stack's frames, root first. A frame's value is its self plus its
// children's values. Children are ordered by label (code-unit order, not the
// locale's): the same capture always yields the same list, two captures can
// be diffed line by line, and it is the order flamegraph.pl draws in.
//
// Everything here is pure.

import type { FlameFrame, StackSample } from "./profile.ts";

/** The label of the flamedata root. */
export const ROOT_LABEL = "all";

/** A flamedata frame with its children, as renderers walk it. */
export interface FlameNode {
  readonly label: string;
  /** Samples in this frame and below it. */
  readonly value: number;
  /** Samples whose stack ends in this frame. */
  readonly self: number;
  readonly children: readonly FlameNode[];
}

interface MutableNode {
  label: string;
  value: number;
  self: number;
  children: Map<string, MutableNode>;
}

function newNode(label: string): MutableNode {
  return { label, value: 0, self: 0, children: new Map() };
}

function child(parent: MutableNode, label: string): MutableNode {
  let c = parent.children.get(label);
  if (!c) {
    c = newNode(label);
    parent.children.set(label, c);
  }
  return c;
}

/** Code-unit order: independent of the host's locale (localeCompare is not). */
export function compareLabels(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A count that can be added up: a positive finite number (0, NaN and negatives are no samples). */
function usableCount(n: number): boolean {
  return Number.isFinite(n) && n > 0;
}

/** The merged tree of samples: all → process name → frames (root first). */
export function flameTreeFromSamples(samples: readonly StackSample[]): FlameNode {
  const root = newNode(ROOT_LABEL);
  for (const s of samples) {
    if (!usableCount(s.count)) continue;
    let node = child(root, s.process);
    node.value += s.count;
    for (const frame of s.frames) {
      node = child(node, frame);
      node.value += s.count;
    }
    node.self += s.count;
    root.value += s.count;
  }
  return freeze(root);
}

/** The finished tree, children in label order; bottom-up without recursion (stacks run deep). */
function freeze(root: MutableNode): FlameNode {
  const order: MutableNode[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const n = todo.pop()!;
    order.push(n);
    for (const c of n.children.values()) todo.push(c);
  }
  const done = new Map<MutableNode, FlameNode>();
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    const children = [...n.children.values()].sort((a, b) => compareLabels(a.label, b.label))
      .map((c) => done.get(c)!);
    done.set(n, { label: n.label, value: n.value, self: n.self, children });
  }
  return done.get(root)!;
}

/** The seed's flamedata of samples: depth-first frames, root "all" at level 0. */
export function flamedata(samples: readonly StackSample[]): FlameFrame[] {
  return framesOfTree(flameTreeFromSamples(samples));
}

/** A tree as flamedata (pre-order). Iterative: kernel plus user stacks can be hundreds of frames deep. */
export function framesOfTree(root: FlameNode): FlameFrame[] {
  const out: FlameFrame[] = [];
  const stack: { node: FlameNode; level: number }[] = [{ node: root, level: 0 }];
  while (stack.length > 0) {
    const { node, level } = stack.pop()!;
    out.push({ level, value: node.value, self: node.self, label: node.label });
    for (let i = node.children.length - 1; i >= 0; i--) {
      stack.push({ node: node.children[i], level: level + 1 });
    }
  }
  return out;
}

export class FlameDataError extends Error {}

/** A frame as stored (JSON from disk or another agent): its fields are checked, not trusted. */
function checkedFrame(raw: unknown, i: number): FlameFrame {
  if (typeof raw !== "object" || raw === null) throw new FlameDataError(`frame ${i}: not an object`);
  const f = raw as Record<string, unknown>;
  const { level, value, self, label } = f;
  if (typeof level !== "number" || !Number.isInteger(level) || level < 0) {
    throw new FlameDataError(`frame ${i}: level must be a non-negative integer`);
  }
  for (const [name, v] of [["value", value], ["self", self]] as const) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new FlameDataError(`frame ${i}: ${name} must be a non-negative number`);
    }
  }
  if (typeof label !== "string") throw new FlameDataError(`frame ${i}: label must be a string`);
  return { level, value: value as number, self: self as number, label };
}

/**
 * Parses flamedata back into its tree. The shape is checked (one root at
 * level 0 first, each next frame at most one level below the one before);
 * the arithmetic is not trusted: a value smaller than its self plus its
 * children's values is raised to that sum, so a renderer never draws
 * children wider than their parent. A larger value is kept (the seed's own
 * example lists a root of 1000 with a child of 350: frames may be left out).
 */
export function flameTree(frames: readonly unknown[]): FlameNode {
  if (frames.length === 0) throw new FlameDataError("no frames");
  const first = checkedFrame(frames[0], 0);
  if (first.level !== 0) throw new FlameDataError("frame 0: the root must be at level 0");
  const root: MutableTreeNode = { ...first, children: [] };
  // path[l] is the latest frame at level l: a frame at level l hangs under path[l - 1].
  const path: MutableTreeNode[] = [root];
  for (let i = 1; i < frames.length; i++) {
    const f = checkedFrame(frames[i], i);
    if (f.level === 0) throw new FlameDataError(`frame ${i}: a second root`);
    if (f.level > path.length) {
      throw new FlameDataError(`frame ${i}: level ${f.level} follows level ${path.length - 1}`);
    }
    const node: MutableTreeNode = { ...f, children: [] };
    path[f.level - 1].children.push(node);
    path.length = f.level;
    path.push(node);
  }
  return settle(root);
}

interface MutableTreeNode extends FlameFrame {
  children: MutableTreeNode[];
}

/** Bottom-up, without recursion: value = max(stored value, self + children's values). */
function settle(root: MutableTreeNode): FlameNode {
  const order: MutableTreeNode[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const n = todo.pop()!;
    order.push(n);
    for (const c of n.children) todo.push(c);
  }
  const done = new Map<MutableTreeNode, FlameNode>();
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    const children = n.children.map((c) => done.get(c)!);
    const parts = children.reduce((sum, c) => sum + c.value, n.self);
    done.set(n, { label: n.label, value: Math.max(n.value, parts), self: n.self, children });
  }
  return done.get(root)!;
}

/** Every way a tree breaks value = self + Σ children's values (for tests and diagnostics). */
export function flameInconsistencies(root: FlameNode): string[] {
  const bad: string[] = [];
  const todo: { node: FlameNode; path: string }[] = [{ node: root, path: root.label }];
  while (todo.length > 0) {
    const { node, path } = todo.pop()!;
    const parts = node.children.reduce((sum, c) => sum + c.value, node.self);
    if (parts !== node.value) bad.push(`${path}: value ${node.value} != self ${node.self} + children`);
    for (const c of node.children) todo.push({ node: c, path: `${path};${c.label}` });
  }
  return bad;
}

/**
 * The bound on a text rendering of a tree (collapsed stacks: one line per
 * distinct stack, so its size grows with depth × stacks). Profiles the agent
 * takes are far below it; flamedata read from elsewhere may not be.
 */
export const MAX_OUTPUT_CHARS = 64 * 1024 * 1024;

/** A rendering would exceed its bound. */
export class TooLargeError extends Error {}

/**
 * A frame name as one field of a folded line: ";" separates frames and a line
 * ends the record, so they cannot appear inside a name (";" becomes ":",
 * line breaks a space). The count is after the last space, so spaces stay.
 */
export function foldedName(label: string): string {
  return label.replaceAll(";", ":").replace(/[\r\n]+/g, " ");
}

/**
 * Collapsed stacks of a tree: one "proc;frame;frame count" line per frame
 * with self samples, in depth-first order, without the root (flamegraph.pl
 * and inferno add their own). A root's own self (no process at all) has no
 * folded form and is left out; flamedata built here never has one.
 */
export function foldedFromTree(root: FlameNode, maxChars = MAX_OUTPUT_CHARS): string {
  const lines: string[] = [];
  let chars = 0;
  // Depth-first; `path` holds the names from the process down to the current frame.
  const path: string[] = [];
  const todo: { node: FlameNode; depth: number }[] = [];
  for (let i = root.children.length - 1; i >= 0; i--) todo.push({ node: root.children[i], depth: 0 });
  while (todo.length > 0) {
    const { node, depth } = todo.pop()!;
    path.length = depth;
    path.push(foldedName(node.label));
    if (node.self > 0) {
      const line = `${path.join(";")} ${node.self}`;
      chars += line.length + 1;
      if (chars > maxChars) throw new TooLargeError(`collapsed stacks over ${maxChars} characters`);
      lines.push(line);
    }
    for (let i = node.children.length - 1; i >= 0; i--) {
      todo.push({ node: node.children[i], depth: depth + 1 });
    }
  }
  return lines.length > 0 ? lines.join("\n") + "\n" : "";
}

/** Collapsed stacks of stored flamedata (throws FlameDataError when it is malformed). */
export function foldedFromFlamedata(frames: readonly unknown[]): string {
  return foldedFromTree(flameTree(frames));
}

/** Collapsed stacks of samples: equal stacks of same-named processes merged, lines in label order. */
export function foldedFromSamples(samples: readonly StackSample[]): string {
  return foldedFromTree(flameTreeFromSamples(samples));
}

/** Sum of the counts of folded lines (the root value they add up to). */
export function foldedTotal(folded: string): number {
  let total = 0;
  for (const line of folded.split("\n")) {
    const at = line.lastIndexOf(" ");
    if (at > 0) total += Number(line.slice(at + 1));
  }
  return total;
}
