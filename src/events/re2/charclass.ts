// Character classes of the RE2 dialect: ranges of code points, Unicode
// properties, negation and simple case folding, and the single-code-point
// test the matcher runs for each input character.

export interface CharClass {
  /** Sorted, non-overlapping, non-adjacent [lo, hi] pairs, flattened. */
  ranges: number[];
  /** \p{...} properties that also admit a code point. */
  props: Array<(cp: number) => boolean>;
  negate: boolean;
  /** (?i): a code point also matches through its simple lower or upper case. */
  fold: boolean;
}

export const MAX_CODE_POINT = 0x10ffff;

export function emptyClass(): CharClass {
  return { ranges: [], props: [], negate: false, fold: false };
}

/** Adds [lo, hi] keeping the ranges sorted and merged. */
export function addRange(cc: CharClass, lo: number, hi: number): void {
  const pairs: Array<[number, number]> = [[lo, hi]];
  for (let i = 0; i < cc.ranges.length; i += 2) pairs.push([cc.ranges[i], cc.ranges[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [l, h] of pairs) {
    const last = out.length - 1;
    if (last > 0 && l <= out[last] + 1) out[last] = Math.max(out[last], h);
    else out.push(l, h);
  }
  cc.ranges = out;
}

/** The code points not in `ranges` (a sorted, merged list), as ranges. */
export function complementRanges(ranges: readonly number[]): number[] {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < ranges.length; i += 2) {
    if (ranges[i] > next) out.push(next, ranges[i] - 1);
    next = ranges[i + 1] + 1;
  }
  if (next <= MAX_CODE_POINT) out.push(next, MAX_CODE_POINT);
  return out;
}

/** Adds every range of `ranges` (a flattened pair list) to `cc`. */
export function addRanges(cc: CharClass, ranges: readonly number[]): void {
  for (let i = 0; i < ranges.length; i += 2) addRange(cc, ranges[i], ranges[i + 1]);
}

// RE2's Perl classes are ASCII-only.
const DIGIT = [0x30, 0x39];
const SPACE = [0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x20];
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];

export const PERL_CLASSES: Readonly<Record<string, readonly number[]>> = {
  d: DIGIT,
  D: complementRanges(DIGIT),
  s: SPACE,
  S: complementRanges(SPACE),
  w: WORD,
  W: complementRanges(WORD),
};

export const POSIX_CLASSES: Readonly<Record<string, readonly number[]>> = {
  alnum: [0x30, 0x39, 0x41, 0x5a, 0x61, 0x7a],
  alpha: [0x41, 0x5a, 0x61, 0x7a],
  ascii: [0x00, 0x7f],
  blank: [0x09, 0x09, 0x20, 0x20],
  cntrl: [0x00, 0x1f, 0x7f, 0x7f],
  digit: DIGIT,
  graph: [0x21, 0x7e],
  lower: [0x61, 0x7a],
  print: [0x20, 0x7e],
  punct: [0x21, 0x2f, 0x3a, 0x40, 0x5b, 0x60, 0x7b, 0x7e],
  space: [0x09, 0x0d, 0x20, 0x20],
  upper: [0x41, 0x5a],
  word: WORD,
  xdigit: [0x30, 0x39, 0x41, 0x46, 0x61, 0x66],
};

export function isWordChar(cp: number): boolean {
  return (cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || cp === 0x5f ||
    (cp >= 0x61 && cp <= 0x7a);
}

/**
 * A \p{name} test: a general category (L, Lu, ...) or a script (Greek, Han,
 * ...), through a one-character JS regexp (no repetition: cannot backtrack).
 * Undefined when JS knows no such property.
 */
export function unicodeProperty(name: string): ((cp: number) => boolean) | undefined {
  if (name === "Any") return () => true;
  if (!/^[A-Za-z_]+$/.test(name)) return undefined;
  for (const spec of [name, `Script=${name}`]) {
    try {
      const re = new RegExp(`^\\p{${spec}}$`, "u");
      return (cp) => re.test(String.fromCodePoint(cp));
    } catch {
      // not this kind of property name
    }
  }
  return undefined;
}

/** Other simple cases of `cp` (lower, upper), for case-insensitive matching. */
export function caseVariants(cp: number): number[] {
  if (cp < 0x80) {
    const isLetter = (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
    return isLetter ? [cp ^ 0x20] : [];
  }
  const s = String.fromCodePoint(cp);
  const out: number[] = [];
  for (const v of [s.toLowerCase(), s.toUpperCase()]) {
    const c = v.codePointAt(0)!;
    if (c !== cp && String.fromCodePoint(c) === v) out.push(c);
  }
  return out;
}

function inRanges(ranges: number[], cp: number): boolean {
  let lo = 0;
  let hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ranges[2 * mid]) hi = mid - 1;
    else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

function admits(cc: CharClass, cp: number): boolean {
  if (inRanges(cc.ranges, cp)) return true;
  for (const p of cc.props) if (p(cp)) return true;
  return false;
}

/** Whether the class matches code point `cp`. */
export function classHas(cc: CharClass, cp: number): boolean {
  let hit = admits(cc, cp);
  if (!hit && cc.fold) hit = caseVariants(cp).some((v) => admits(cc, v));
  return hit !== cc.negate;
}
