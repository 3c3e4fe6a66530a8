// Tracer control on the real agent: with APIServer.Token set, POST
// /v1/tracers/{name}/stop and /start need the bearer token; stopping a BPF
// tracer releases its programs in the kernel, starting it loads them again.

import { assert, assertEquals } from "../testing/assert.ts";
import { confWithPort, heldProgIds, isRoot, startAgent } from "./agent.ts";

const TOKEN = "it-token-0123";

if (!isRoot()) console.warn("control_test: skipped (needs root to load BPF programs)");

Deno.test({
  name: "control: stop/start a BPF tracer by name with the bearer token; its programs leave and come back",
  ignore: !isRoot(),
  fn: async () => {
    const agent = await startAgent({
      args: ["--region", "it", "--disable-kubelet", "--disable-storage"], // no ES outbox in the repository
      conf: (port) =>
        confWithPort(
          port,
          (t) =>
            t.replace(/^\s*# Token = ""\s*$/m, `\tToken = "${TOKEN}"`)
              .replace(/^\s*# Path = "huatuo-local"\s*$/m, '\tPath = ""'),
        ),
    });
    try {
      const post = (path: string, token?: string) =>
        fetch(`${agent.url}${path}`, {
          method: "POST",
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
      const state = async () => (await (await fetch(`${agent.url}/v1/tracers/runqlat`)).json()).state;
      assertEquals(await state(), "running");
      const before = heldProgIds(agent.child.pid).size;
      assert(before > 0, "the agent holds no BPF programs");

      const denied = await post("/v1/tracers/runqlat/stop");
      assertEquals(denied.status, 401);
      assertEquals((await denied.json()).error, "missing or wrong bearer token");
      assertEquals(await state(), "running");

      const stopped = await post("/v1/tracers/runqlat/stop", TOKEN);
      assertEquals(stopped.status, 200);
      assertEquals((await stopped.json()).state, "stopped");
      const afterStop = heldProgIds(agent.child.pid).size;
      assert(afterStop < before, `programs held: ${before} before stop, ${afterStop} after`);
      // The collector reading a stopped tracer fails alone; the scrape goes on.
      const metrics = await (await fetch(`${agent.url}/metrics`)).text();
      assert(/huatuo_bamai_scrape_collector_success\{collector="runqlat",[^}]*\} 0/.test(metrics));
      assert(/huatuo_bamai_scrape_collector_success\{collector="loadavg",[^}]*\} 1/.test(metrics));

      const started = await post("/v1/tracers/runqlat/start", TOKEN);
      assertEquals((await started.json()).state, "running");
      assertEquals(heldProgIds(agent.child.pid).size, before);

      assertEquals((await post("/v1/tracers/nope/start", TOKEN)).status, 404);
      const bad = await fetch(`${agent.url}/v1/tracers/runqlat/stop`);
      assertEquals(bad.status, 405);
      await bad.body?.cancel();
    } finally {
      await agent.stop();
    }
  },
});
