// The seed names a collector by its series prefix, host and container alike
// (cpu_util_sys and cpu_util_container_sys are both "cpu_util"), so one
// BlackList name covers both: a feature's container part is merged into its
// host collector (metricsFeature's `container` option).

import type { Collector } from "../../core/collector.ts";
import type { Sample } from "../../core/sample.ts";

/**
 * One collector running both parts concurrently. It fails (success=0) when
 * either part fails, naming the part, as one collector does; the error of the
 * container part is prefixed "containers: ".
 */
export function mergeCollectors(host: Collector, containers: Collector): Collector {
  return {
    name: host.name,
    async collect(): Promise<Sample[]> {
      const [h, c] = await Promise.allSettled([host.collect(), containers.collect()]);
      if (h.status === "fulfilled" && c.status === "fulfilled") return [...h.value, ...c.value];
      const msg = (r: PromiseRejectedResult) =>
        r.reason instanceof Error ? r.reason.message : String(r.reason);
      const errors: string[] = [];
      if (h.status === "rejected") errors.push(msg(h));
      if (c.status === "rejected") errors.push(`containers: ${msg(c)}`);
      throw new Error(errors.join("; "));
    },
    close() {
      host.close?.();
      containers.close?.();
    },
  };
}
