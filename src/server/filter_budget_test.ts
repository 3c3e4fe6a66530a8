import { assert, assertStrictEquals } from "../../testing/assert.ts";
import { FilterBudget } from "./filter_budget.ts";

Deno.test("filter budget: spending within the limit each window is fine; passing it is final", () => {
  let now = 0;
  const b = new FilterBudget(10, 1000, () => now);
  b.charge(6);
  now = 500;
  b.charge(4);
  assert(!b.exceeded, "exactly the limit is allowed");
  now = 1000; // a new window
  b.charge(9);
  assertStrictEquals(b.spentMs, 9);
  assert(!b.exceeded);
  now = 1999;
  b.charge(1.5);
  assert(b.exceeded);
  now = 5000;
  b.charge(0);
  assert(b.exceeded, "a cut-off subscriber stays cut off");
});
