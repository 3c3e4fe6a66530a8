import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import { configPath, parseArgs, usage, UsageError } from "./flags.ts";

Deno.test("seed example: --region example --config huatuo-bamai.conf", () => {
  const cmd = parseArgs(["--region", "example", "--config", "huatuo-bamai.conf"]);
  assert(cmd.kind === "run");
  assertEquals(cmd.options.region, "example");
  assertEquals(configPath(cmd.options), "./huatuo-bamai.conf");
  assertEquals(cmd.options.configExplicit, true);
});

Deno.test("seed example: --region dev --config-dir .", () => {
  const cmd = parseArgs(["--region", "dev", "--config-dir", "."]);
  assert(cmd.kind === "run");
  assertEquals(configPath(cmd.options), "./huatuo-bamai.conf");
});

Deno.test("integration form: every flag, = syntax and single dash", () => {
  const cmd = parseArgs([
    "-region=dev",
    "--procfs-prefix",
    "fixtures",
    "--disable-storage",
    "--disable-kubelet",
    "--disable-tracing",
    "arp",
    "--disable-tracing=netstat,qdisc",
    "--enable-cgroup=false",
    "--bpf-dir",
    "/opt/bpf",
    "--tools-bin-dir",
    "/opt/bin",
    "--log-debug",
    "--dry-run",
    "--config",
    "/etc/huatuo-bamai/x.conf",
  ]);
  assert(cmd.kind === "run");
  const o = cmd.options;
  assertEquals(
    [o.region, o.procfsPrefix, o.disableStorage, o.disableKubelet, o.enableCgroup, o.logDebug, o.dryRun],
    ["dev", "fixtures", true, true, false, true, true],
  );
  assertEquals(o.disableTracing, ["arp", "netstat", "qdisc"]);
  assertEquals([o.bpfDir, o.toolsBinDir], ["/opt/bpf", "/opt/bin"]);
  assertEquals(configPath(o), "/etc/huatuo-bamai/x.conf");
});

Deno.test("defaults: config from the current directory, not explicit", () => {
  const cmd = parseArgs(["--region", "r"]);
  assert(cmd.kind === "run");
  assertEquals(configPath(cmd.options), "./huatuo-bamai.conf");
  assertEquals(cmd.options.configExplicit, false);
});

Deno.test("usage errors: missing region, unknown flag, missing value, bad bool", () => {
  assertThrows(() => parseArgs([]), /--region is required/);
  assertThrows(() => parseArgs(["--region", ""]), /--region is required/);
  assertThrows(() => parseArgs(["--region", "x", "--regoin", "y"]), /unknown flag --regoin/);
  assertThrows(() => parseArgs(["--region"]), /needs a value/);
  assertThrows(() => parseArgs(["--region", "x", "--dry-run=maybe"]), /true or false/);
  assertThrows(() => parseArgs(["--region", "x", "stray"]), UsageError);
});

Deno.test("help and version win over a missing region", () => {
  assertEquals(parseArgs(["--help"]).kind, "help");
  assertEquals(parseArgs(["-h"]).kind, "help");
  assertEquals(parseArgs(["--version"]).kind, "version");
  assert(usage().includes("--procfs-prefix"));
});
