// POST /v1/events/watch on the real binary, with the seed's curl example
// verbatim: the stream opens, pings, and the agent enforces MaxClients and
// rejects a bad filter with a JSON 400. (Real kernel events on the stream:
// see the hungtask step of bpf_test.ts.)

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { startAgent } from "./agent.ts";

const conf = (port: number) =>
  `[EventsWatch]\nMaxClients = 1\nKeepAliveInterval = 1\n[Storage.LocalFile]\nPath = ""\n[APIServer]\nTCPAddr = "127.0.0.1:${port}"\n`;

/** The seed's example 5.2, verbatim but for the address. */
function curlWatch(url: string, body: string): Deno.ChildProcess {
  return new Deno.Command("curl", {
    args: [
      "-s",
      "-N",
      "-X",
      "POST",
      `${url}/v1/events/watch`,
      "-H",
      "Content-Type: application/json",
      "-H",
      "Accept: text/event-stream",
      "-H",
      "Cache-Control: no-cache",
      "-H",
      "Connection: keep-alive",
      "-d",
      body,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

Deno.test("watch: the seed's curl example streams pings; MaxClients answers 429; a bad regex is a JSON 400", async () => {
  const agent = await startAgent({ args: ["--region", "dev", "--procfs-prefix", "fixtures"], conf });
  const curl = curlWatch(agent.url, '{"filters": {"tracer_name": "^oom$"}}');
  try {
    const reader = curl.stdout.getReader();
    const t0 = performance.now();
    let text = "";
    while (!text.includes(": ping")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const ms = performance.now() - t0;
    assertMatch(text, /^: ping$/m);
    assert(ms < 2500, `first ping after ${ms} ms (KeepAliveInterval = 1 s)`);

    const second = await fetch(`${agent.url}/v1/events/watch`, { method: "POST", body: "{}" });
    assertEquals(second.status, 429);
    assertEquals(second.headers.get("content-type"), "application/json; charset=utf-8");
    await second.body?.cancel();

    const bad = await fetch(`${agent.url}/v1/events/watch`, {
      method: "POST",
      body: '{"filters": {"tracer_name": "(unclosed"}}',
    });
    assertEquals(bad.status, 400);
    const err = await bad.json();
    assertEquals(err.field, "filters.tracer_name");
    reader.releaseLock();
  } finally {
    curl.kill("SIGTERM");
    await curl.status;
    await curl.stdout.cancel().catch(() => {});
    assertEquals((await agent.stop()).code, 0);
  }
});

const memcgV1 = (() => {
  try {
    return Deno.statSync("/sys/fs/cgroup/memory/memory.limit_in_bytes").isFile && Deno.uid() === 0;
  } catch {
    return false;
  }
})();
if (!memcgV1) console.warn("oom watch test skipped: needs root and a v1 memory controller");

Deno.test({
  name: "oom: a real OOM kill in a memory-limited cgroup → local file document and CloudEvent within 1 s",
  ignore: !memcgV1,
  async fn() {
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-local-" });
    const cg = "/sys/fs/cgroup/memory/huatuo-it-oom-watch";
    const agent = await startAgent({
      args: ["--region", "dev", "--procfs-prefix", "fixtures"],
      conf: (p) => `[Storage.LocalFile]\nPath = "${local}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
    });
    let victim: Deno.ChildProcess | undefined;
    try {
      const stream = await fetch(`${agent.url}/v1/events/watch`, {
        method: "POST",
        body: '{"filters": {"tracer_name": "^oom$"}}',
        signal: AbortSignal.timeout(20_000),
      });
      assertEquals(stream.status, 200);
      const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
      Deno.mkdirSync(cg);
      Deno.writeTextFileSync(`${cg}/memory.limit_in_bytes`, String(32 * 1024 * 1024));
      victim = new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${cg}/cgroup.procs && exec tail /dev/zero`],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const status = await victim.status;
      const killedAt = performance.now();
      assertEquals(status.signal, "SIGKILL");
      let buf = "";
      let event: { source: string; data: { tracer_id: string } } | undefined;
      while (!event) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        const m = /^data: (.*)$/m.exec(buf);
        if (m) event = JSON.parse(m[1]);
      }
      const ms = performance.now() - killedAt;
      await reader.cancel();
      assert(event, "an oom CloudEvent arrived");
      assert(ms < 1000, `event ${ms.toFixed(0)} ms after the kill was seen`);
      assertEquals(event.source, `/huatuo/${Deno.hostname()}/oom`);
      const docs = Deno.readTextFileSync(`${local}/oom`).trim().split("\n").map((l) => JSON.parse(l));
      const doc = docs.find((d) => d.tracer_data.victim_pid === victim!.pid);
      assert(doc, `no document for victim ${victim.pid} in ${local}/oom`);
      assertEquals(doc.tracer_id, event.data.tracer_id);
      assertEquals(doc.tracer_data.victim_process_name, "tail");
      assertEquals(doc.tracer_data.trigger_pid, victim.pid, "a lone process triggers its own OOM");
      assertEquals(doc.tracer_data.victim_memcg_id, Deno.statSync(cg).ino, "victim memcg = the test cgroup");
    } finally {
      try {
        victim?.kill("SIGKILL");
      } catch { /* exited */ }
      await victim?.status;
      for (let i = 0; i < 50; i++) {
        try {
          Deno.removeSync(cg);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assertEquals((await agent.stop()).code, 0);
      Deno.removeSync(local, { recursive: true });
    }
  },
});
