import { assertEquals } from "../../testing/assert.ts";
import { dryRunFailures } from "./dry_run.ts";
import type { TracerState } from "../tracing/manager.ts";

const status = (name: string, state: TracerState) => ({ name, state, restarts: 0, since: "" });

Deno.test("dryRunFailures: failed collectors and failed tracers; unsupported and disabled are not failures", () => {
  const results = [
    { name: "loadavg", error: "no such file" },
    { name: "arp" },
    { name: "cpu_util", error: "garbled" },
  ];
  const tracers = [
    status("runqlat", "failed"),
    status("oom", "unsupported"),
    status("dropwatch", "disabled"),
    status("softirq", "running"),
  ];
  assertEquals(dryRunFailures(results, tracers), {
    collectors: ["cpu_util", "loadavg"],
    tracers: ["runqlat"],
  });
  assertEquals(dryRunFailures([], []), { collectors: [], tracers: [] });
});
