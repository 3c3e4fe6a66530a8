import { assertEquals } from "../../testing/assert.ts";
import { eventsFeature, type Feature } from "../features/feature.ts";
import { autotracingTracers } from "./features.ts";

Deno.test("autotracingTracers: the names of the features with mode autotracing", () => {
  const tracer = { name: "t", start: () => Promise.resolve(), stop: () => {} };
  const features = [
    eventsFeature("oom", () => tracer),
    ...["cpusys", "cpuidle"].map((name): Feature => ({
      name,
      modes: ["autotracing"],
      tracing: true,
      create: () => ({}),
    })),
  ];
  assertEquals(autotracingTracers(features), ["cpusys", "cpuidle"]);
});
