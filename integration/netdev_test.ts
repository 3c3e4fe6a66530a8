// The three network event tracers in the real agent (root): netdev_events on a
// veth pair whose peer lives in a test netns (baseline in the local file, admin
// and carrier changes on the watch stream within 1 s and in the local file,
// counters on /metrics, nothing for an unlisted device), netdev_bonding_lacp on
// a --procfs-prefix tree the test rewrites (the bonding module is not built
// here), and netdev_txqueue_timeout running (its BPF program attached; a real TX
// timeout cannot be caused on this machine, see its unit test).

import { assert, assertEquals } from "../testing/assert.ts";
import { isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { parseExposition } from "./prom.ts";

const NS = "huatuo-it-ndagent";
const ND0 = "huatuo-it-nda0"; // listed, host side
const ND1 = "huatuo-it-nda1"; // its peer in NS
const ND2 = "huatuo-it-nda2"; // not listed
const ROOT = new URL("..", import.meta.url).pathname;
const BONDING = `${ROOT}fixtures/bonding`;

const skip = isRoot() ? undefined : "needs root (veth devices, netns, BPF)";
if (skip) console.warn(`integration/netdev_test.ts skipped: ${skip}`);

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
}

async function cleanup(): Promise<void> {
  for (const d of [ND0, ND2]) await ip("link", "del", d).catch(() => {});
  await ip("netns", "del", NS).catch(() => {});
}

interface WatchedEvent {
  at: number;
  ev: {
    source: string;
    data: { tracer_name: string; tracer_id: string; tracer_data: Record<string, unknown> };
  };
}

/** Reads the SSE stream in the background into `events`. */
function watch(
  agent: RunningAgent,
  filter: string,
): { events: WatchedEvent[]; ready: Promise<void>; close: () => void } {
  const events: WatchedEvent[] = [];
  const ac = new AbortController();
  let opened!: () => void;
  const ready = new Promise<void>((r) => opened = r);
  (async () => {
    const res = await fetch(`${agent.url}/v1/events/watch`, {
      method: "POST",
      body: JSON.stringify({ filters: { tracer_name: filter }, include_tracer_data: true }),
      signal: ac.signal,
    });
    assertEquals(res.status, 200);
    opened();
    let buf = "";
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("data: ")) events.push({ at: performance.now(), ev: JSON.parse(line.slice(6)) });
      }
    }
  })().catch((err) => {
    if (!ac.signal.aborted) throw err;
  });
  return { events, ready, close: () => ac.abort() };
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function docs(
  path: string,
): { tracer_id: string; tracer_name: string; tracer_data: Record<string, unknown> }[] {
  try {
    return Deno.readTextFileSync(path).trim().split("\n").filter((l) => l).map((l) => JSON.parse(l));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

Deno.test({
  name: "agent: netdev_events, netdev_bonding_lacp and netdev_txqueue_timeout end to end",
  ignore: skip !== undefined,
  async fn() {
    await cleanup();
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-netdev-local-" });
    // A --procfs-prefix tree holding only the bonding files (other collectors just report failure).
    const tree = Deno.makeTempDirSync({ prefix: "huatuo-it-netdev-proc-" });
    const bondDir = `${tree}/proc/net/bonding`;
    Deno.mkdirSync(bondDir, { recursive: true });
    const putBond = (scenario: string) => {
      Deno.writeTextFileSync(
        `${bondDir}/.bond0`,
        Deno.readTextFileSync(`${BONDING}/${scenario}/proc/net/bonding/bond0`),
      );
      Deno.renameSync(`${bondDir}/.bond0`, `${bondDir}/bond0`);
    };
    putBond("lacp-up");
    let agent: RunningAgent | undefined;
    let stream: ReturnType<typeof watch> | undefined;
    try {
      await ip("netns", "add", NS);
      await ip("link", "add", ND0, "type", "veth", "peer", "name", ND1, "netns", NS);
      await ip("link", "add", ND2, "type", "veth", "peer", "name", "huatuo-it-nda3");
      await ip("-n", NS, "link", "set", ND1, "up");
      await ip("link", "set", ND0, "up");

      agent = await startAgent({
        args: ["--region", "dev", "--procfs-prefix", tree, "--disable-kubelet"],
        conf: (p) =>
          `[EventTracing.Netdev]\nDeviceList = ["${ND0}", "${ND2}-not-this"]\n` +
          `[Storage.LocalFile]\nPath = "${local}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
      });

      const tracers: { name: string; state: string; reason?: string }[] =
        (await (await fetch(`${agent.url}/v1/tracers`)).json()).tracers;
      for (const name of ["netdev_events", "netdev_bonding_lacp", "netdev_txqueue_timeout"]) {
        const t = tracers.find((x) => x.name === name);
        assertEquals(t?.state, "running", `${name}: ${JSON.stringify(t)}`);
      }

      // Baseline: written before /readyz turned 200.
      const base = docs(`${local}/netdev_events`);
      assertEquals(base.length, 1, JSON.stringify(base));
      assertEquals(base[0].tracer_name, "netdev_events");
      assertEquals(base[0].tracer_data.ifname, ND0);
      assertEquals(base[0].tracer_data.start, true);
      assertEquals(base[0].tracer_data.linkstatus, "linkstatus_adminup, linkstatus_carrierup");
      assertEquals(base[0].tracer_data.driver, "veth");

      stream = watch(agent, "^netdev_");
      await stream.ready;
      const steps: [string, string[], string][] = [
        ["admin down", ["link", "set", "dev", ND0, "down"], "linkstatus_admindown, linkstatus_carrierdown"],
        ["admin up", ["link", "set", "dev", ND0, "up"], "linkstatus_adminup, linkstatus_carrierup"],
        ["carrier loss (peer down)", ["-n", NS, "link", "set", ND1, "down"], "linkstatus_carrierdown"],
        ["carrier back (peer up)", ["-n", NS, "link", "set", ND1, "up"], "linkstatus_carrierup"],
      ];
      for (const [what, args, want] of steps) {
        const before = stream.events.length;
        const t0 = performance.now();
        await ip(...args);
        const got = await waitFor(
          what,
          () => stream!.events.slice(before).find((e) => e.ev.data.tracer_name === "netdev_events"),
        );
        const ms = got.at - t0;
        assert(ms < 1000, `${what}: CloudEvent ${ms.toFixed(0)} ms after the change`);
        console.log(`  ${what}: CloudEvent ${ms.toFixed(1)} ms after \`ip\` was started`);
        assertEquals(got.ev.source, `/huatuo/${Deno.hostname()}/netdev_events`);
        assertEquals(got.ev.data.tracer_data.ifname, ND0, what);
        assertEquals(got.ev.data.tracer_data.linkstatus, want, what);
        assertEquals(got.ev.data.tracer_data.start, false, what);
        const doc = docs(`${local}/netdev_events`).find((d) => d.tracer_id === got.ev.data.tracer_id);
        assert(doc, `${what}: the event is in ${local}/netdev_events`);
        assertEquals(doc.tracer_data.linkstatus, want);
      }

      // An unlisted device flaps: nothing.
      const n = docs(`${local}/netdev_events`).length;
      await ip("link", "set", ND2, "up");
      await ip("link", "set", ND2, "down");
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(docs(`${local}/netdev_events`).length, n, "no document for an unlisted device");
      assertEquals(n, 5, "baseline + 4 changes");

      const series = [...parseExposition(await scrape(agent)).values()];
      const count = (linkstatus: string) =>
        series.find((s) =>
          s.name === "huatuo_bamai_netdev_events_total" && s.labels.device === ND0 &&
          s.labels.linkstatus === linkstatus
        )?.value;
      assertEquals(
        [
          count("linkstatus_adminup"),
          count("linkstatus_admindown"),
          count("linkstatus_carrierup"),
          count("linkstatus_carrierdown"),
        ],
        [1, 1, 2, 2],
      );
      assertEquals(
        series.find((s) => s.name === "huatuo_bamai_netdev_events_netlink_overflow_total")?.value,
        0,
      );

      // Bonding: eth1 of the fixture bond loses its link.
      const before = stream.events.length;
      putBond("lacp-slave-down");
      const lacp = await waitFor(
        "netdev_bonding_lacp event",
        () => stream!.events.slice(before).find((e) => e.ev.data.tracer_name === "netdev_bonding_lacp"),
        8000,
      );
      const content = String(lacp.ev.data.tracer_data.content);
      assert(
        content.startsWith("/proc/net/bonding/bond0\nEthernet Channel Bonding Driver:"),
        content.slice(0, 80),
      );
      assert(content.includes("Slave Interface: eth1\nMII Status: down\n"));
      const bondDocs = docs(`${local}/netdev_bonding_lacp`);
      assertEquals(bondDocs.map((d) => d.tracer_id), [lacp.ev.data.tracer_id]);
    } finally {
      stream?.close();
      if (agent) {
        const { code } = await agent.stop();
        assertEquals(code, 0, agent.output());
      }
      await cleanup();
      Deno.removeSync(local, { recursive: true });
      Deno.removeSync(tree, { recursive: true });
    }
  },
});
