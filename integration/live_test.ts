// The real binary on this host's real /proc: every host collector succeeds, and
// a handful of values agree with the source files read around the same scrape.

import { assert, assertEquals } from "../testing/assert.ts";
import { HOST_COLLECTORS, scrape, startAgent } from "./agent.ts";
import { type ParsedSeries, parseExposition } from "./prom.ts";

const read = (p: string) => Deno.readTextFileSync(p);

function vmstat(name: string): number {
  return Number(new RegExp(`^${name} (\\d+)$`, "m").exec(read("/proc/vmstat"))![1]);
}
function netdev(device: string, col: number): number {
  const line = read("/proc/1/net/dev").split("\n").find((l) => l.trim().startsWith(`${device}:`))!;
  return Number(line.split(":")[1].trim().split(/\s+/)[col]);
}
function tcpStat(field: string): number {
  const lines = read("/proc/1/net/snmp").split("\n").filter((l) => l.startsWith("Tcp:"));
  const names = lines[0].split(/\s+/);
  return Number(lines[1].split(/\s+/)[names.indexOf(field)]);
}
async function tcQdiscBytes(device: string): Promise<Map<string, number>> {
  const out = await new Deno.Command("tc", { args: ["-s", "-j", "qdisc", "show", "dev", device] }).output();
  const sums = new Map<string, number>();
  for (const q of JSON.parse(new TextDecoder().decode(out.stdout)) as { kind: string; bytes: number }[]) {
    sums.set(q.kind, (sums.get(q.kind) ?? 0) + q.bytes);
  }
  return sums;
}

Deno.test("live host: every host collector reports success 1 and values match the sources", async () => {
  const agent = await startAgent({ args: ["--region", "live", "--disable-storage", "--disable-kubelet"] });
  try {
    // A device the shipped DeviceExcluded keeps (not lo/docker*/veth*).
    const device = read("/proc/1/net/dev").split("\n").slice(2).map((l) => l.split(":")[0].trim())
      .find((d) => d !== "" && !/^(lo)|(docker\w*)|(veth\w*)$/.test(d))!;
    assert(device, "no network device besides lo on this host");

    const before = {
      rx: netdev(device, 0),
      active: tcpStat("ActiveOpens"),
      qdisc: await tcQdiscBytes(device),
    };
    const text = await scrape(agent);
    const after = {
      rx: netdev(device, 0),
      active: tcpStat("ActiveOpens"),
      qdisc: await tcQdiscBytes(device),
      free: vmstat("nr_free_pages"),
      load1: Number(read("/proc/loadavg").split(" ")[0]),
    };
    const got = parseExposition(text);
    const all = [...got.values()];
    const one = (name: string, labels: Record<string, string> = {}): number => {
      const s = all.find((x: ParsedSeries) =>
        x.name === `huatuo_bamai_${name}` && Object.entries(labels).every(([k, v]) => x.labels[k] === v)
      );
      assert(s, `no ${name} ${JSON.stringify(labels)}`);
      return s.value;
    };

    for (const c of HOST_COLLECTORS) assertEquals(one("scrape_collector_success", { collector: c }), 1, c);

    const host = Deno.hostname();
    assert(all.filter((s) => s.name.startsWith("huatuo_bamai_")).every((s) => s.labels.host === host));
    assert(all.every((s) => s.labels.region === "live"));

    // Exact: values that do not move on an idle host.
    assertEquals(
      one("tcp_memory_limit_pages"),
      Number(read("/proc/sys/net/ipv4/tcp_mem").trim().split(/\s+/)[2]),
    );
    assertEquals(one("arp_entries"), read("/proc/1/net/arp").trim().split("\n").length - 1);
    const rootRo = read("/proc/1/mountinfo").split("\n").filter((l) => l.split(" ")[4] === "/").at(-1)!;
    assertEquals(
      one("mountpoint_perm_ro", { mountpoint: "/" }),
      rootRo.split(" ")[5].split(",").includes("ro") ? 1 : 0,
    );
    const zones = read("/proc/buddyinfo").trim().split("\n");
    const orders = zones.reduce((n, z) => n + z.trim().split(/\s+/).length - 4, 0);
    assertEquals(all.filter((s) => s.name === "huatuo_bamai_memory_buddyinfo_blocks").length, orders);

    // Counters: between the readings taken just before and just after the scrape.
    const rx = one("netdev_receive_bytes_total", { device });
    assert(before.rx <= rx && rx <= after.rx, `${device} rx ${before.rx} <= ${rx} <= ${after.rx}`);
    const active = one("netstat_Tcp_ActiveOpens");
    assert(before.active <= active && active <= after.active, `ActiveOpens ${before.active} <= ${active}`);
    for (const [kind, b] of before.qdisc) {
      const v = one("netdev_qdisc_bytes_total", { device, kind });
      const a = after.qdisc.get(kind)!;
      assert(b <= v && v <= a, `qdisc ${device}/${kind} bytes ${b} <= ${v} <= ${a}`);
    }

    // Gauges that move: close to a reading taken right after.
    const free = one("memory_vmstat_nr_free_pages");
    assert(Math.abs(free - after.free) <= after.free * 0.05, `nr_free_pages ${free} vs ${after.free}`);
    assert(Math.abs(one("loadavg_load1") - after.load1) <= 0.5, "load1");
    const [usr, sys, total] = ["usr", "sys", "total"].map((k) => one(`cpu_util_${k}`));
    assert(usr >= 0 && sys >= 0 && usr + sys <= total + 1e-9 && total <= 100, `cpu ${usr} ${sys} ${total}`);
  } finally {
    assertEquals((await agent.stop()).code, 0);
  }
});
