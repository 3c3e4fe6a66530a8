// The netdev_bonding_lacp tracer on fixture trees (fixtures/bonding/: the
// bonding module is not available on the build machines): the procfs parser,
// LACP change detection, and the polling tracer over a --procfs-prefix tree
// whose files the test rewrites.

import { HostFs } from "../../host/fs.ts";
import { createLogger } from "../../log/logger.ts";
import { assert, assertEquals } from "../../../testing/assert.ts";
import type { TracerContext } from "../../tracing/manager.ts";
import type { EventInput } from "../../events/sink.ts";
import {
  BondingLacpTracer,
  bondingTracerData,
  isLacp,
  lacpChanges,
  lacpState,
  parseBonding,
} from "./netdev_bonding_lacp.ts";

const FIXTURES = new URL("../../../fixtures/bonding/", import.meta.url).pathname;
const bondFile = (tree: string, bond: string) => `${FIXTURES}${tree}/proc/net/bonding/${bond}`;
const read = (tree: string, bond: string) => Deno.readTextFileSync(bondFile(tree, bond));
const state = (tree: string, bond = "bond0") => lacpState(parseBonding(read(tree, bond)));

Deno.test("parseBonding: a 6.x 802.3ad bond with two slaves and their LACPDU details", () => {
  const info = parseBonding(read("lacp-up", "bond0"));
  assertEquals(info.mode, "IEEE 802.3ad Dynamic link aggregation");
  assert(isLacp(info));
  assertEquals(info.master.get("MII Status"), "up");
  assertEquals(info.master.get("Transmit Hash Policy"), "layer3+4 (1)");
  assertEquals(info.master.get("System MAC address"), "0c:42:a1:3b:5e:10");
  assertEquals(info.master.get("Active Aggregator Aggregator ID"), "1");
  assertEquals(info.master.get("Active Aggregator Number of ports"), "2");
  assertEquals(info.master.get("Active Aggregator Partner Mac Address"), "00:1c:73:5a:20:01");
  assertEquals([...info.slaves.keys()], ["eth0", "eth1"]);
  const eth1 = info.slaves.get("eth1")!;
  assertEquals(eth1.get("MII Status"), "up");
  assertEquals(eth1.get("Aggregator ID"), "1");
  assertEquals(eth1.get("Actor Churn State"), "none");
  assertEquals(eth1.get("actor port number"), "2");
  assertEquals(eth1.get("actor port state"), "63");
  assertEquals(eth1.get("partner system mac address"), "00:1c:73:5a:20:01");
  assertEquals(eth1.get("partner port number"), "18");
  // The master's "MII Status" does not leak into a slave, nor a slave's into the next.
  assertEquals(info.slaves.get("eth0")!.get("partner port number"), "17");
});

Deno.test("parseBonding: active-backup is not LACP; the 4.18 layout without an active aggregator", () => {
  const ab = parseBonding(read("lacp-up", "bond1"));
  assertEquals(ab.mode, "fault-tolerance (active-backup)");
  assert(!isLacp(ab));
  assertEquals(ab.master.get("Currently Active Slave"), "eth2");

  const el8 = parseBonding(read("lacp-el8-all-down", "bond4"));
  assert(isLacp(el8));
  assertEquals(el8.master.get("MII Status"), "down");
  assertEquals(el8.master.get("Active Aggregator"), "none");
  assertEquals(el8.slaves.get("ens1f0")!.get("Partner Churn State"), "churned");
  assertEquals(el8.slaves.get("ens1f1")!.get("Aggregator ID"), "N/A");
  assertEquals(el8.slaves.get("ens1f1")!.get("actor port state"), undefined);

  // Headings with colons in them (ARP / NS targets) do not confuse the parser.
  const arp = parseBonding(
    "Bonding Mode: IEEE 802.3ad Dynamic link aggregation\nARP IP target/s (n.n.n.n form): 10.0.0.1\n" +
      "NS IPv6 target/s (xx::xx form): fe80::1\nMII Status: up\n",
  );
  assertEquals(arp.master.get("NS IPv6 target/s (xx::xx form)"), "fe80::1");
  assertEquals(arp.master.get("MII Status"), "up");
  assertEquals(parseBonding("").mode, "");
});

Deno.test("lacpChanges: link loss and partner churn are changes; settings-only edits are not", () => {
  const up = state("lacp-up");
  assertEquals(lacpChanges(up, state("lacp-up")), []);
  assertEquals(lacpChanges(up, state("lacp-config-noise")), []);

  const down = lacpChanges(up, state("lacp-slave-down"));
  for (
    const c of [
      "Active Aggregator Number of ports: 2 -> 1",
      "slave eth1 MII Status: up -> down",
      "slave eth1 Link Failure Count: 0 -> 1",
      "slave eth1 Aggregator ID: 1 -> 2",
      "slave eth1 Actor Churn State: none -> churned",
      "slave eth1 actor port state: 63 -> 71",
      "slave eth1 partner system mac address: 00:1c:73:5a:20:01 -> 00:00:00:00:00:00",
    ]
  ) assert(down.includes(c), `missing "${c}" in ${JSON.stringify(down)}`);
  assert(!down.some((c) => c.startsWith("slave eth0")), "eth0 did not change");

  const churn = lacpChanges(up, state("lacp-partner-churned"));
  assert(churn.includes("slave eth1 Partner Churn State: none -> churned"), JSON.stringify(churn));
  assert(churn.includes("slave eth1 partner port state: 63 -> 1"), JSON.stringify(churn));
  assert(!churn.some((c) => c.includes("MII Status")), "links stayed up");

  // A slave leaving the bond is a change too.
  const text = read("lacp-up", "bond0");
  const oneSlave = lacpState(parseBonding(text.slice(0, text.indexOf("\nSlave Interface: eth1"))));
  assert(lacpChanges(up, oneSlave).includes("slave eth1: present -> (none)"));
});

Deno.test("bondingTracerData: the seed's content is the file's /proc path, a newline, then the file", () => {
  assertEquals(bondingTracerData("bond0", "Bonding Mode: x\n"), {
    content: "/proc/net/bonding/bond0\nBonding Mode: x\n",
  });
});

/** A --procfs-prefix tree in a temp dir, seeded from a fixture tree. */
function tempTree(from?: string): { root: string; dir: string; put: (bond: string, tree: string) => void } {
  const root = Deno.makeTempDirSync({ prefix: "huatuo-it-bonding-" });
  const dir = `${root}/proc/net/bonding`;
  const put = (bond: string, tree: string) => {
    Deno.mkdirSync(dir, { recursive: true });
    // Write-then-rename, as a reader must never see a half-written file.
    Deno.writeTextFileSync(`${dir}/.${bond}.tmp`, read(tree, bond));
    Deno.renameSync(`${dir}/.${bond}.tmp`, `${dir}/${bond}`);
  };
  if (from) { for (const e of Deno.readDirSync(`${FIXTURES}${from}/proc/net/bonding`)) put(e.name, from); }
  return { root, dir, put };
}

function harness(root: string, intervalMs = 30) {
  const events: EventInput[] = [];
  const logs: string[] = [];
  const failures: Error[] = [];
  const log = createLogger({ level: "Debug", write: (l) => logs.push(l) });
  const tracer = new BondingLacpTracer({
    fs: new HostFs(root),
    log,
    events: (e) => events.push(e),
    intervalMs,
  });
  const ac = new AbortController();
  const ctx: TracerContext = { log, signal: ac.signal, fail: (e) => failures.push(e) };
  /** Resolves after the tracer completed two more scans (one full scan after any file change). */
  const settle = async () => {
    const target = tracer.scans + 2;
    const deadline = Date.now() + 5000;
    while (tracer.scans < target) {
      if (Date.now() > deadline) throw new Error("tracer stopped scanning");
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return { tracer, ctx, events, logs, failures, settle };
}

Deno.test("BondingLacpTracer: baseline is silent; an LACP change is one event with the whole file; noise is not", async () => {
  const t = tempTree("lacp-up");
  const h = harness(t.root);
  await h.tracer.start(h.ctx);
  try {
    assertEquals(h.tracer.bonds, ["bond0"], "only the 802.3ad bond is watched");
    assertEquals(h.events.length, 0, "no event for the baseline");
    assert(h.logs.some((l) => l.includes("watching 802.3ad bond") && l.includes("bond0")), h.logs.join("\n"));

    t.put("bond0", "lacp-config-noise");
    t.put("bond1", "no-lacp"); // unchanged active-backup bond
    await h.settle();
    assertEquals(h.events.length, 0, "settings-only edits are not LACP events");

    t.put("bond0", "lacp-slave-down");
    await h.settle();
    assertEquals(h.events.length, 1);
    assertEquals(h.events[0].tracerName, "netdev_bonding_lacp");
    assertEquals(h.events[0].data, {
      content: `/proc/net/bonding/bond0\n${read("lacp-slave-down", "bond0")}`,
    });
    assert(h.logs.some((l) => l.includes("slave eth1 MII Status: up -> down")), "the log says what changed");

    await h.settle();
    assertEquals(h.events.length, 1, "an unchanged file is not reported again");

    t.put("bond0", "lacp-up"); // link back
    await h.settle();
    assertEquals(h.events.length, 2);

    Deno.removeSync(`${t.dir}/bond0`);
    await h.settle();
    assertEquals(h.tracer.bonds, []);
    assert(h.logs.some((l) => l.includes("802.3ad bond gone")));
    assertEquals(h.failures, []);
  } finally {
    await h.tracer.stop();
    Deno.removeSync(t.root, { recursive: true });
  }
});

Deno.test("BondingLacpTracer: without an 802.3ad bond it runs idle, says so once, and picks up a later bond", async () => {
  const t = tempTree("no-lacp");
  const h = harness(t.root);
  await h.tracer.start(h.ctx);
  try {
    await h.settle();
    assertEquals(h.tracer.bonds, []);
    assertEquals(h.logs.filter((l) => l.includes("no IEEE 802.3ad bond; idle")).length, 1, h.logs.join("\n"));

    t.put("bond4", "lacp-el8-all-down"); // created after the agent started
    await h.settle();
    assertEquals(h.tracer.bonds, ["bond4"]);
    assertEquals(h.events.length, 0, "the first sight of a bond is its baseline");
    assertEquals(h.failures, []);
  } finally {
    await h.tracer.stop();
    Deno.removeSync(t.root, { recursive: true });
  }

  // No bonding driver at all: /proc/net/bonding does not exist.
  const empty = Deno.makeTempDirSync({ prefix: "huatuo-it-bonding-" });
  const h2 = harness(empty);
  await h2.tracer.start(h2.ctx);
  try {
    await h2.settle();
    assertEquals(h2.tracer.bonds, []);
    assert(h2.logs.some((l) => l.includes("no IEEE 802.3ad bond; idle")));
    assertEquals(h2.failures, []);
  } finally {
    await h2.tracer.stop();
    Deno.removeSync(empty, { recursive: true });
  }
});
