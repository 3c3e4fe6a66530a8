// cpu_util (host): the since-boot average until the first window completes
// (what the golden fixture expects), the same value for every scrape within a
// window, a 4-field "cpu" line, a missing /proc/stat. Every test closes its
// collector: that stops the shared sampler's timer (window_test.ts checks it).
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { defaultConfig } from "../../config/schema.ts";
import { HostFs } from "../../host/fs.ts";
import { silentLogger } from "../../log/logger.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import type { FeatureContext } from "../feature.ts";
import cpuUtil from "./cpu_util.ts";

const ctx = (root: string): FeatureContext => ({
  fs: new HostFs(root),
  config: defaultConfig(),
  log: silentLogger,
  bpf: new BpfRuntime(""),
});

const values = (samples: { name: string; value: number }[]) =>
  Object.fromEntries(samples.map((s) => [s.name, s.value]));

Deno.test("cpu_util: the fixture's since-boot average, identical for back-to-back scrapes", async () => {
  const c = cpuUtil.create(ctx("fixtures")).collector!;
  try {
    const first = values(await c.collect());
    // fixtures/expected_metrics/cpu.txt
    assertEquals(first, {
      cpu_util_sys: 2.35611678643474,
      cpu_util_usr: 6.381329102565022,
      cpu_util_total: 8.795595023582706,
    });
    assertEquals(values(await c.collect()), first);
  } finally {
    c.close?.();
  }
});

Deno.test("cpu_util: a 4-field cpu line works; a missing /proc/stat fails naming it", async () => {
  const root = await Deno.makeTempDir({ prefix: "huatuo-cpu-util-" });
  try {
    await Deno.mkdir(`${root}/proc`);
    await Deno.writeTextFile(`${root}/proc/stat`, "cpu  60 0 20 120\n");
    const c = cpuUtil.create(ctx(root)).collector!;
    try {
      assertEquals(values(await c.collect()), { cpu_util_sys: 10, cpu_util_usr: 30, cpu_util_total: 40 });
    } finally {
      c.close?.();
    }
    await Deno.remove(`${root}/proc/stat`);
    const gone = cpuUtil.create(ctx(root)).collector!;
    try {
      await assertRejects(() => gone.collect(), /proc\/stat: no such file or directory/);
    } finally {
      gone.close?.();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
