// Minimal assertions for tests: jsr:@std/assert is unreachable from our build
// machines, so tests use node:assert through these names.
import { deepStrictEqual, match, ok, rejects, strictEqual, throws } from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  deepStrictEqual(actual, expected, msg);
}
export function assertStrictEquals<T>(actual: T, expected: T, msg?: string): void {
  strictEqual(actual, expected, msg);
}
export function assert(cond: unknown, msg?: string): asserts cond {
  ok(cond, msg);
}
export function assertMatch(actual: string, re: RegExp, msg?: string): void {
  match(actual, re, msg);
}
export function assertThrows(fn: () => unknown, expected?: RegExp | (new (...a: never[]) => Error)): void {
  throws(fn, expected as RegExp);
}
export async function assertRejects(
  fn: () => Promise<unknown>,
  expected?: RegExp | (new (...a: never[]) => Error),
): Promise<void> {
  await rejects(fn, expected as RegExp);
}
