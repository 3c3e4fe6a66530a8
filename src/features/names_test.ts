import { assert, assertStrictEquals } from "../../testing/assert.ts";
import { ConfigError, loadConfig } from "../config/load.ts";
import { checkFeatureNames, featureNames } from "./names.ts";

const SHIPPED = new URL("../../huatuo-bamai.conf", import.meta.url).pathname;

function error(fn: () => void): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("no error");
}

Deno.test("featureNames: collectors, container-only collectors, event tracers and HUATUO-only names", () => {
  const names = featureNames();
  for (
    const n of ["cpu_util", "dropwatch", "memory_events", "cpu_stat", "softirq_tracing", "oom", "netdev_hw"]
  ) {
    assert(names.includes(n), n);
  }
  assertStrictEquals(new Set(names).size, names.length, "no duplicates");
});

Deno.test("the shipped config's BlackList passes", async () => {
  const config = await loadConfig(SHIPPED);
  assert(config.BlackList.length > 0);
  checkFeatureNames(config.BlackList, [], SHIPPED);
});

Deno.test("checkFeatureNames names the file and the key, or the flag, with a suggestion", () => {
  const e = error(() => checkFeatureNames(["netdev_hw", "dropwatchh"], [], "huatuo-bamai.conf"));
  assertStrictEquals(
    e.message,
    'config huatuo-bamai.conf: BlackList: unknown name "dropwatchh" (did you mean "dropwatch"?)',
  );
  assertStrictEquals(e.file, "huatuo-bamai.conf");
  const f = error(() => checkFeatureNames([], ["runqlta"], "x.conf"));
  assertStrictEquals(f.message, 'flag --disable-tracing: unknown name "runqlta" (did you mean "runqlat"?)');
  checkFeatureNames(["oom"], ["softirq_tracing", "memory_events"], "x.conf");
});
