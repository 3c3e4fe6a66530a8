import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStrictEquals,
} from "../../testing/assert.ts";
import { parse as parseToml } from "smol-toml";
import {
  ConfigError,
  type ConfigProblem,
  formatPath,
  loadConfig,
  parseConfig,
  render,
  suggest,
} from "./load.ts";
import { defaultConfig } from "./schema.ts";

const FILE = "/etc/huatuo-bamai/huatuo-bamai.conf";
const SHIPPED = new URL("../../huatuo-bamai.conf", import.meta.url).pathname;

/** Parses `text`, which must fail, and returns the ConfigError. */
function fail(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`parsed without error:\n${text}`);
}

function only(text: string): ConfigProblem {
  const err = fail(text);
  assertStrictEquals(err.problems.length, 1, err.message);
  return err.problems[0];
}

Deno.test("an empty file yields defaultConfig()", () => {
  assertEquals(parseConfig("", FILE), defaultConfig());
  assertEquals(parseConfig("# only a comment\n\n[Log]\n[Storage.ES]\n", FILE), defaultConfig());
});

Deno.test("an empty file yields the seed defaults", () => {
  const c = parseConfig("", FILE);
  assertStrictEquals(c.EventTracing.Softirq.DisabledThreshold, 10000000);
  assertStrictEquals(c.EventTracing.MemoryReclaim.BlockedThreshold, 900000000);
  assertStrictEquals(c.EventTracing.NetRxLatency.Driver2Userspace, 115);
  assertStrictEquals(c.EventsWatch.MaxClients, 100);
  assertStrictEquals(c.EventsWatch.KeepAliveInterval, 30);
  assertEquals(c.Storage.LocalFile, { Path: "huatuo-local", RotationSize: 100, MaxRotation: 10 });
  assertEquals(c.RuntimeCgroup, { LimitInitCPU: 0.5, LimitCPU: 2.0, LimitMem: 2048 });
  assertStrictEquals(c.APIServer.TCPAddr, ":19704");
  assertStrictEquals(c.Pod.KubeletReadOnlyPort, 10255);
  assertStrictEquals(c.Pod.KubeletAuthorizedPort, 10250);
  assertStrictEquals(c.Log.Level, "Info");
  assertStrictEquals(c.Storage.ES.Address, "http://127.0.0.1:9200");
});

Deno.test("the shipped huatuo-bamai.conf loads with the seed's values", async () => {
  const c = await loadConfig(SHIPPED);
  assertEquals(c.BlackList, ["netdev_hw", "metax_gpu"]);
  assert(c.MetricCollector.Vmstat.IncludedOnHost.startsWith("allocstall|nr_active_anon"));
  assert(c.MetricCollector.Vmstat.IncludedOnContainer.startsWith("active_anon|active_file"));
  assertStrictEquals(c.MetricCollector.Vmstat.ExcludedOnHost, "total");
  assertStrictEquals(c.MetricCollector.Vmstat.ExcludedOnContainer, "total");
  assertStrictEquals(c.MetricCollector.NetdevStats.DeviceExcluded, "^(lo)|(docker\\w*)|(veth\\w*)$");
  assertStrictEquals(c.MetricCollector.Qdisc.DeviceExcluded, "^(lo)|(docker\\w*)|(veth\\w*)$");
  assertEquals(c.MetricCollector.NetdevDCB.DeviceList, ["eth0", "eth1"]);
  assertEquals(c.MetricCollector.NetdevHW.DeviceList, ["eth0", "eth1"]);
  assertStrictEquals(c.MetricCollector.MemoryEvents.Included, "watermark_inc|watermark_dec");
  assertStrictEquals(c.MetricCollector.MountPointStat.MountPointsIncluded, "(^/home$)|(^/$)|(^/boot$)");
  assertEquals(c.EventTracing.Netdev.DeviceList, ["eth0", "eth1", "bond4", "lo"]);
  assertEquals(c.EventTracing.NetRxLatency.ExcludedContainerQos, ["besteffort"]);
  assertEquals(c.AutoTracing.IssuesList, []);
  assertEquals(c.EventTracing.IssuesList, []);
  assertStrictEquals(c.Storage.ES.Username, "elastic");
  assertStrictEquals(c.Storage.ES.Password, "huatuo-bamai");
  assert(c.Pod.KubeletClientCertPath.startsWith("/etc/kubernetes/pki/apiserver-kubelet-client.crt,"));
  // everything commented out keeps the default
  const d = defaultConfig();
  assertEquals(c.AutoTracing.CPUIdle, d.AutoTracing.CPUIdle);
  assertEquals(c.Storage.LocalFile, d.Storage.LocalFile);
  assertEquals(c.APIServer, d.APIServer);
});

Deno.test("the shipped conf documents every key, and its commented values are the defaults", async () => {
  const text = await Deno.readTextFile(SHIPPED);
  // Uncomment every "<indent># Key = value" line whose key is not already set in its table.
  const out: string[] = [];
  let setHere = new Set<string>();
  const lines = text.split("\n");
  const assigned = (from: number, key: string) => {
    for (let i = from; i < lines.length && !/^\s*\[/.test(lines[i]); i++) {
      if (new RegExp(`^\\s*${key} = `).test(lines[i])) return true;
    }
    return false;
  };
  lines.forEach((line, i) => {
    if (/^\s*\[/.test(line)) setHere = new Set();
    const m = /^(\t+)# ([A-Za-z0-9]+) = (.*)$/.exec(line);
    if (m && !setHere.has(m[2]) && !assigned(i + 1, m[2])) {
      setHere.add(m[2]);
      out.push(`${m[1]}${m[2]} = ${m[3]}`);
    } else {
      const k = /^\s*([A-Za-z0-9]+) = /.exec(line);
      if (k) setHere.add(k[1]);
      out.push(line);
    }
  });
  const uncommented = out.join("\n");
  // the commented defaults equal the schema defaults
  assertEquals(parseConfig(uncommented, SHIPPED), await loadConfig(SHIPPED));
  // and every key of the schema appears (Filter rules are arrays of tables, shown as examples)
  const keysOf = (v: unknown, prefix: string): string[] =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.entries(v).flatMap(([k, x]) => k === "Filter" ? [] : keysOf(x, prefix ? `${prefix}.${k}` : k))
      : [prefix];
  assertEquals(keysOf(parseToml(uncommented), "").sort(), keysOf(defaultConfig(), "").sort());
  for (const section of ["CPUIdle", "Dload", "IOTracing"]) {
    assertMatch(text, new RegExp(`# \\[\\[AutoTracing\\.${section}\\.Filter\\.(Included|Excluded)\\]\\]`));
  }
});

Deno.test("unknown top-level key: suggests the closest known key", () => {
  const p = only('blacklist = ["x"]');
  assertEquals(p, {
    path: "blacklist",
    expected: 'a known top-level key (did you mean "BlackList"?)',
    found: "an array",
  });
  const t = only("[Stroage.LocalFile]\nPath = 'x'");
  assertStrictEquals(t.path, "Stroage");
  assertMatch(t.expected, /did you mean "Storage"\?/);
  assertStrictEquals(t.found, "a table");
});

Deno.test("unknown nested key: suggests Level for Levle", () => {
  const err = fail('[Log]\nLevle = "Info"');
  assertEquals(err.problems, [{
    path: "Log.Levle",
    expected: 'a known key of Log (did you mean "Level"?)',
    found: '"Info"',
  }]);
  assertStrictEquals(
    err.message,
    `config ${FILE}: Log.Levle: expected a known key of Log (did you mean "Level"?), found "Info"`,
  );
});

Deno.test("unknown key with nothing close: no suggestion", () => {
  const p = only("[EventsWatch]\nCompletelyDifferent = 1");
  assertStrictEquals(p.expected, "a known key of EventsWatch");
});

Deno.test("unknown key inside an array of tables", () => {
  const p = only(
    '[[AutoTracing.Dload.Filter.Excluded]]\nField = "container_qos"\nPattern = "x"\npattern2 = 1',
  );
  assertStrictEquals(p.path, "AutoTracing.Dload.Filter.Excluded[0].pattern2");
  assertMatch(
    p.expected,
    /^a known key of AutoTracing\.Dload\.Filter\.Excluded\[0\] \(did you mean "Pattern"\?\)$/,
  );
});

Deno.test("wrong type", () => {
  assertEquals(only('[EventsWatch]\nMaxClients = "many"'), {
    path: "EventsWatch.MaxClients",
    expected: "an integer >= 1",
    found: '"many"',
  });
  assertEquals(only("[Log]\nFile = 3"), { path: "Log.File", expected: "a string", found: "3" });
  assertEquals(only("[Log]\nFile = [1]"), { path: "Log.File", expected: "a string", found: "an array" });
  assertEquals(only("Log = true"), { path: "Log", expected: "a table", found: "true" });
  assertEquals(
    only("[EventTracing.Dropwatch]\nExcludedNeighInvalidate = 'no'").expected,
    "a boolean (true or false)",
  );
  assertEquals(only("[RuntimeCgroup]\nLimitMem = 2048.5").found, "2048.5");
  assertEquals(only("[Log]\nFile = 1979-05-27").found, "a date-time");
});

Deno.test("enum value", () => {
  assertEquals(only('[Log]\nLevel = "Verbose"'), {
    path: "Log.Level",
    expected: "one of Debug, Info, Warn, Error, Panic",
    found: '"Verbose"',
  });
});

Deno.test("negative size", () => {
  const err = fail("[Storage.LocalFile]\nRotationSize = -5");
  assertEquals(err.problems, [{
    path: "Storage.LocalFile.RotationSize",
    expected: "an integer >= 1",
    found: "-5",
  }]);
  assertStrictEquals(
    err.message,
    `config ${FILE}: Storage.LocalFile.RotationSize: expected an integer >= 1, found -5`,
  );
  assertStrictEquals(err.file, FILE);
});

Deno.test("out-of-range numbers", () => {
  assertStrictEquals(only("[Pod]\nKubeletReadOnlyPort = 70000").expected, "an integer between 0 and 65535");
  assertStrictEquals(
    only("[AutoTracing.CPUIdle]\nUserThreshold = 150").expected,
    "an integer between 0 and 100",
  );
  assertStrictEquals(only("[RuntimeCgroup]\nLimitCPU = 0.0").expected, "a number > 0");
  assertStrictEquals(only("[Storage.LocalFile]\nMaxRotation = -1").expected, "an integer >= 0");
  assertStrictEquals(only("[RuntimeCgroup]\nLimitCPU = inf").found, "inf");
});

Deno.test("bad regular expression", () => {
  const p = only('[MetricCollector.NetdevStats]\nDeviceExcluded = "(unclosed"');
  assertStrictEquals(p.path, "MetricCollector.NetdevStats.DeviceExcluded");
  assertStrictEquals(p.expected, "a valid regular expression");
  assertMatch(p.found, /^"\(unclosed" \(.*group.*\)$/);
});

Deno.test("bad Filter rule: Field and Pattern", () => {
  const err = fail(
    "[[AutoTracing.CPUIdle.Filter.Included]]\n" +
      'Field = "container_qos"\nPattern = "besteffort"\n' +
      "[[AutoTracing.CPUIdle.Filter.Included]]\n" +
      'Field = "container_name"\nPattern = "[a-"\n' +
      "[[AutoTracing.IOTracing.Filter.Excluded]]\n" +
      'Pattern = "x"\n',
  );
  assertEquals(err.problems, [
    {
      path: "AutoTracing.CPUIdle.Filter.Included[1].Field",
      expected: "one of container_host_namespace, container_hostname, container_qos",
      found: '"container_name"',
    },
    {
      path: "AutoTracing.CPUIdle.Filter.Included[1].Pattern",
      expected: "a valid regular expression",
      found: '"[a-" (Unterminated character class)',
    },
    {
      path: "AutoTracing.IOTracing.Filter.Excluded[0].Field",
      expected: "one of container_host_namespace, container_hostname, container_qos",
      found: "nothing (the key is missing)",
    },
  ]);
});

Deno.test("bad IssuesList entries", () => {
  const err = fail('[AutoTracing]\nIssuesList = [["ok", "softlockup"], ["no-regex"], ["n", 3], "flat"]\n');
  assertEquals(err.problems.map((p) => [p.path, p.found]), [
    ["AutoTracing.IssuesList[1]", "an array"],
    ["AutoTracing.IssuesList[2][1]", "3"],
    ["AutoTracing.IssuesList[3]", '"flat"'],
  ]);
  assertMatch(err.problems[0].expected, /pair/);
  const bad = only('[EventTracing]\nIssuesList = [["n", "comm=(x"]]');
  assertEquals([bad.path, bad.expected], ["EventTracing.IssuesList[0][1]", "a valid regular expression"]);
});

Deno.test("IssuesList after a sub-table belongs to the sub-table", () => {
  const p = only("[AutoTracing.CPUSys]\nIssuesList = []");
  assertStrictEquals(p.path, "AutoTracing.CPUSys.IssuesList");
});

Deno.test("malformed TOML names the file, line and column", () => {
  const err = fail('[Log]\nLevel = "Info"\nFile = = 2\n');
  assertStrictEquals(err.file, FILE);
  assertStrictEquals(err.line, 3);
  assertStrictEquals(err.problems.length, 0);
  assertMatch(err.message, new RegExp(`^config ${FILE}:3:\\d+: invalid TOML at line 3, column \\d+: \\S`));
  assert(!err.message.includes("\n"), err.message);
  const dup = fail("[Log]\nLevel = 'Info'\nLevel = 'Debug'\n");
  assertStrictEquals(dup.line, 3);
});

Deno.test("several problems are reported at once, one per line", () => {
  const err = fail(
    '[Log]\nLevel = "Verbose"\nLevle = "x"\n' +
      "[Storage.LocalFile]\nRotationSize = -5\nMaxRotation = 1.5\n" +
      '[EventsWatch]\nMaxClients = "many"\n' +
      '[APIServer]\nTCPAddr = "19704"\n',
  );
  assertEquals(err.problems.map((p) => p.path).sort(), [
    "APIServer.TCPAddr",
    "EventsWatch.MaxClients",
    "Log.Level",
    "Log.Levle",
    "Storage.LocalFile.MaxRotation",
    "Storage.LocalFile.RotationSize",
  ]);
  const lines = err.message.split("\n");
  assertStrictEquals(lines.length, 6);
  for (const [i, p] of err.problems.entries()) {
    assertStrictEquals(lines[i], `config ${FILE}: ${p.path}: expected ${p.expected}, found ${p.found}`);
  }
  assert(err instanceof Error);
  assertStrictEquals(err.name, "ConfigError");
});

Deno.test("loadConfig: missing file names it", async () => {
  const missing = "/nonexistent/dir/huatuo-bamai.conf";
  await assertRejects(() => loadConfig(missing), ConfigError);
  try {
    await loadConfig(missing);
  } catch (err) {
    assert(err instanceof ConfigError);
    assertStrictEquals(err.file, missing);
    assertStrictEquals(err.message, `config ${missing}: cannot read: file not found`);
  }
});

Deno.test("loadConfig: reads and validates a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/good.conf`;
    await Deno.writeTextFile(good, '[APIServer]\nTCPAddr = "127.0.0.1:9999"\n');
    assertStrictEquals((await loadConfig(good)).APIServer.TCPAddr, "127.0.0.1:9999");
    const bad = `${dir}/bad.conf`;
    await Deno.writeTextFile(bad, "[Storage.LocalFile]\nRotationSize = -5\n");
    await assertRejects(() => loadConfig(bad), new RegExp(`config ${bad}: Storage.LocalFile.RotationSize: `));
    const binary = `${dir}/binary.conf`;
    await Deno.writeFile(binary, new Uint8Array([0xff, 0xfe, 0x00]));
    await assertRejects(() => loadConfig(binary), /not valid UTF-8/);
    await assertRejects(() => loadConfig(dir), ConfigError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Storage.ES.Index: a name the store would refuse is a config error with the reason", () => {
  const p = only('[Storage.ES]\nIndex = "UPPER"\n');
  assertStrictEquals(p.path, "Storage.ES.Index");
  assertMatch(p.expected, /^an index name: lowercase/);
  assertStrictEquals(p.found, '"UPPER" (has uppercase letters)');
  const err = fail('[Storage.ES]\nIndex = "_x"\n');
  assertMatch(
    err.message,
    /^config \/etc\/huatuo-bamai\/huatuo-bamai\.conf: Storage\.ES\.Index: expected an index name: .*, found "_x" \(starts with _\)$/,
  );
});

/** The ConfigError loadConfig(file) rejects with, and how long it took. */
async function loadError(file: string, maxBytes?: number): Promise<{ err: ConfigError; ms: number }> {
  const t0 = performance.now();
  try {
    await loadConfig(file, maxBytes);
  } catch (err) {
    if (err instanceof ConfigError) return { err, ms: performance.now() - t0 };
    throw err;
  }
  throw new Error(`${file} loaded`);
}

Deno.test("loadConfig: only a regular file under the size cap (/dev/zero, a FIFO, a 1 GB file)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const zero = await loadError("/dev/zero");
    assertStrictEquals(
      zero.err.message,
      "config /dev/zero: cannot read: not a regular file (a character device); the config must be a regular file",
    );
    const fifo = `${dir}/fifo.conf`;
    assert((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    const f = await loadError(fifo);
    assertMatch(f.err.message, new RegExp(`^config ${fifo}: cannot read: not a regular file \\(a FIFO\\)`));
    assert(f.ms < 1000, `a FIFO took ${f.ms} ms`);
    const big = `${dir}/big.conf`;
    const file = await Deno.open(big, { write: true, create: true });
    await file.truncate(1024 * 1024 * 1024);
    file.close();
    const b = await loadError(big);
    assertStrictEquals(
      b.err.message,
      `config ${big}: cannot read: larger than 1 MiB, the limit for a config file`,
    );
    assert(b.ms < 1000, `a 1 GB file took ${b.ms} ms`);
    const small = `${dir}/small.conf`;
    await Deno.writeTextFile(small, "# " + "x".repeat(100) + "\n");
    assertMatch((await loadError(small, 64)).err.message, /larger than 64 bytes/);
    assertStrictEquals((await loadConfig(small)).Log.Level, "Info");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("helpers: formatPath, render, suggest", () => {
  assertStrictEquals(
    formatPath(["AutoTracing", "CPUIdle", "Filter", "Included", 1, "Pattern"]),
    "AutoTracing.CPUIdle.Filter.Included[1].Pattern",
  );
  assertStrictEquals(formatPath(["Log", "a key"]), 'Log."a key"');
  assertStrictEquals(render(-5), "-5");
  assertStrictEquals(render("Verbose"), '"Verbose"');
  assertStrictEquals(render(true), "true");
  assertStrictEquals(render({}), "a table");
  assertStrictEquals(render([1]), "an array");
  assertStrictEquals(suggest("level", ["Level", "File"]), "Level");
  assertStrictEquals(suggest("Levle", ["Level", "File"]), "Level");
  assertStrictEquals(suggest("RotationSzie", ["Path", "RotationSize", "MaxRotation"]), "RotationSize");
  assertStrictEquals(suggest("Q", ["Level", "File"]), undefined);
});
