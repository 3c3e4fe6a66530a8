// deploy/logrotate/huatuo-bamai with the real logrotate against the real
// agent: the shipped snippet, with its path set to the agent's Log.File and
// its postrotate signalling the agent directly (no systemd here), rotates the
// file; the agent reopens the path on SIGHUP and keeps logging into the new
// file, while the rotated one keeps the lines from before.

import { assert, assertMatch } from "../testing/assert.ts";
import { ROOT, startAgent } from "./agent.ts";
import { run, sleep } from "./load.ts";

Deno.test("logrotate with the shipped snippet rotates Log.File and the agent reopens it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-it-logrotate-" });
  const logFile = `${dir}/huatuo-bamai.log`;
  const agent = await startAgent({
    args: ["--region", "dev", "--procfs-prefix", "fixtures", "--disable-storage", "--disable-kubelet"],
    conf: (p) => `[Log]\nFile = "${logFile}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
  });
  try {
    const shipped = Deno.readTextFileSync(`${ROOT}/deploy/logrotate/huatuo-bamai`);
    const conf = shipped.replace("/var/log/huatuo-bamai/huatuo-bamai.log", logFile)
      .replace(/systemctl kill [^\n]*/, `kill -HUP ${agent.child.pid}`);
    assert(conf !== shipped && conf.includes(logFile) && conf.includes("kill -HUP"), "snippet adapted");
    Deno.writeTextFileSync(`${dir}/logrotate.conf`, conf);
    const before = Deno.readTextFileSync(logFile);
    assertMatch(before, /huatuo-bamai ready/);
    // -f: rotate now (the snippet says daily); -s: a state file of our own.
    await run("logrotate", ["-f", "-s", `${dir}/state`, `${dir}/logrotate.conf`]);
    assertMatch(Deno.readTextFileSync(`${logFile}.1`), /huatuo-bamai ready/);
    const deadline = Date.now() + 5000;
    while (true) {
      try {
        if (Deno.readTextFileSync(logFile).includes("log file reopened")) break;
      } catch { /* not recreated yet */ }
      assert(Date.now() < deadline, `${logFile} not recreated after logrotate:\n${agent.output()}`);
      await sleep(50);
    }
    const health = await fetch(`${agent.url}/healthz`);
    await health.body?.cancel();
    assert(health.ok, "still serving after the rotation");
  } finally {
    await agent.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});
