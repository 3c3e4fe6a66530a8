// The real binary's command line, config errors, HTTP errors, and lifecycle.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { confWithPort, freePort, isRoot, runBinary, startAgent } from "./agent.ts";
import { exists } from "../testing/fs.ts";

function tempConf(text: string): { dir: string; file: string } {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-cli-" });
  const file = `${dir}/huatuo-bamai.conf`;
  Deno.writeTextFileSync(file, text);
  return { dir, file };
}

Deno.test("missing --region and unknown flags are usage errors (exit 2)", async () => {
  const none = await runBinary([]);
  assertEquals(none.code, 2);
  assertMatch(none.stderr, /flag --region is required/);
  assertMatch(none.stderr, /Usage: huatuo-bamai --region REGION/);
  const unknown = await runBinary(["--region", "dev", "--no-such-flag"]);
  assertEquals(unknown.code, 2);
  assertMatch(unknown.stderr, /unknown flag --no-such-flag/);
});

Deno.test("--version and --help exit 0", async () => {
  const v = await runBinary(["--version"]);
  assertEquals(v.code, 0);
  // build.sh stamps the git commit and build time into the build.
  assertMatch(
    v.stdout,
    /^huatuo-bamai \d+\.\d+\.\d+ \(revision [0-9a-f]{7,}(-dirty)?, built \d{4}-\d\d-\d\dT[\d:]+Z, deno /,
  );
  const h = await runBinary(["--help"]);
  assertEquals(h.code, 0);
  assertMatch(h.stdout, /--procfs-prefix/);
});

Deno.test("config errors name the file, the key, what was expected and found (exit 2)", async () => {
  const cases: [string, RegExp][] = [
    ["[Log]\nLevel = \n", /huatuo-bamai\.conf:2:\d+: invalid TOML/],
    [
      '[Log]\nLevle = "Info"\n',
      /Log\.Levle: expected a known key of Log \(did you mean "Level"\?\), found "Info"/,
    ],
    [
      "[Storage.LocalFile]\nRotationSize = -5\n",
      /Storage\.LocalFile\.RotationSize: expected an integer >= 1, found -5/,
    ],
    ['[EventsWatch]\nMaxClients = "many"\n', /EventsWatch\.MaxClients: expected .*, found "many"/],
    [
      '[MetricCollector.NetdevStats]\nDeviceExcluded = "(unclosed"\n',
      /MetricCollector\.NetdevStats\.DeviceExcluded: expected a valid regular expression, found "\(unclosed"/,
    ],
  ];
  for (const [text, want] of cases) {
    const { dir, file } = tempConf(text);
    try {
      const r = await runBinary(["--region", "dev", "--config-dir", dir]);
      assertEquals(r.code, 2, `${text} → ${r.stderr}`);
      assertMatch(r.stderr, want);
      assert(r.stderr.includes(file), `error does not name ${file}: ${r.stderr}`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

Deno.test("an explicitly named config file that does not exist is an error", async () => {
  const r = await runBinary(["--region", "dev", "--config", "/nonexistent/huatuo-bamai.conf"]);
  assertEquals(r.code, 2);
  assertMatch(r.stderr, /\/nonexistent\/huatuo-bamai\.conf/);
});

Deno.test("a config that is not a small regular file (/dev/zero, a FIFO, a 1 GB file) exits 2 within 1 s", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-cli-" });
  try {
    const fifo = `${dir}/fifo.conf`;
    assert((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success, "mkfifo");
    const big = `${dir}/big.conf`;
    assert((await new Deno.Command("truncate", { args: ["-s", "1G", big] }).output()).success, "truncate");
    const cases: [string, RegExp][] = [
      ["/dev/zero", /config \/dev\/zero: cannot read: not a regular file \(a character device\)/],
      [fifo, /: cannot read: not a regular file \(a FIFO\)/],
      [big, /: cannot read: larger than 1 MiB, the limit for a config file/],
    ];
    for (const [file, want] of cases) {
      const t0 = performance.now();
      const r = await runBinary(["--region", "dev", "--config", file]);
      const ms = performance.now() - t0;
      assertEquals(r.code, 2, `${file}: ${r.stderr}`);
      assertMatch(r.stderr, want);
      assert(r.stderr.includes(`config ${file}:`), `error does not name ${file}: ${r.stderr}`);
      assert(ms < 1000, `${file}: exit took ${ms.toFixed(0)} ms`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Storage.ES.Index the store would refuse, and unknown BlackList / --disable-tracing names, exit 2", async () => {
  const cases: { conf: string; args?: string[]; want: RegExp }[] = [
    {
      conf: '[Storage.ES]\nIndex = "UPPER"\n',
      want: /Storage\.ES\.Index: expected an index name: .*, found "UPPER" \(has uppercase letters\)/,
    },
    {
      conf: 'BlackList = ["netdev_hw", "dropwatchh"]\n',
      want: /: BlackList: unknown name "dropwatchh" \(did you mean "dropwatch"\?\)/,
    },
    {
      conf: "",
      args: ["--disable-tracing", "runqlat,softirq_tracng"],
      want: /flag --disable-tracing: unknown name "softirq_tracng" \(did you mean "softirq_tracing"\?\)/,
    },
  ];
  for (const c of cases) {
    const { dir, file } = tempConf(c.conf);
    try {
      const r = await runBinary(["--region", "dev", "--config-dir", dir, ...(c.args ?? [])]);
      assertEquals(r.code, 2, `${c.conf} ${c.args ?? ""} → ${r.stderr}`);
      assertMatch(r.stderr, c.want);
      if (!c.args) assert(r.stderr.includes(`config ${file}: `), `error does not name ${file}: ${r.stderr}`);
      assert(!/huatuo-bamai starting/.test(r.stderr), "nothing started");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

Deno.test("port in use: clear error, exit 1", async () => {
  const port = freePort();
  const busy = Deno.listen({ hostname: "127.0.0.1", port });
  const { dir } = tempConf(confWithPort(port));
  try {
    const r = await runBinary(["--region", "dev", "--config-dir", dir, "--disable-storage"]);
    assertEquals(r.code, 1, r.stderr);
    assertMatch(r.stderr, new RegExp(`listen 127\\.0\\.0\\.1:${port}: address already in use`));
  } finally {
    busy.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--dry-run starts everything, scrapes once, exits 0", async () => {
  const { dir } = tempConf(confWithPort(freePort()));
  try {
    const r = await runBinary([
      "--region",
      "dev",
      "--config-dir",
      dir,
      "--procfs-prefix",
      "fixtures",
      "--dry-run",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /msg="dry run scrape" series=\d+ collectors=\d+ failed=""/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--dry-run exits 1 when collectors fail, naming them", async () => {
  const { dir } = tempConf(confWithPort(freePort()));
  const empty = Deno.makeTempDirSync({ prefix: "huatuo-empty-" });
  try {
    const r = await runBinary([
      "--region",
      "dev",
      "--config-dir",
      dir,
      "--procfs-prefix",
      empty,
      "--disable-storage",
      "--disable-kubelet",
      "--dry-run",
    ]);
    assertEquals(r.code, 1, r.stderr);
    const failed = /level=error msg="dry run failed" collectors=(\S+)/.exec(r.stderr)?.[1] ?? "";
    for (const c of ["cpu_util", "loadavg", "memory_vmstat", "netstat"]) {
      assert(failed.split(",").includes(c), `${c} not listed as failed: ${failed}`);
    }
    assertMatch(r.stderr, /msg=stopped/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
    Deno.removeSync(empty, { recursive: true });
  }
});

Deno.test("SIGHUP reopens Log.File (logrotate: mv, then HUP) and the agent keeps running", async () => {
  const logDir = Deno.makeTempDirSync({ prefix: "huatuo-log-" });
  const logFile = `${logDir}/agent.log`;
  const agent = await startAgent({
    args: ["--region", "dev", "--procfs-prefix", "fixtures", "--disable-storage", "--disable-kubelet"],
    conf: (p) => `[Log]\nFile = "${logFile}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
  });
  let exited = false;
  agent.child.status.then(() => exited = true);
  try {
    assertMatch(Deno.readTextFileSync(logFile), /huatuo-bamai ready/);
    assert((await new Deno.Command("mv", { args: [logFile, `${logFile}.1`] }).output()).success, "mv");
    for (let i = 0; i < 2; i++) {
      agent.child.kill("SIGHUP");
      const deadline = Date.now() + 5000;
      while (!exists(logFile) || !Deno.readTextFileSync(logFile).includes("log file reopened")) {
        assert(Date.now() < deadline, `${logFile} not recreated after SIGHUP:\n${agent.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      if (i === 0) Deno.removeSync(logFile); // a second rotation works too
    }
    const health = await fetch(`${agent.url}/healthz`);
    await health.body?.cancel();
    assertEquals(health.status, 200, "still serving after SIGHUP");
    assert(!exited, "the agent exited on SIGHUP");
  } finally {
    const { code } = await agent.stop();
    assertEquals(code, 0, agent.output());
  }
  const fresh = Deno.readTextFileSync(logFile);
  const old = Deno.readTextFileSync(`${logFile}.1`);
  Deno.removeSync(logDir, { recursive: true });
  assertMatch(fresh, /msg="log file reopened"[\s\S]*msg="shutting down"[\s\S]*msg=stopped/);
  assert(!old.includes("shutting down"), "lines after the reopen went to the moved file");
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal}: clean shutdown within 5 s`, async () => {
    const agent = await startAgent({ args: ["--region", "dev", "--procfs-prefix", "fixtures"] });
    const { code, ms } = await agent.stop(signal);
    assertEquals(code, 0, agent.output());
    assert(ms < 5000, `shutdown took ${ms} ms`);
    assertMatch(agent.output(), /msg=stopped/);
  });
}

Deno.test("HTTP: JSON 404 for unknown paths, 405 for wrong methods, health and version", async () => {
  const agent = await startAgent({ args: ["--region", "dev", "--procfs-prefix", "fixtures"] });
  try {
    const nf = await fetch(`${agent.url}/no/such/path`);
    assertEquals(nf.status, 404);
    assertEquals(await nf.json(), { error: "not found", path: "/no/such/path" });
    const post = await fetch(`${agent.url}/metrics`, { method: "POST", body: "x" });
    assertEquals(post.status, 405);
    assertEquals((await post.json()).error, "method not allowed");
    assertEquals((await fetch(`${agent.url}/healthz`).then((r) => r.json())).status, "ok");
    const version = await fetch(`${agent.url}/version`).then((r) => r.json());
    assertMatch(version.version, /^\d+\.\d+\.\d+$/);
    assertMatch(version.revision, /^[0-9a-f]{7,}(-dirty)?$/);
    assertMatch(version.build_time, /^\d{4}-\d\d-\d\dT[\d:]+Z$/);
  } finally {
    await agent.stop();
  }
});

Deno.test("Log.File receives the log; --log-debug overrides Log.Level", async () => {
  const logDir = Deno.makeTempDirSync();
  const logFile = `${logDir}/agent.log`;
  const agent = await startAgent({
    args: ["--region", "dev", "--procfs-prefix", "fixtures/edge/missing", "--log-debug"],
    conf: (p) => `[Log]\nLevel = "Error"\nFile = "${logFile}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
  });
  try {
    await fetch(`${agent.url}/metrics`).then((r) => r.text());
    await fetch(`${agent.url}/metrics`).then((r) => r.text());
  } finally {
    await agent.stop();
  }
  const log = Deno.readTextFileSync(logFile);
  Deno.removeSync(logDir, { recursive: true });
  assertMatch(log, /level=info msg="huatuo-bamai starting"/);
  assertMatch(log, /level=error msg="collector failed" collector=loadavg/);
  assertMatch(log, /level=debug msg="collector still failing" collector=loadavg/);
});

const V1 = (() => {
  try {
    return Deno.statSync("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").isFile &&
      Deno.statSync("/sys/fs/cgroup/memory/memory.limit_in_bytes").isFile;
  } catch {
    return false;
  }
})();
const V2 = (() => {
  try {
    return Deno.statSync("/sys/fs/cgroup/cgroup.controllers").isFile;
  } catch {
    return false;
  }
})();
if (!isRoot()) console.warn("--enable-cgroup test skipped: needs root");

Deno.test({
  name: "--enable-cgroup confines the agent with RuntimeCgroup limits and cleans up",
  ignore: !isRoot() || !(V1 || V2),
  async fn() {
    const agent = await startAgent({
      args: ["--region", "dev", "--procfs-prefix", "fixtures", "--enable-cgroup"],
      conf: (p) =>
        `[RuntimeCgroup]\nLimitInitCPU = 0.5\nLimitCPU = 1.5\nLimitMem = 300\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
    });
    const self = Deno.readTextFileSync(`/proc/${agent.child.pid}/cgroup`);
    let dirs: string[];
    try {
      if (V2) {
        const path = /^0::(.*)$/m.exec(self)![1];
        assert(path.endsWith("/huatuo-bamai"), self);
        const dir = `/sys/fs/cgroup${path}`;
        assertEquals(Deno.readTextFileSync(`${dir}/cpu.max`).trim(), "150000 100000");
        assertEquals(Number(Deno.readTextFileSync(`${dir}/memory.max`)), 300 * 1024 * 1024);
        dirs = [dir];
      } else {
        const cpu = /^\d+:[^:]*\bcpu\b[^:]*:(.*)$/m.exec(self)![1];
        const mem = /^\d+:memory:(.*)$/m.exec(self)![1];
        assert(cpu.endsWith("/huatuo-bamai") && mem.endsWith("/huatuo-bamai"), self);
        const cpuDir = `/sys/fs/cgroup/cpu${cpu}`;
        const memDir = `/sys/fs/cgroup/memory${mem}`;
        assertEquals(Deno.readTextFileSync(`${cpuDir}/cpu.cfs_quota_us`).trim(), "150000");
        assertEquals(Number(Deno.readTextFileSync(`${memDir}/memory.limit_in_bytes`)), 300 * 1024 * 1024);
        assert(Deno.readTextFileSync(`${cpuDir}/cgroup.procs`).split("\n").includes(String(agent.child.pid)));
        dirs = [cpuDir, memDir];
      }
    } finally {
      assertEquals((await agent.stop()).code, 0, agent.output());
    }
    for (const d of dirs) assert(!exists(d), `${d} left behind`);
  },
});
