// POST /v1/events/watch on the real binary, with the seed's curl example
// verbatim: the stream opens, pings, and the agent enforces MaxClients and
// rejects a bad filter with a JSON 400. (Real kernel events on the stream:
// see the hungtask step of bpf_test.ts.)

import { assert, assertEquals, assertMatch } from "../src/testing/assert.ts";
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
