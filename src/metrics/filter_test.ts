import { assertEquals } from "../../testing/assert.ts";
import { NameFilter } from "./filter.ts";

Deno.test("no rules keeps everything", () => {
  const f = new NameFilter();
  assertEquals(["eth0", "lo", ""].map((n) => f.accepts(n)), [true, true, true]);
});

Deno.test("excluded only drops matches (seed DeviceExcluded)", () => {
  const f = new NameFilter("", "^(lo)|(docker\\w*)|(veth\\w*)$");
  assertEquals(
    ["lo", "docker0", "veth12ab", "eth0", "bond4"].map((n) => f.accepts(n)),
    [false, false, false, true, true],
  );
});

Deno.test("included only keeps matches, unanchored", () => {
  const f = new NameFilter("allocstall|nr_dirty", "");
  assertEquals(
    ["allocstall_dma", "nr_dirty_threshold", "pgfault"].map((n) => f.accepts(n)),
    [true, true, false],
  );
});

Deno.test("both: must match included and not excluded", () => {
  const f = new NameFilter("nr_", "total");
  assertEquals(["nr_free_pages", "nr_total", "pgfault"].map((n) => f.accepts(n)), [true, false, false]);
});
