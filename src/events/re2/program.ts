// Syntax tree → Thompson NFA program: CLASS consumes one code point, SPLIT
// forks, JMP jumps, ASSERT checks the position, MATCH ends. The program
// grows with {n,m} copies, so its size is capped: a pattern's cost to match
// is (program size) × (input length).

import { type CharClass, classHas } from "./charclass.ts";
import { type Assertion, type Node, Re2SyntaxError } from "./parse.ts";

export const OP_MATCH = 0;
export const OP_CLASS = 1;
export const OP_SPLIT = 2;
export const OP_JMP = 3;
export const OP_ASSERT = 4;

/** Position facts an ASSERT tests, as bits (one set per input position). */
export const AT_BEGIN_TEXT = 1;
export const AT_END_TEXT = 2;
export const AT_BEGIN_LINE = 4;
export const AT_END_LINE = 8;
export const AT_WORD_BOUNDARY = 16;
export const AT_NOT_WORD_BOUNDARY = 32;

const ASSERTION_BITS: Record<Assertion, number> = {
  beginText: AT_BEGIN_TEXT,
  endText: AT_END_TEXT,
  beginLine: AT_BEGIN_LINE,
  endLine: AT_END_LINE,
  wordBoundary: AT_WORD_BOUNDARY,
  notWordBoundary: AT_NOT_WORD_BOUNDARY,
};

export interface Program {
  op: Uint8Array;
  /** CLASS: index into `classes`; SPLIT, JMP: first target; ASSERT: AT_* bit. */
  x: Int32Array;
  /** SPLIT: second target. */
  y: Int32Array;
  /** Per class, 128 entries: 1 where the class matches that ASCII code point. */
  ascii: Uint8Array;
  /** Per class, the test for code points beyond ASCII. */
  classes: Array<(cp: number) => boolean>;
  /** Every match starts at position 0 (the pattern begins with \A or ^ without (?m)). */
  anchored: boolean;
}

/** Default cap on instructions. */
export const MAX_PROGRAM = 5000;

class Builder {
  op: number[] = [];
  x: number[] = [];
  y: number[] = [];
  classes: CharClass[] = [];
  #classIndex = new Map<CharClass, number>();

  constructor(readonly max: number) {}

  get pc(): number {
    return this.op.length;
  }

  emit(op: number, x = 0, y = 0): number {
    if (this.op.length >= this.max) {
      throw new Re2SyntaxError(`expression too large (more than ${this.max} instructions)`);
    }
    this.op.push(op);
    this.x.push(x);
    this.y.push(y);
    return this.op.length - 1;
  }

  /** Copies of a repeated class share one matcher. */
  classIndex(cc: CharClass): number {
    let i = this.#classIndex.get(cc);
    if (i === undefined) {
      i = this.classes.length;
      this.classes.push(cc);
      this.#classIndex.set(cc, i);
    }
    return i;
  }
}

function gen(b: Builder, node: Node): void {
  switch (node.op) {
    case "empty":
      return;
    case "class":
      b.emit(OP_CLASS, b.classIndex(node.cc));
      return;
    case "assert":
      b.emit(OP_ASSERT, ASSERTION_BITS[node.kind]);
      return;
    case "concat":
      for (const sub of node.subs) gen(b, sub);
      return;
    case "alt": {
      const jumps: number[] = [];
      for (let i = 0; i < node.subs.length - 1; i++) {
        const split = b.emit(OP_SPLIT, b.pc + 1);
        gen(b, node.subs[i]);
        jumps.push(b.emit(OP_JMP));
        b.y[split] = b.pc;
      }
      gen(b, node.subs[node.subs.length - 1]);
      for (const j of jumps) b.x[j] = b.pc;
      return;
    }
    case "repeat":
      genRepeat(b, node.sub, node.min, node.max);
      return;
  }
}

function genRepeat(b: Builder, sub: Node, min: number, max: number): void {
  if (max === -1) {
    // e{n,}: n-1 copies, then e+ (L: e; SPLIT L, out); e*: L: SPLIT L+1, out; e; JMP L.
    for (let i = 0; i < min - 1; i++) gen(b, sub);
    if (min >= 1) {
      const loop = b.pc;
      gen(b, sub);
      b.emit(OP_SPLIT, loop, b.pc + 1);
    } else {
      const split = b.emit(OP_SPLIT, b.pc + 1);
      gen(b, sub);
      b.emit(OP_JMP, split);
      b.y[split] = b.pc;
    }
    return;
  }
  // e{n,m}: n copies, then m-n optional ones that all skip to the end.
  for (let i = 0; i < min; i++) gen(b, sub);
  const skips: number[] = [];
  for (let i = min; i < max; i++) {
    skips.push(b.emit(OP_SPLIT, b.pc + 1));
    gen(b, sub);
  }
  for (const s of skips) b.y[s] = b.pc;
}

function startsAnchored(node: Node): boolean {
  if (node.op === "assert") return node.kind === "beginText";
  if (node.op === "concat") return node.subs.length > 0 && startsAnchored(node.subs[0]);
  if (node.op === "alt") return node.subs.every(startsAnchored);
  return false;
}

export function compile(node: Node, maxInstructions = MAX_PROGRAM): Program {
  const b = new Builder(maxInstructions);
  gen(b, node);
  b.emit(OP_MATCH);
  const ascii = new Uint8Array(b.classes.length * 128);
  b.classes.forEach((cc, i) => {
    for (let cp = 0; cp < 128; cp++) ascii[i * 128 + cp] = classHas(cc, cp) ? 1 : 0;
  });
  return {
    op: Uint8Array.from(b.op),
    x: Int32Array.from(b.x),
    y: Int32Array.from(b.y),
    ascii,
    classes: b.classes.map((cc) => (cp: number) => classHas(cc, cp)),
    anchored: startsAnchored(node),
  };
}
