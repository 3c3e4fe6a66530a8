// net_rx_latency end to end on the real agent: a server in a test net
// namespace reads 300 ms after the data arrived → one document in
// <LocalFile.Path>/net_rx_latency and one CloudEvent on /v1/events/watch,
// with the reader's 5-tuple, pid and comm, marked by an IssuesList rule.

import { assert, assertEquals } from "../testing/assert.ts";
import { isRoot, ROOT, startAgent } from "./agent.ts";

const NS = "huatuo-it-rx-e2e";
const VETH_HOST = "huatuo-it-rxe"; // host side; its peer lives in NS
const VETH_NS = "huatuo-it-rxf";
const HOST_IP = "10.213.79.1";
const NS_IP = "10.213.79.2";

function hasIp(): boolean {
  return ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].some((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
}

const skip = !isRoot() ? "needs root" : !hasIp() ? "needs iproute2 (ip)" : undefined;
if (skip) console.warn(`net_rx_latency e2e test skipped: ${skip}`);

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
}

async function teardown(): Promise<void> {
  await ip("netns", "del", NS).catch(() => {});
  await ip("link", "del", VETH_HOST).catch(() => {});
}

async function setup(): Promise<void> {
  await teardown();
  await ip("netns", "add", NS);
  await ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS, "netns", NS);
  await ip("addr", "add", `${HOST_IP}/30`, "dev", VETH_HOST);
  await ip("link", "set", VETH_HOST, "up");
  await ip("-n", NS, "addr", "add", `${NS_IP}/30`, "dev", VETH_NS);
  await ip("-n", NS, "link", "set", VETH_NS, "up");
  await ip("-n", NS, "link", "set", "lo", "up");
}

/** Accepts one connection, sleeps, reads @want bytes, says "read <n>". */
const SLOW_READER = `
const [host, delay, want] = Deno.args;
const l = Deno.listen({ hostname: host, port: 0 });
console.log("ready " + l.addr.port);
const c = await l.accept();
await new Promise((r) => setTimeout(r, Number(delay)));
let got = 0;
const buf = new Uint8Array(4096);
while (got < Number(want)) { const n = await c.read(buf); if (n === null) break; got += n; }
console.log("read " + got);
`;

/** The lines a child writes to stdout. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
}

interface Event {
  source: string;
  data: { tracer_name: string; tracer_id: string; tracer_data?: Record<string, unknown> };
}

Deno.test({
  name: "net_rx_latency e2e: a slow reader in a netns → local file document and CloudEvent with its 5-tuple",
  ignore: skip !== undefined,
  async fn() {
    await setup();
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-rx-local-" });
    const agent = await startAgent({
      args: ["--region", "dev", "--procfs-prefix", "fixtures"],
      conf: (p) =>
        `[Storage.LocalFile]\nPath = "${local}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n` +
        `[EventTracing]\nIssuesList = [["slow_reader", "comm=deno .*where=TO_USER_COPY"]]\n`,
    });
    let reader: Deno.ChildProcess | undefined;
    try {
      const tracers = await (await fetch(`${agent.url}/v1/tracers`)).json() as {
        tracers: { name: string; state: string; reason?: string }[];
      };
      const st = tracers.tracers.find((t) => t.name === "net_rx_latency");
      assertEquals(st?.state, "running", `net_rx_latency status: ${JSON.stringify(st)}\n${agent.output()}`);

      const stream = await fetch(`${agent.url}/v1/events/watch`, {
        method: "POST",
        body: JSON.stringify({ filters: { tracer_name: "^net_rx_latency$" }, include_tracer_data: true }),
        signal: AbortSignal.timeout(20_000),
      });
      assertEquals(stream.status, 200);
      const events = stream.body!.pipeThrough(new TextDecoderStream()).getReader();

      reader = new Deno.Command("ip", {
        args: ["netns", "exec", NS, Deno.execPath(), "eval", "--quiet", SLOW_READER, NS_IP, "300", "64"],
        cwd: ROOT,
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const said = lines(reader.stdout);
      const ready = await said.next();
      assert(!ready.done && ready.value.startsWith("ready "), `reader said ${JSON.stringify(ready.value)}`);
      const conn = await Deno.connect({ hostname: NS_IP, port: Number(ready.value.split(" ")[1]) });
      const sport = (conn.localAddr as Deno.NetAddr).port;
      await conn.write(new Uint8Array(64).fill(0x68));
      assertEquals((await said.next()).value, "read 64");
      conn.close();
      await said.return(undefined);

      let buf = "";
      let event: Event | undefined;
      while (!event) {
        const { value, done } = await events.read();
        if (done) break;
        buf += value;
        for (const m of buf.matchAll(/^data: (.*)$/gm)) {
          const e = JSON.parse(m[1]) as Event;
          if (e.data.tracer_data?.sport === sport) event = e;
        }
      }
      await events.cancel();
      assert(event, "a net_rx_latency CloudEvent for the connection");
      assertEquals(event.source, `/huatuo/${Deno.hostname()}/net_rx_latency`);
      const d = event.data.tracer_data!;
      assertEquals(
        [d.where, d.saddr, d.sport, d.daddr, d.state, d.pid, d.comm, d.pkt_len, d.known_issue],
        ["TO_USER_COPY", HOST_IP, sport, NS_IP, "ESTABLISHED", reader.pid, "deno", 64, "slow_reader"],
      );
      assert((d.latency_ms as number) >= 280, `latency_ms ${d.latency_ms}`);

      const docs = [...Deno.readDirSync(local)].filter((e) => e.name.startsWith("net_rx_latency"))
        .flatMap((e) => Deno.readTextFileSync(`${local}/${e.name}`).trim().split("\n"))
        .map((l) => JSON.parse(l));
      const doc = docs.find((x) => x.tracer_data.sport === sport);
      assert(doc, `no document for sport ${sport} in ${local}/net_rx_latency*`);
      assertEquals(doc.tracer_name, "net_rx_latency");
      assertEquals(doc.tracer_id, event.data.tracer_id);
      assertEquals(doc.region, "dev");
      assertEquals(doc.tracer_data, d);
    } finally {
      try {
        reader?.kill("SIGKILL");
      } catch { /* exited */ }
      await reader?.status;
      assertEquals((await agent.stop()).code, 0);
      Deno.removeSync(local, { recursive: true });
      await teardown();
    }
  },
});
