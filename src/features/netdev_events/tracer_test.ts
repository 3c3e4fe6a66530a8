// The netdev_events tracer: link-state parsing on captured rtnetlink bytes
// (iproute2 JSON as the oracle), the change tracker, tracer_data, the ethtool
// drvinfo decoder, and (root) a real veth pair whose admin and carrier state
// the test flips, including a forced netlink overflow (ENOBUFS).

import { ETHTOOL_DRVINFO_SIZE, parseEthtoolDrvinfo } from "../../../ffi/netlink.ts";
import {
  IFF_LOWER_UP,
  IFF_UP,
  type LinkState,
  parseLinkStateDump,
  RTM_DELLINK,
  RTM_NEWLINK,
} from "../../host/rtnetlink.ts";
import { silentLogger } from "../../log/logger.ts";
import { assert, assertEquals } from "../../../testing/assert.ts";
import type { TracerContext } from "../../tracing/manager.ts";
import type { EventInput } from "../../events/sink.ts";
import {
  currentStatuses,
  type DeviceState,
  LinkTracker,
  NetdevEventsTracer,
  netdevTracerData,
  statusChanges,
} from "./tracer.ts";

const NETLINK = new URL("../../../fixtures/netlink/", import.meta.url);

Deno.test("parseLinkStateDump: flags, MTU and address of a captured RTM_GETLINK dump agree with `ip -j link`", () => {
  const links = parseLinkStateDump([Deno.readFileSync(new URL("link_dump.bin", NETLINK))]);
  const ip: { ifindex: number; ifname: string; flags: string[]; mtu: number; address: string }[] = JSON.parse(
    Deno.readTextFileSync(new URL("ip_link.json", NETLINK)),
  );
  assertEquals(links.map((l) => l.name), ip.map((l) => l.ifname));
  for (const [i, l] of links.entries()) {
    const want = ip[i];
    assertEquals(l.index, want.ifindex);
    assertEquals(l.mtu, want.mtu, `${l.name} mtu`);
    assertEquals(l.mac, want.address, `${l.name} address`);
    assertEquals((l.flags & IFF_UP) !== 0, want.flags.includes("UP"), `${l.name} UP`);
    assertEquals((l.flags & IFF_LOWER_UP) !== 0, want.flags.includes("LOWER_UP"), `${l.name} LOWER_UP`);
    assert(
      l.carrier !== undefined && l.operstate !== undefined,
      `${l.name} has IFLA_CARRIER and IFLA_OPERSTATE`,
    );
  }
});

const dev = (name: string, admin: boolean, carrier: boolean, index = 7): DeviceState => ({
  index,
  name,
  admin,
  carrier,
  mac: "02:00:00:00:00:07",
});
const link = (name: string, admin: boolean, carrier: boolean, index = 7): LinkState => ({
  index,
  name,
  flags: (admin ? IFF_UP : 0) | (admin && carrier ? IFF_LOWER_UP : 0) | 0x1002,
  mac: "02:00:00:00:00:07",
});

Deno.test("statusChanges: admin and carrier transitions, absent = down", () => {
  assertEquals(currentStatuses(dev("a", true, true)), ["linkstatus_adminup", "linkstatus_carrierup"]);
  assertEquals(currentStatuses(dev("a", false, false)), ["linkstatus_admindown", "linkstatus_carrierdown"]);
  assertEquals(statusChanges(dev("a", true, true), dev("a", true, true)), []);
  assertEquals(statusChanges(dev("a", true, true), dev("a", false, false)), [
    "linkstatus_admindown",
    "linkstatus_carrierdown",
  ]);
  assertEquals(statusChanges(dev("a", true, true), dev("a", true, false)), ["linkstatus_carrierdown"]);
  assertEquals(statusChanges(dev("a", true, false), dev("a", true, true)), ["linkstatus_carrierup"]);
  assertEquals(statusChanges(dev("a", false, false), dev("a", true, false)), ["linkstatus_adminup"]);
  assertEquals(statusChanges(undefined, dev("a", false, false)), []);
  assertEquals(statusChanges(undefined, dev("a", true, true)), [
    "linkstatus_adminup",
    "linkstatus_carrierup",
  ]);
  assertEquals(statusChanges(dev("a", true, true), undefined), [
    "linkstatus_admindown",
    "linkstatus_carrierdown",
  ]);
});

Deno.test("LinkTracker: baseline of listed devices only, changes, deletion, rename, resync and counters", () => {
  const t = new LinkTracker(["eth0", "eth1", "bond4"]);
  const base = t.baseline([
    link("lo", true, true, 1),
    link("eth0", true, true, 2),
    link("eth1", false, false, 3),
  ]);
  assertEquals(base.map((c) => [c.device.name, c.statuses.join(", "), c.start]), [
    ["eth0", "linkstatus_adminup, linkstatus_carrierup", true],
    ["eth1", "linkstatus_admindown, linkstatus_carrierdown", true],
  ]);
  assertEquals(t.apply(RTM_NEWLINK, link("lo", false, false, 1)), [], "lo is not listed");
  assertEquals(t.apply(RTM_NEWLINK, link("eth0", true, true, 2)), [], "same state (e.g. operstate catch-up)");
  const down = t.apply(RTM_NEWLINK, link("eth0", true, false, 2));
  assertEquals(down.map((c) => [c.statuses, c.start]), [[["linkstatus_carrierdown"], false]]);
  // bond4 created later: down first (nothing), then up.
  assertEquals(t.apply(RTM_NEWLINK, link("bond4", false, false, 9)), []);
  assertEquals(t.apply(RTM_NEWLINK, link("bond4", true, true, 9))[0].statuses, [
    "linkstatus_adminup",
    "linkstatus_carrierup",
  ]);
  // Deleting: the kernel closes the device first (that is the event), RTM_DELLINK is quiet.
  assertEquals(t.apply(RTM_NEWLINK, link("bond4", false, false, 9)).length, 1);
  assertEquals(t.apply(RTM_DELLINK, link("bond4", false, false, 9)), []);
  assertEquals(t.state("bond4"), undefined);
  // eth1 renamed to eth9: gone under its listed name, quietly.
  assertEquals(t.apply(RTM_NEWLINK, link("eth9", false, false, 3)), []);
  assertEquals(t.state("eth1"), undefined);
  // Lost notifications: eth0 came back, eth1 reappeared up; the resync reports both.
  const resync = t.resync([link("eth0", true, true, 2), link("eth1", true, true, 3)]);
  assertEquals(resync.map((c) => [c.device.name, c.statuses.join(", "), c.start]), [
    ["eth0", "linkstatus_carrierup", false],
    ["eth1", "linkstatus_adminup, linkstatus_carrierup", false],
  ]);
  // A vanished device is reported under its last identity by a resync.
  const gone = t.resync([link("eth0", true, true, 2)]);
  assertEquals(gone.map((c) => [c.device.name, c.device.index, c.statuses.join(", ")]), [
    ["eth1", 3, "linkstatus_admindown, linkstatus_carrierdown"],
  ]);
  assertEquals(Object.fromEntries(t.counts.get("eth0")!), {
    linkstatus_adminup: 0,
    linkstatus_admindown: 0,
    linkstatus_carrierup: 1,
    linkstatus_carrierdown: 1,
  });
  assertEquals(t.counts.get("bond4")!.get("linkstatus_admindown"), 1);
  assertEquals(t.counts.get("eth1")!.get("linkstatus_adminup"), 1);
});

Deno.test("netdevTracerData: the seed's fields in the seed's order", () => {
  const d = netdevTracerData(
    {
      device: dev("eth1", false, false, 3),
      statuses: ["linkstatus_admindown", "linkstatus_carrierdown"],
      start: false,
    },
    { driver: "ixgbe", driver_version: "5.1.0-k", firmware_version: "3.25 0x80000421 1.2163.0" },
  );
  assertEquals(Object.keys(d), [
    "ifname",
    "index",
    "linkstatus",
    "mac",
    "start",
    "driver",
    "driver_version",
    "firmware_version",
  ]);
  assertEquals(d.linkstatus, "linkstatus_admindown, linkstatus_carrierdown");
  assertEquals(d.index, 3);
});

Deno.test("parseEthtoolDrvinfo: struct ethtool_drvinfo strings", () => {
  const b = new Uint8Array(ETHTOOL_DRVINFO_SIZE);
  const enc = new TextEncoder();
  b.set(enc.encode("ixgbe"), 4);
  b.set(enc.encode("5.1.0-k"), 36);
  b.set(enc.encode("3.25 0x80000421 1.2163.0"), 68);
  b.set(enc.encode("0000:3b:00.0"), 100);
  assertEquals(parseEthtoolDrvinfo(b), {
    driver: "ixgbe",
    version: "5.1.0-k",
    firmwareVersion: "3.25 0x80000421 1.2163.0",
    busInfo: "0000:3b:00.0",
  });
  b.fill(0x41, 68, 100); // a 32-byte field without a NUL
  assertEquals(parseEthtoolDrvinfo(b).firmwareVersion, "A".repeat(32));
});

// ---------------------------------------------------------------- real kernel

const NS = "huatuo-it-nd";
const ND0 = "huatuo-it-nd0"; // listed, host side
const ND1 = "huatuo-it-nd1"; // its peer, in the test netns
const ND2 = "huatuo-it-nd2"; // not listed
const ND4 = "huatuo-it-nd4"; // listed, created while the tracer runs
const MISSING = "huatuo-it-ndzz";

const skip = Deno.uid() !== 0 ? "needs root (creates veth devices and a netns)" : undefined;
if (skip) console.warn(`netdev_events_test: real-kernel tests skipped (${skip})`);

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
}

async function cleanupLinks(): Promise<void> {
  for (const d of [ND0, ND2, ND4]) await ip("link", "del", d).catch(() => {});
  await ip("netns", "del", NS).catch(() => {});
}

/** nd0 (host) <-> nd1 (netns), both up; nd2 <-> nd3 in the host, unlisted. */
async function setupLinks(): Promise<void> {
  await cleanupLinks();
  await ip("netns", "add", NS);
  await ip("link", "add", ND0, "type", "veth", "peer", "name", ND1, "netns", NS);
  await ip("link", "add", ND2, "type", "veth", "peer", "name", "huatuo-it-nd3");
  await ip("-n", NS, "link", "set", ND1, "up");
  await ip("link", "set", ND0, "up");
}

interface Seen {
  at: number;
  data: Record<string, unknown>;
}

function collect(): { seen: Seen[]; sink: (e: EventInput) => void } {
  const seen: Seen[] = [];
  return {
    seen,
    sink: (e) => {
      assertEquals(e.tracerName, "netdev_events");
      seen.push({ at: performance.now(), data: e.data });
    },
  };
}

/** Runs `action`, then waits for the next event of `dev`; returns it and the delay in ms. */
async function expectEvent(
  seen: Seen[],
  dev: string,
  action: () => Promise<void>,
): Promise<Seen & { ms: number }> {
  const before = seen.length;
  const t0 = performance.now();
  await action();
  const deadline = t0 + 3000;
  for (;;) {
    const hit = seen.slice(before).find((s) => s.data.ifname === dev);
    if (hit) return { ...hit, ms: hit.at - t0 };
    if (performance.now() > deadline) throw new Error(`no ${dev} event within 3 s: ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function ctx(failures: Error[]): TracerContext {
  return { log: silentLogger, signal: new AbortController().signal, fail: (e) => failures.push(e) };
}

Deno.test({
  name:
    "netdev_events: baseline, admin down/up and carrier loss of a veth within 1 s; unlisted devices are silent",
  ignore: skip !== undefined,
  async fn() {
    await setupLinks();
    const { seen, sink } = collect();
    const failures: Error[] = [];
    const tracer = new NetdevEventsTracer({
      devices: [ND0, "lo", ND4, MISSING],
      log: silentLogger,
      events: sink,
    });
    try {
      await tracer.start(ctx(failures));
      // Baseline: one start:true event per listed device present, none for missing ones.
      assertEquals(seen.map((s) => s.data.ifname).sort(), [ND0, "lo"].sort());
      const base = seen.find((s) => s.data.ifname === ND0)!.data;
      assertEquals(base, {
        ifname: ND0,
        index: Number(Deno.readTextFileSync(`/sys/class/net/${ND0}/ifindex`).trim()),
        linkstatus: "linkstatus_adminup, linkstatus_carrierup",
        mac: Deno.readTextFileSync(`/sys/class/net/${ND0}/address`).trim(),
        start: true,
        driver: "veth",
        driver_version: "1.0",
        firmware_version: "",
      });
      const lo = seen.find((s) => s.data.ifname === "lo")!.data;
      assertEquals([lo.start, lo.driver, lo.mac], [true, "", "00:00:00:00:00:00"], "lo has no driver info");

      const steps: [string, () => Promise<void>, string][] = [
        [
          "admin down",
          () => ip("link", "set", "dev", ND0, "down"),
          "linkstatus_admindown, linkstatus_carrierdown",
        ],
        ["admin up", () => ip("link", "set", "dev", ND0, "up"), "linkstatus_adminup, linkstatus_carrierup"],
        ["peer down", () => ip("-n", NS, "link", "set", ND1, "down"), "linkstatus_carrierdown"],
        ["peer up", () => ip("-n", NS, "link", "set", ND1, "up"), "linkstatus_carrierup"],
      ];
      for (const [what, action, want] of steps) {
        const ev = await expectEvent(seen, ND0, action);
        assertEquals(ev.data.linkstatus, want, what);
        assertEquals([ev.data.start, ev.data.driver], [false, "veth"], what);
        assert(ev.ms < 1000, `${what}: event after ${ev.ms.toFixed(0)} ms`);
      }

      // A listed device created while the tracer runs reports when it comes up.
      const created = await expectEvent(seen, ND4, async () => {
        await ip("link", "add", ND4, "type", "veth", "peer", "name", "huatuo-it-nd5");
        await ip("link", "set", "huatuo-it-nd5", "up");
        await ip("link", "set", ND4, "up");
      });
      assertEquals([created.data.linkstatus, created.data.start], [
        "linkstatus_adminup, linkstatus_carrierup",
        false,
      ]);

      // The unlisted device changes state; nothing may be reported for it.
      const before = seen.length;
      await ip("link", "set", ND2, "up");
      await ip("link", "set", ND2, "down");
      await ip("link", "set", ND0, "mtu", "1400"); // not a status change either
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(seen.slice(before), [], "no events for unlisted devices or MTU changes");

      const counts = Object.fromEntries(
        tracer.samples().filter((s) => s.labels?.device === ND0).map((s) => [s.labels!.linkstatus, s.value]),
      );
      assertEquals(counts, {
        linkstatus_adminup: 1,
        linkstatus_admindown: 1,
        linkstatus_carrierup: 2,
        linkstatus_carrierdown: 2,
      });
      assertEquals(tracer.samples().find((s) => s.name === "netdev_events_netlink_overflow_total")?.value, 0);
      assertEquals(failures, []);
    } finally {
      await tracer.stop();
      await cleanupLinks();
    }
  },
});

Deno.test({
  name: "netdev_events: a netlink overflow (ENOBUFS) is counted and a re-read restores the true state",
  ignore: skip !== undefined,
  async fn() {
    await setupLinks();
    const { seen, sink } = collect();
    const failures: Error[] = [];
    // The smallest socket buffer the kernel allows: a burst of notifications overflows it.
    const tracer = new NetdevEventsTracer({ devices: [ND0], log: silentLogger, events: sink, rcvbuf: 1 });
    try {
      await tracer.start(ctx(failures));
      const flips = Array.from({ length: 200 }, (_, i) => `link set dev ${ND0} ${i % 2 ? "up" : "down"}`);
      const batch = new Deno.Command("ip", { args: ["-batch", "-"], stdin: "piped", stdout: "null" }).spawn();
      const w = batch.stdin.getWriter();
      await w.write(new TextEncoder().encode(flips.join("\n") + `\nlink set dev ${ND0} down\n`));
      await w.close();
      assert((await batch.status).success, "ip -batch");
      const deadline = Date.now() + 3000;
      while (tracer.tracker.state(ND0)?.admin !== false && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      await new Promise((r) => setTimeout(r, 100));
      assert(tracer.overflows > 0, "a 201-notification burst overflows a minimal socket buffer");
      assertEquals(tracer.tracker.state(ND0)?.admin, false, "final state: admin down");
      assertEquals(tracer.tracker.state(ND0)?.carrier, false, "final state: no carrier");
      // Replaying the reported changes from the baseline gives the final state: nothing contradicts.
      let admin = true;
      let carrier = true;
      for (const s of seen.slice(1)) {
        for (const st of String(s.data.linkstatus).split(", ")) {
          if (st === "linkstatus_adminup") (assert(!admin, "adminup twice"), admin = true);
          if (st === "linkstatus_admindown") (assert(admin, "admindown twice"), admin = false);
          if (st === "linkstatus_carrierup") (assert(!carrier, "carrierup twice"), carrier = true);
          if (st === "linkstatus_carrierdown") (assert(carrier, "carrierdown twice"), carrier = false);
        }
      }
      assertEquals([admin, carrier], [false, false]);
      assertEquals(
        tracer.samples().find((s) => s.name === "netdev_events_netlink_overflow_total")?.value,
        tracer.overflows,
      );
      assertEquals(failures, []);
    } finally {
      await tracer.stop();
      await cleanupLinks();
    }
  },
});

Deno.test({
  name: "netdev_events: an empty DeviceList watches nothing and opens no socket",
  async fn() {
    const { seen, sink } = collect();
    const tracer = new NetdevEventsTracer({ devices: [], log: silentLogger, events: sink });
    await tracer.start(ctx([]));
    await tracer.stop();
    assertEquals(seen, []);
    assertEquals(tracer.samples().map((s) => s.name), ["netdev_events_netlink_overflow_total"]);
  },
});
