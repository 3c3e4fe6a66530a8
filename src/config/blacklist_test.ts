import { assertEquals, assertStrictEquals } from "../../testing/assert.ts";
import { unknownNames, unknownNamesMessage } from "./blacklist.ts";

const KNOWN = ["dropwatch", "netdev_events", "netdev", "cpu_util", "softirq", "softirq_tracing", "netdev_hw"];

Deno.test("unknownNames: known names pass; typos get the closest name", () => {
  assertEquals(unknownNames(["dropwatch", "netdev_hw"], KNOWN), []);
  assertEquals(unknownNames([], KNOWN), []);
  assertEquals(unknownNames(["dropwatchh"], KNOWN), [{ name: "dropwatchh", suggestion: "dropwatch" }]);
  // Adjacent transposition counts as one edit (Damerau).
  assertEquals(unknownNames(["cpu_uitl"], KNOWN), [{ name: "cpu_uitl", suggestion: "cpu_util" }]);
  assertEquals(unknownNames(["Netdev_Events"], KNOWN), [{
    name: "Netdev_Events",
    suggestion: "netdev_events",
  }]);
  assertEquals(unknownNames(["softirq_trace"], KNOWN), [{
    name: "softirq_trace",
    suggestion: "softirq_tracing",
  }]);
  assertEquals(unknownNames(["gpu", "gpu"], KNOWN), [{ name: "gpu" }], "reported once");
});

Deno.test("unknownNamesMessage: one line per name, the known names when nothing is close", () => {
  const where = "config huatuo-bamai.conf: BlackList";
  assertStrictEquals(
    unknownNamesMessage(where, unknownNames(["dropwatchh"], KNOWN), KNOWN),
    'config huatuo-bamai.conf: BlackList: unknown name "dropwatchh" (did you mean "dropwatch"?)',
  );
  assertStrictEquals(
    unknownNamesMessage("flag --disable-tracing", unknownNames(["dropwatchh", "zzz"], KNOWN), KNOWN),
    [
      'flag --disable-tracing: unknown name "dropwatchh" (did you mean "dropwatch"?)',
      'flag --disable-tracing: unknown name "zzz"',
      "flag --disable-tracing: known names are cpu_util, dropwatch, netdev, netdev_events, netdev_hw, softirq, " +
      "softirq_tracing",
    ].join("\n"),
  );
});
