// Regular expressions in Go's RE2 syntax, matched in time linear in the
// input: the watch endpoint runs client-supplied patterns on the agent's one
// JS thread, so a pattern must never be able to backtrack.
//
// Why not V8's own linear engine (`--enable-experimental-regexp-engine`, flag
// "l")? Measured on Deno 2.9.6 (V8 15.0): it rejects ordinary RE2 filters —
// any case-insensitive pattern (flag "i", so no `(?i)`), any bounded repeat
// above 16 (`^[a-z0-9_]{1,64}$`, `(.*){25}Z`), the "u" flag — and needs a V8
// flag on every way the agent is started. This small Thompson NFA accepts
// RE2's syntax as written (`(?i)`, `\A`, `\z`, `[[:alpha:]]`, `\pL`, `\Q..\E`,
// counts up to 1000) and matches `(.*){30}Z` against 200 characters in
// 0.5-2 ms where backtracking takes hours (re2_test.ts prints the timings).

import { parse } from "./parse.ts";
import { compile, MAX_PROGRAM } from "./program.ts";
import { Matcher } from "./nfa.ts";

export { Re2SyntaxError } from "./parse.ts";

export interface Re2Options {
  /** Cap on the compiled program's instructions (default 5000). */
  maxInstructions?: number;
}

export class Re2 {
  readonly #matcher: Matcher;

  private constructor(
    readonly source: string,
    /** Size of the compiled program: a match costs at most (input length + 1) × this NFA steps. */
    readonly instructions: number,
    matcher: Matcher,
  ) {
    this.#matcher = matcher;
  }

  /** Throws Re2SyntaxError for what RE2 rejects and for programs over the cap. */
  static compile(pattern: string, opts: Re2Options = {}): Re2 {
    const program = compile(parse(pattern), opts.maxInstructions ?? MAX_PROGRAM);
    return new Re2(pattern, program.op.length, new Matcher(program));
  }

  /** Whether the pattern matches anywhere in `s` (unanchored, like Go's MatchString). */
  test(s: string): boolean {
    return this.#matcher.test(s);
  }
}
