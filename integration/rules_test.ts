// deploy/: the alerting rules pass `promtool check rules` and their unit tests
// (`promtool test rules` with deploy/prometheus/rules_test.yml), and the
// dashboards' JSON files are what deploy/grafana/dashboards.ts generates.

import { assertEquals } from "../testing/assert.ts";
import { DASHBOARDS, grafanaDashboard } from "../deploy/grafana/dashboards.ts";
import { ROOT } from "./agent.ts";
import { run } from "./load.ts";

Deno.test("promtool check rules deploy/prometheus/rules.yml", async () => {
  const res = await run("promtool", ["check", "rules", `${ROOT}/deploy/prometheus/rules.yml`]);
  assertEquals(/SUCCESS: \d+ rules found/.test(res.stdout + res.stderr), true, res.stdout + res.stderr);
});

Deno.test("promtool test rules deploy/prometheus/rules_test.yml", async () => {
  const res = await run("promtool", ["test", "rules", `${ROOT}/deploy/prometheus/rules_test.yml`], {
    check: false,
  });
  assertEquals(res.code, 0, res.stdout + res.stderr);
});

Deno.test("deploy/grafana/*.json are what dashboards.ts generates (run it after editing)", () => {
  for (const d of DASHBOARDS) {
    const committed = JSON.parse(Deno.readTextFileSync(`${ROOT}/deploy/grafana/${d.file}`));
    assertEquals(committed, grafanaDashboard(d), d.file);
  }
});
