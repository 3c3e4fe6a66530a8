// Thompson's NFA simulation: all threads advance together one code point at
// a time, and a state is entered at most once per position, so a run costs
// at most (input length + 1) × (program size) steps whatever the pattern.
// Only "is there a match" is answered, so threads need no priorities or
// captures, and the first thread to reach MATCH ends the run.

import { isWordChar } from "./charclass.ts";
import {
  AT_BEGIN_LINE,
  AT_BEGIN_TEXT,
  AT_END_LINE,
  AT_END_TEXT,
  AT_NOT_WORD_BOUNDARY,
  AT_WORD_BOUNDARY,
  OP_ASSERT,
  OP_CLASS,
  OP_JMP,
  OP_MATCH,
  OP_SPLIT,
  type Program,
} from "./program.ts";

/** A set of program counters with O(1) add, test and clear (Briggs–Torczon). */
class StateSet {
  dense: Int32Array;
  sparse: Int32Array;
  size = 0;

  constructor(n: number) {
    this.dense = new Int32Array(n);
    this.sparse = new Int32Array(n);
  }

  has(pc: number): boolean {
    const i = this.sparse[pc];
    return i < this.size && this.dense[i] === pc;
  }

  add(pc: number): void {
    this.sparse[pc] = this.size;
    this.dense[this.size++] = pc;
  }
}

/** The AT_* facts that hold between code points `prev` and `next` (-1: none, at the text's edge). */
function positionBits(prev: number, next: number): number {
  let bits = 0;
  if (prev < 0) bits |= AT_BEGIN_TEXT | AT_BEGIN_LINE;
  else if (prev === 0x0a) bits |= AT_BEGIN_LINE;
  if (next < 0) bits |= AT_END_TEXT | AT_END_LINE;
  else if (next === 0x0a) bits |= AT_END_LINE;
  bits |= isWordChar(prev) !== isWordChar(next) ? AT_WORD_BOUNDARY : AT_NOT_WORD_BOUNDARY;
  return bits;
}

export class Matcher {
  #p: Program;
  #cur: StateSet;
  #next: StateSet;
  /** Each state is pushed at most twice per add (both SPLIT targets): 2n + 1 bounds the stack. */
  #stack: Int32Array;

  constructor(program: Program) {
    this.#p = program;
    const n = program.op.length;
    this.#cur = new StateSet(n);
    this.#next = new StateSet(n);
    this.#stack = new Int32Array(2 * n + 1);
  }

  /** Follows JMP, SPLIT and ASSERT from `pc` into `set`; true when MATCH is reached. */
  #add(set: StateSet, pc: number, bits: number): boolean {
    const { op, x, y } = this.#p;
    const stack = this.#stack;
    let sp = 0;
    stack[sp++] = pc;
    while (sp > 0) {
      const at = stack[--sp];
      if (set.has(at)) continue;
      set.add(at);
      switch (op[at]) {
        case OP_MATCH:
          return true;
        case OP_JMP:
          stack[sp++] = x[at];
          break;
        case OP_SPLIT:
          stack[sp++] = y[at];
          stack[sp++] = x[at];
          break;
        case OP_ASSERT:
          if ((bits & x[at]) !== 0) stack[sp++] = at + 1;
          break;
      }
    }
    return false;
  }

  /** Whether the program matches anywhere in `s` (code points; a lone surrogate is one). */
  test(s: string): boolean {
    const { op, x, ascii, classes, anchored } = this.#p;
    let cur = this.#cur;
    let next = this.#next;
    cur.size = 0;
    let prev = -1;
    let i = 0;
    let c = s.length > 0 ? s.codePointAt(0)! : -1;
    for (;;) {
      // An unanchored search starts a new thread at every position.
      if ((i === 0 || !anchored) && this.#add(cur, 0, positionBits(prev, c))) return true;
      if (c < 0 || cur.size === 0) return false;
      const after = i + (c > 0xffff ? 2 : 1);
      const c2 = after < s.length ? s.codePointAt(after)! : -1;
      const bits = positionBits(c, c2);
      next.size = 0;
      for (let k = 0; k < cur.size; k++) {
        const pc = cur.dense[k];
        if (op[pc] !== OP_CLASS) continue;
        const hit = c < 128 ? ascii[(x[pc] << 7) | c] === 1 : classes[x[pc]](c);
        if (hit && this.#add(next, pc + 1, bits)) return true;
      }
      [cur, next] = [next, cur];
      prev = c;
      c = c2;
      i = after;
    }
  }
}
