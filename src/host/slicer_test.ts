import { assert } from "../../testing/assert.ts";
import { Slicer } from "./slicer.ts";

Deno.test("Slicer: no yield within a slice; a yield (timers run) once it is used up", async () => {
  let fired = false;
  setTimeout(() => fired = true, 0);
  const s = new Slicer(5);
  await s.tick();
  assert(!fired, "no yield inside the slice");
  const until = performance.now() + 6;
  while (performance.now() < until) { /* busy: use up the slice */ }
  await s.tick();
  assert(fired, "the timer ran during the yield");
});
