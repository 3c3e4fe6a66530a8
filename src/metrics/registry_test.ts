import { silentLogger } from "../log/logger.ts";
import { assert, assertEquals, assertMatch } from "../../testing/assert.ts";
import type { Collector } from "../core/collector.ts";
import { renderLabels } from "./exposition.ts";
import { Registry } from "./registry.ts";
import { counter, gauge } from "../core/sample.ts";

const ok: Collector = {
  name: "good",
  collect: () =>
    Promise.resolve([
      gauge("loadavg_load1", "system load average, 1 minute", 0.3),
      counter("netdev_receive_bytes_total", "Network device statistic receive_bytes.", 2.5e9, {
        device: "eth0",
      }),
      counter("netdev_receive_bytes_total", "Network device statistic receive_bytes.", 10, {
        device: "bond0",
      }),
    ]),
};
const broken: Collector = {
  name: "broken",
  collect: () => Promise.reject(new Error("/proc/loadavg: no such file or directory")),
};

Deno.test("scrape: prefix, host/region labels, sorting, HELP/TYPE once per family", async () => {
  const r = new Registry({ host: "huatuo-dev", region: "dev" }, silentLogger);
  r.register(ok);
  const { text, seriesCount } = await r.scrape();
  const want = [
    "# HELP huatuo_bamai_loadavg_load1 system load average, 1 minute",
    "# TYPE huatuo_bamai_loadavg_load1 gauge",
    'huatuo_bamai_loadavg_load1{host="huatuo-dev",region="dev"} 0.3',
    "# HELP huatuo_bamai_netdev_receive_bytes_total Network device statistic receive_bytes.",
    "# TYPE huatuo_bamai_netdev_receive_bytes_total counter",
    'huatuo_bamai_netdev_receive_bytes_total{device="bond0",host="huatuo-dev",region="dev"} 10',
    'huatuo_bamai_netdev_receive_bytes_total{device="eth0",host="huatuo-dev",region="dev"} 2500000000',
  ].join("\n");
  assert(text.includes(want), text);
  assertEquals(seriesCount, 5); // 3 samples + duration + success
  assertMatch(
    text,
    /huatuo_bamai_scrape_collector_success\{collector="good",host="huatuo-dev",region="dev"\} 1\n/,
  );
});

Deno.test("a failing collector reports success 0, logs once, and never fails the scrape", async () => {
  const lines: string[] = [];
  const log = {
    ...silentLogger,
    error: (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${f?.error}`),
  };
  const r = new Registry({ host: "h", region: "r" }, log);
  r.register(broken);
  r.register(ok);
  for (let i = 0; i < 3; i++) {
    const { text } = await r.scrape();
    assertMatch(text, /scrape_collector_success\{collector="broken",host="h",region="r"\} 0/);
    assertMatch(text, /scrape_collector_success\{collector="good",host="h",region="r"\} 1/);
    assertMatch(text, /huatuo_bamai_loadavg_load1\{host="h",region="r"\} 0.3/);
  }
  assertEquals(lines, ["collector failed /proc/loadavg: no such file or directory"]);
});

Deno.test("collectors run concurrently", async () => {
  const slow = (name: string): Collector => ({
    name,
    collect: () => new Promise((res) => setTimeout(() => res([gauge(`${name}_x`, "x", 1)]), 100)),
  });
  const r = new Registry({}, silentLogger);
  for (const n of ["a", "b", "c", "d"]) r.register(slow(n));
  const t0 = performance.now();
  await r.scrape();
  const elapsed = performance.now() - t0;
  assert(elapsed < 350, `4 x 100 ms collectors took ${elapsed} ms`);
});

Deno.test("label values and help are escaped", () => {
  assertEquals(renderLabels({ b: 'a"b\\c\nd', a: "x" }), '{a="x",b="a\\"b\\\\c\\nd"}');
});
