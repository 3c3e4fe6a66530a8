// Golden end-to-end test: the real binary against fake procfs trees, under
// `unshare --uts` with hostname huatuo-dev, scraped and compared sample by
// sample with <root>/expected_metrics/*.txt; then `promtool check metrics`.

import { assert, assertEquals } from "../testing/assert.ts";
import { isRoot, ROOT, scrape, startAgent } from "./agent.ts";
import { compareExpected, parseExposition, readExpected } from "./prom.ts";

const needRoot = !isRoot();
if (needRoot) console.warn("golden tests skipped: unshare --uts needs root");

const FIXTURE_ROOTS = ["fixtures", "fixtures/edge/garbled", "fixtures/edge/missing"];
const BASE_ARGS = ["--region", "dev", "--disable-storage", "--disable-kubelet"];

async function expectedFor(root: string) {
  const dir = `${ROOT}/${root}/expected_metrics`;
  const files = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".txt")).map((e) => e.name).sort();
  assert(files.length > 0, `no expected metrics in ${dir}`);
  return (await Promise.all(files.map((f) => Deno.readTextFile(`${dir}/${f}`)))).flatMap(readExpected);
}

/** promtool lint findings that the seed's metric names make unavoidable. */
const SEED_NAMING = [
  /^huatuo_bamai_netstat_(container_)?Tcp(Ext)?_\w+ metric names should be written in 'snake_case' not 'camelCase'$/,
  /^huatuo_bamai_(arp|cpu_util|cpu_util_container)_total non-counter metrics should not have "_total" suffix$/,
];

async function promtool(text: string): Promise<{ code: number; findings: string[] }> {
  const child = new Deno.Command("promtool", { args: ["check", "metrics"], stdin: "piped", stderr: "piped" })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const findings = new TextDecoder().decode(out.stderr).split("\n").filter((l) => l.trim() !== "");
  return { code: out.code, findings };
}

for (const root of FIXTURE_ROOTS) {
  Deno.test({
    name: `golden: ${root} matches ${root}/expected_metrics`,
    ignore: needRoot,
    async fn() {
      const expected = await expectedFor(root);
      const agent = await startAgent({
        hostname: "huatuo-dev",
        args: [...BASE_ARGS, "--procfs-prefix", root],
      });
      try {
        const text = await scrape(agent);
        const problems = compareExpected(expected, parseExposition(text));
        assertEquals(problems, [], `${problems.length} of ${expected.length} expected samples differ`);
        const lint = await promtool(text);
        assert(
          lint.code === 0 || lint.code === 3,
          `promtool failed (${lint.code}): ${lint.findings.join("\n")}`,
        );
        const unexpected = lint.findings.filter((f) => !SEED_NAMING.some((re) => re.test(f)));
        assertEquals(unexpected, [], "promtool findings beyond the seed's own metric names");
        if (root !== "fixtures") {
          // One log line per failing collector, naming the source.
          const failures = agent.output().split("\n").filter((l) => l.includes('msg="collector failed"'));
          const failed = expected.filter((e) => e.name.endsWith("_success") && e.value === 0);
          assertEquals(failures.length, failed.length, agent.output());
          assert(failures.every((l) => l.includes(`${root}/proc/`)), failures.join("\n"));
        }
      } finally {
        assertEquals((await agent.stop()).code, 0);
      }
    },
  });
}

Deno.test({
  name: "golden: include/exclude filters keep and drop what they should",
  ignore: needRoot,
  async fn() {
    const conf = (port: number) =>
      `BlackList = ["arp"]
[MetricCollector.NetdevStats]
DeviceIncluded = "^(eth|bond)"
DeviceExcluded = "^eth3$"
[MetricCollector.Vmstat]
IncludedOnHost = "^nr_(free|dirty)"
ExcludedOnHost = "threshold"
[MetricCollector.Netstat]
Included = "ListenDrops|ListenOverflows|Tcp_ActiveOpens"
Excluded = "Overflows"
[MetricCollector.MountPointStat]
MountPointsIncluded = "^/home"
[MetricCollector.Qdisc]
DeviceIncluded = "^no-such-device$"
[APIServer]
TCPAddr = "127.0.0.1:${port}"
`;
    const agent = await startAgent({
      hostname: "huatuo-dev",
      conf,
      args: [...BASE_ARGS, "--procfs-prefix", "fixtures", "--disable-tracing", "loadavg"],
    });
    try {
      const text = await scrape(agent);
      const names = new Set([...parseExposition(text).values()].map((s) => s.name));
      const devices = new Set(
        [...parseExposition(text).values()].filter((s) =>
          s.name.startsWith("huatuo_bamai_netdev_receive_bytes")
        )
          .map((s) => s.labels.device),
      );
      assertEquals([...devices].sort(), ["bond0", "bond4", "eth0", "eth0.200", "eth1", "eth2"]);
      const has = (n: string) => names.has(`huatuo_bamai_${n}`);
      assertEquals(
        [
          "memory_vmstat_nr_free_pages",
          "memory_vmstat_nr_dirty",
          "netstat_TcpExt_ListenDrops",
          "netstat_Tcp_ActiveOpens",
        ]
          .filter((n) => !has(n)),
        [],
      );
      assertEquals(
        [
          "memory_vmstat_nr_dirty_threshold",
          "memory_vmstat_pgfault",
          "netstat_TcpExt_ListenOverflows",
          "netstat_Tcp_PassiveOpens",
          "arp_entries",
          "loadavg_load1",
        ].filter(has),
        [],
      );
      assert(
        ![...names].some((n) => n.startsWith("huatuo_bamai_netdev_qdisc_")),
        "qdisc series not filtered",
      );
      const mounts = [...parseExposition(text).values()].filter((s) =>
        s.name === "huatuo_bamai_mountpoint_perm_ro"
      )
        .map((s) => s.labels.mountpoint).sort();
      assertEquals(mounts, ["/home", "/home/data dir"]);
      const collectors = [...parseExposition(text).values()]
        .filter((s) => s.name === "huatuo_bamai_scrape_collector_success").map((s) => s.labels.collector);
      assert(!collectors.includes("arp") && !collectors.includes("loadavg"), collectors.join(","));
      assert(collectors.includes("qdisc"));
    } finally {
      assertEquals((await agent.stop()).code, 0);
    }
  },
});

Deno.test({
  name: "golden: listed devices (netdev_hw, netdev_dcb) match fixtures/expected_metrics/listed_devices",
  ignore: needRoot,
  async fn() {
    const dir = `${ROOT}/fixtures/expected_metrics/listed_devices`;
    const files = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".txt")).map((e) => e.name).sort();
    const expected = files.flatMap((f) => readExpected(Deno.readTextFileSync(`${dir}/${f}`)));
    const conf = (port: number) =>
      `BlackList = []
[MetricCollector.NetdevHW]
DeviceList = ["ens1f0", "ens1f1", "huatuo-fx-gone"]
[MetricCollector.NetdevDCB]
DeviceList = ["ens1f0", "lo"]
[MetricCollector.Vmstat]
IncludedOnHost = "^nr_free_pages$"
[APIServer]
TCPAddr = "127.0.0.1:${port}"
`;
    const agent = await startAgent({
      hostname: "huatuo-dev",
      conf,
      args: [...BASE_ARGS, "--procfs-prefix", "fixtures", "--disable-tracing", "dropwatch"],
    });
    try {
      const first = await scrape(agent);
      const text = await scrape(agent);
      const problems = compareExpected(expected, parseExposition(text));
      assertEquals(problems, [], `${problems.length} of ${expected.length} expected samples differ`);
      const lint = await promtool(first);
      const unexpected = lint.findings.filter((f) => !SEED_NAMING.some((re) => re.test(f)));
      assertEquals(unexpected, [], "promtool findings beyond the seed's own metric names");
      const gone = agent.output().split("\n").filter((l) => l.includes("huatuo-fx-gone"));
      assertEquals(
        gone.length,
        1,
        `one log line for the missing device over two scrapes:\n${agent.output()}`,
      );
    } finally {
      assertEquals((await agent.stop()).code, 0);
    }
  },
});
