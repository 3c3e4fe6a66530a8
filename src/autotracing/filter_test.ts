import { assertEquals } from "../../testing/assert.ts";
import { ContainerFilterRules } from "./filter.ts";

const web = {
  container_host_namespace: "application-shop",
  container_hostname: "web-1",
  container_qos: "burstable",
};
const batch = { container_host_namespace: "batch", container_hostname: "job-7", container_qos: "besteffort" };
const sys = {
  container_host_namespace: "kube-system",
  container_hostname: "dns-1",
  container_qos: "guaranteed",
};
type Rule = { Field: "container_host_namespace" | "container_hostname" | "container_qos"; Pattern: string };
const rules = (Included: Rule[], Excluded: Rule[]) => new ContainerFilterRules({ Included, Excluded });
const admitted = (f: ContainerFilterRules) =>
  [web, batch, sys].filter((c) => f.admitsFields(c)).map((c) => c.container_hostname);

Deno.test("Filter: none → all; Excluded only; Included only; both; an empty Pattern is no rule", () => {
  assertEquals(admitted(rules([], [])), ["web-1", "job-7", "dns-1"]);
  assertEquals(admitted(rules([], [{ Field: "container_qos", Pattern: "besteffort" }])), ["web-1", "dns-1"]);
  assertEquals(admitted(rules([{ Field: "container_host_namespace", Pattern: "^application-" }], [])), [
    "web-1",
  ]);
  assertEquals(
    admitted(
      rules(
        [{ Field: "container_qos", Pattern: "e" }], // all three
        [{ Field: "container_hostname", Pattern: "^dns-" }],
      ),
    ),
    ["web-1", "job-7"],
  );
  assertEquals(admitted(rules([{ Field: "container_qos", Pattern: "" }], [])), ["web-1", "job-7", "dns-1"]);
});
