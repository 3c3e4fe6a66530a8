// The RE2 (Go regexp/syntax, Perl flags) pattern language → a syntax tree.
// Only what decides match/no-match is kept: groups become their contents
// and greedy/lazy is dropped. What RE2 rejects is rejected here too
// (backreferences, lookaround, repeat counts above 1000), with RE2's wording.

import {
  addRange,
  addRanges,
  caseVariants,
  type CharClass,
  complementRanges,
  emptyClass,
  MAX_CODE_POINT,
  PERL_CLASSES,
  POSIX_CLASSES,
  unicodeProperty,
} from "./charclass.ts";

export type Assertion =
  | "beginText"
  | "endText"
  | "beginLine"
  | "endLine"
  | "wordBoundary"
  | "notWordBoundary";

export type Node =
  | { op: "empty" }
  | { op: "class"; cc: CharClass }
  | { op: "assert"; kind: Assertion }
  | { op: "concat"; subs: Node[] }
  | { op: "alt"; subs: Node[] }
  /** max -1: unbounded. */
  | { op: "repeat"; sub: Node; min: number; max: number };

export class Re2SyntaxError extends Error {}

/** RE2's limit on {n,m} counts. */
export const MAX_REPEAT = 1000;

interface Flags {
  /** i: case-insensitive */
  fold: boolean;
  /** m: ^ and $ match at line boundaries */
  multiLine: boolean;
  /** s: . matches \n */
  dotNL: boolean;
}

type Escape =
  | { kind: "char"; cp: number }
  | { kind: "class"; cc: CharClass }
  | { kind: "assert"; assertion: Assertion };

const isOctal = (c: string | undefined) => c !== undefined && c >= "0" && c <= "7";

export function parse(pattern: string): Node {
  return new Parser(pattern).parseTop();
}

class Parser {
  #s: string;
  #i = 0;
  #flags: Flags = { fold: false, multiLine: false, dotNL: false };
  #names = new Set<string>();

  constructor(s: string) {
    this.#s = s;
  }

  parseTop(): Node {
    const node = this.#alternation();
    if (this.#i < this.#s.length) throw new Re2SyntaxError("unexpected ): `" + this.#s + "`");
    return node;
  }

  #peek(offset = 0): string | undefined {
    return this.#s[this.#i + offset];
  }

  #startsWith(text: string): boolean {
    return this.#s.startsWith(text, this.#i);
  }

  /** The next code point, consumed. */
  #codePoint(): number {
    const cp = this.#s.codePointAt(this.#i)!;
    this.#i += cp > 0xffff ? 2 : 1;
    return cp;
  }

  #alternation(): Node {
    const subs = [this.#concat()];
    while (this.#peek() === "|") {
      this.#i++;
      subs.push(this.#concat());
    }
    return subs.length === 1 ? subs[0] : { op: "alt", subs };
  }

  #concat(): Node {
    const subs: Node[] = [];
    for (;;) {
      const c = this.#peek();
      if (c === undefined || c === "|" || c === ")") break;
      if (c === "(" && this.#peek(1) === "?" && this.#flagGroup()) continue;
      if (this.#startsWith("\\Q")) {
        subs.push(...this.#quoted());
        continue;
      }
      const atom = this.#atom();
      subs.push(this.#repeats(atom));
    }
    if (subs.length === 0) return { op: "empty" };
    return subs.length === 1 ? subs[0] : { op: "concat", subs };
  }

  /** \Q...\E: literal text (to the end of the pattern when \E is missing). */
  #quoted(): Node[] {
    this.#i += 2;
    const end = this.#s.indexOf("\\E", this.#i);
    const text = this.#s.slice(this.#i, end < 0 ? undefined : end);
    this.#i = end < 0 ? this.#s.length : end + 2;
    const out: Node[] = [];
    for (const ch of text) out.push(this.#repeats(this.#literal(ch.codePointAt(0)!)));
    return out;
  }

  /** `(?flags)` alone changes the flags for the rest of the group: true when it was one. */
  #flagGroup(): boolean {
    const m = /^\(\?([imsU]*)(?:-([imsU]*))?\)/.exec(this.#s.slice(this.#i, this.#i + 16));
    if (!m) return false;
    this.#applyFlags(m[0], m[1], m[2]);
    this.#i += m[0].length;
    return true;
  }

  #applyFlags(text: string, on: string, off: string | undefined): void {
    if ((on === "" && off === undefined) || off === "") {
      throw new Re2SyntaxError("invalid or unsupported Perl syntax: `" + text + "`");
    }
    const set = (letters: string, value: boolean) => {
      if (letters.includes("i")) this.#flags.fold = value;
      if (letters.includes("m")) this.#flags.multiLine = value;
      if (letters.includes("s")) this.#flags.dotNL = value;
      // U (ungreedy) changes which match is preferred, never whether one exists.
    };
    set(on, true);
    set(off ?? "", false);
  }

  #atom(): Node {
    const c = this.#peek()!;
    switch (c) {
      case "(":
        return this.#group();
      case "[":
        return { op: "class", cc: this.#class() };
      case ".": {
        this.#i++;
        const cc = emptyClass();
        if (this.#flags.dotNL) addRange(cc, 0, MAX_CODE_POINT);
        else addRanges(cc, [0, 0x09, 0x0b, MAX_CODE_POINT]);
        return { op: "class", cc };
      }
      case "^":
        this.#i++;
        return { op: "assert", kind: this.#flags.multiLine ? "beginLine" : "beginText" };
      case "$":
        this.#i++;
        return { op: "assert", kind: this.#flags.multiLine ? "endLine" : "endText" };
      case "*":
      case "+":
      case "?":
        throw new Re2SyntaxError(`missing argument to repetition operator: \`${c}\``);
      case "{": {
        const rep = this.#repeatCount();
        if (rep) throw new Re2SyntaxError(`missing argument to repetition operator: \`${rep.text}\``);
        this.#i++;
        return this.#literal(0x7b);
      }
      case "\\": {
        const e = this.#escape(false);
        if (e.kind === "char") return this.#literal(e.cp);
        if (e.kind === "class") return { op: "class", cc: e.cc };
        return { op: "assert", kind: e.assertion };
      }
      default:
        return this.#literal(this.#codePoint());
    }
  }

  #literal(cp: number): Node {
    const cc = emptyClass();
    addRange(cc, cp, cp);
    if (this.#flags.fold) {
      cc.fold = true;
      for (const v of caseVariants(cp)) addRange(cc, v, v);
    }
    return { op: "class", cc };
  }

  #group(): Node {
    const start = this.#i;
    this.#i++; // (
    const saved = { ...this.#flags };
    if (this.#peek() === "?") {
      const rest = this.#s.slice(this.#i, this.#i + 4);
      if (/^\?(=|!|<=|<!)/.test(rest)) {
        throw new Re2SyntaxError(
          `invalid or unsupported Perl syntax: \`(${
            rest.match(/^\?(=|!|<=|<!)/)![0]
          }\` (lookaround is not supported)`,
        );
      }
      if (rest.startsWith("?P=") || rest.startsWith("?P>")) {
        throw new Re2SyntaxError(
          `invalid or unsupported Perl syntax: \`(${rest.slice(0, 3)}\` (backreferences are not supported)`,
        );
      }
      const named = /^\?P?<([^>]*)>/.exec(this.#s.slice(this.#i, this.#i + 260));
      if (named) {
        const name = named[1];
        if (!/^[A-Za-z0-9_]+$/.test(name)) {
          throw new Re2SyntaxError(`invalid named capture: \`(${named[0]}\``);
        }
        if (this.#names.has(name)) throw new Re2SyntaxError(`duplicate capture group name: \`${name}\``);
        this.#names.add(name);
        this.#i += named[0].length;
      } else {
        const m = /^\?([imsU]*)(?:-([imsU]*))?:/.exec(this.#s.slice(this.#i, this.#i + 16));
        if (!m) {
          const bad = this.#s.slice(start, Math.min(this.#s.length, start + 4));
          throw new Re2SyntaxError(`invalid or unsupported Perl syntax: \`${bad}\``);
        }
        if (m[1] !== "" || m[2] !== undefined) this.#applyFlags(`(${m[0]}`, m[1], m[2]);
        this.#i += m[0].length;
      }
    }
    const node = this.#alternation();
    if (this.#peek() !== ")") throw new Re2SyntaxError("missing closing ): `" + this.#s.slice(start) + "`");
    this.#i++;
    this.#flags = saved;
    return node;
  }

  /** A {n}, {n,} or {n,m} at the cursor (not consumed), or undefined when `{` is a literal there. */
  #repeatCount(): { min: number; max: number; text: string } | undefined {
    const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(this.#s.slice(this.#i, this.#i + 24));
    if (!m) return undefined;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" ? -1 : Number(m[3]);
    if (min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && max < min)) {
      throw new Re2SyntaxError(`invalid repeat count: \`${m[0]}\``);
    }
    return { min, max, text: m[0] };
  }

  /** Repetition operators after an atom; a second one in a row is an error, as in RE2. */
  #repeats(atom: Node): Node {
    let node = atom;
    let last = "";
    for (;;) {
      const start = this.#i;
      const c = this.#peek();
      let min: number;
      let max: number;
      if (c === "*" || c === "+" || c === "?") {
        this.#i++;
        [min, max] = c === "*" ? [0, -1] : c === "+" ? [1, -1] : [0, 1];
      } else if (c === "{") {
        const rep = this.#repeatCount();
        if (!rep) return node;
        this.#i += rep.text.length;
        ({ min, max } = rep);
      } else {
        return node;
      }
      if (this.#peek() === "?") this.#i++; // lazy: same matches
      const op = this.#s.slice(start, this.#i);
      if (last !== "") throw new Re2SyntaxError(`invalid nested repetition operator: \`${last}${op}\``);
      last = op;
      node = { op: "repeat", sub: node, min, max };
    }
  }

  #class(): CharClass {
    const start = this.#i;
    this.#i++; // [
    const cc = emptyClass();
    cc.fold = this.#flags.fold;
    if (this.#peek() === "^") {
      cc.negate = true;
      this.#i++;
    }
    let first = true;
    for (;;) {
      const c = this.#peek();
      if (c === undefined) throw new Re2SyntaxError("missing closing ]: `" + this.#s.slice(start) + "`");
      if (c === "]" && !first) break;
      first = false;
      if (c === "[" && this.#peek(1) === ":") {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(this.#s.slice(this.#i, this.#i + 16));
        if (m) {
          const ranges = POSIX_CLASSES[m[2]];
          if (!ranges) throw new Re2SyntaxError(`invalid character class range: \`${m[0]}\``);
          this.#addClassRanges(cc, ranges, m[1] === "^");
          this.#i += m[0].length;
          continue;
        }
      }
      const rangeStart = this.#i;
      const lo = this.#classChar(cc);
      if (lo === undefined) continue; // a class escape, already added
      let hi = lo;
      if (this.#peek() === "-" && this.#peek(1) !== "]" && this.#peek(1) !== undefined) {
        this.#i++;
        const h = this.#classChar(cc);
        if (h === undefined || h < lo) {
          throw new Re2SyntaxError(
            `invalid character class range: \`${this.#s.slice(rangeStart, this.#i)}\``,
          );
        }
        hi = h;
      }
      addRange(cc, lo, hi);
    }
    this.#i++; // ]
    return cc;
  }

  /** Adds ranges (or their complement) to a class being built. */
  #addClassRanges(cc: CharClass, ranges: readonly number[], negated: boolean): void {
    addRanges(cc, negated ? complementRanges(ranges) : ranges);
  }

  /** One class member: its code point, or undefined when it was a class (\d, \pL) added to `cc`. */
  #classChar(cc: CharClass): number | undefined {
    if (this.#peek() !== "\\") return this.#codePoint();
    const e = this.#escape(true);
    if (e.kind === "char") return e.cp;
    if (e.kind === "class") {
      addRanges(cc, e.cc.ranges);
      cc.props.push(...e.cc.props);
      return undefined;
    }
    throw new Re2SyntaxError("invalid escape sequence");
  }

  #escape(inClass: boolean): Escape {
    const start = this.#i;
    this.#i++; // backslash
    if (this.#i >= this.#s.length) throw new Re2SyntaxError("trailing backslash at end of expression");
    const c = this.#s[this.#i++];
    const bad = () => new Re2SyntaxError(`invalid escape sequence: \`${this.#s.slice(start, this.#i)}\``);
    switch (c) {
      case "0":
      case "1":
      case "2":
      case "3":
      case "4":
      case "5":
      case "6":
      case "7": {
        // As in Go: \1 alone would be a backreference; \12 and \0 are octal.
        if (c !== "0" && !isOctal(this.#peek())) {
          throw new Re2SyntaxError(
            `invalid escape sequence: \`\\${c}\` (backreferences are not supported)`,
          );
        }
        let v = Number(c);
        for (let n = 0; n < 2 && isOctal(this.#peek()); n++) v = v * 8 + Number(this.#s[this.#i++]);
        return { kind: "char", cp: v };
      }
      case "8":
      case "9":
        throw new Re2SyntaxError(`invalid escape sequence: \`\\${c}\` (backreferences are not supported)`);
      case "x": {
        const m = /^(?:\{([0-9A-Fa-f]{1,8})\}|([0-9A-Fa-f]{2}))/.exec(this.#s.slice(this.#i, this.#i + 10));
        const v = m ? parseInt(m[1] ?? m[2], 16) : NaN;
        if (!m || v > MAX_CODE_POINT) throw bad();
        this.#i += m[0].length;
        return { kind: "char", cp: v };
      }
      case "a":
        return { kind: "char", cp: 0x07 };
      case "f":
        return { kind: "char", cp: 0x0c };
      case "n":
        return { kind: "char", cp: 0x0a };
      case "r":
        return { kind: "char", cp: 0x0d };
      case "t":
        return { kind: "char", cp: 0x09 };
      case "v":
        return { kind: "char", cp: 0x0b };
      case "d":
      case "D":
      case "s":
      case "S":
      case "w":
      case "W": {
        const cc = emptyClass();
        addRanges(cc, PERL_CLASSES[c]);
        return { kind: "class", cc };
      }
      case "p":
      case "P":
        return { kind: "class", cc: this.#unicodeClass(c === "P", start) };
      case "A":
      case "z":
      case "b":
      case "B":
        if (inClass) throw bad();
        return {
          kind: "assert",
          assertion: c === "A"
            ? "beginText"
            : c === "z"
            ? "endText"
            : c === "b"
            ? "wordBoundary"
            : "notWordBoundary",
        };
      case "k":
        throw new Re2SyntaxError("invalid escape sequence: `\\k` (backreferences are not supported)");
      default: {
        // Escaped ASCII punctuation is the character itself.
        const cp = c.charCodeAt(0);
        if (cp < 0x80 && !/[0-9A-Za-z]/.test(c)) return { kind: "char", cp };
        throw bad();
      }
    }
  }

  /** \pL, \p{Greek}, \p{^Greek}, \PL (after the p or P). */
  #unicodeClass(negated: boolean, start: number): CharClass {
    let name: string;
    if (this.#peek() === "{") {
      const end = this.#s.indexOf("}", this.#i);
      if (end < 0) throw new Re2SyntaxError(`invalid character class range: \`${this.#s.slice(start)}\``);
      name = this.#s.slice(this.#i + 1, end);
      this.#i = end + 1;
    } else {
      if (this.#i >= this.#s.length) throw new Re2SyntaxError("invalid character class range: `\\p`");
      name = String.fromCodePoint(this.#codePoint());
    }
    if (name.startsWith("^")) {
      negated = !negated;
      name = name.slice(1);
    }
    const test = unicodeProperty(name);
    if (!test) {
      throw new Re2SyntaxError(`invalid character class range: \`${this.#s.slice(start, this.#i)}\``);
    }
    const cc = emptyClass();
    cc.props.push(negated ? (cp) => !test(cp) : test);
    return cc;
  }
}
