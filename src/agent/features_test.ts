import { assertEquals } from "../../testing/assert.ts";
import { autotracingFeature, eventsFeature } from "../features/feature.ts";
import { autotracingTracers } from "./features.ts";

Deno.test("autotracingTracers: the names of the features with mode autotracing", () => {
  const tracer = { name: "t", start: () => Promise.resolve(), stop: () => {} };
  const features = [
    eventsFeature("oom", () => tracer),
    autotracingFeature("cpusys", () => tracer),
    autotracingFeature("cpuidle", () => tracer),
  ];
  assertEquals(autotracingTracers(features), ["cpusys", "cpuidle"]);
});
