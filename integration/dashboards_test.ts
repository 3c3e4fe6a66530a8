// Every query of every dashboard panel (deploy/grafana/dashboards.ts) returns
// data from a real Prometheus (Debian's, on a free 127.0.0.1 port, temp config
// and TSDB) that scrapes the real agent every 2 s for about 30 s, while this
// test causes real events: UDP datagrams to closed ports (dropwatch drops,
// reason NO_SOCKET) and an OOM kill inside a test container's memory cgroup.
// The container (a cgroup tree with its own network namespace, see
// testing/cgroup_tree.ts) gives the *_container_* panels a subject. A query
// with no data passes only when it reads a family listed, with the reason, in
// integration/dashboards_allowlist.json. The same Prometheus loads
// deploy/prometheus/rules.yml: every rule must evaluate without error on the
// real series. Also checks the standard process_* families and build_info.

import { assert, assertEquals } from "../testing/assert.ts";
import { CgroupTestTree, randomHex, removeCgroupTree } from "../testing/cgroup_tree.ts";
import { DASHBOARDS } from "../deploy/grafana/dashboards.ts";
import { confWithPort, freePort, isRoot, ROOT, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { parseExposition } from "./prom.ts";
import {
  type Cleanup,
  closedUdpPortRange,
  run,
  sleep,
  spawnBackground,
  udpDrops,
  withCleanup,
} from "./load.ts";

const skip = isRoot() ? undefined : "needs root (BPF, cgroups, OOM in a memory cgroup)";
if (skip) console.warn(`integration/dashboards_test.ts ignored: ${skip}`);

interface Allowed {
  kind: string;
  reason: string;
}
const ALLOWLIST: Record<string, Allowed> = JSON.parse(
  Deno.readTextFileSync(`${ROOT}/integration/dashboards_allowlist.json`),
);

/** Grafana's template variables as a query would see them with every value selected. */
export function substitute(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "20s")
    .replaceAll("$__interval", "2s")
    .replace(/\$(host|region|container)\b/g, ".*");
}

/** Metric names a query reads (identifiers followed by `{`). */
function families(expr: string): string[] {
  return [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1]);
}

async function startPrometheus(c: Cleanup, target: string) {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-it-prom-" });
  c.defer(`remove ${dir}`, () => Deno.removeSync(dir, { recursive: true }));
  const port = freePort();
  Deno.writeTextFileSync(
    `${dir}/prometheus.yml`,
    [
      "global: { scrape_interval: 2s, evaluation_interval: 2s }",
      `rule_files: ["${ROOT}/deploy/prometheus/rules.yml"]`,
      "scrape_configs:",
      "  - job_name: huatuo-bamai",
      `    static_configs: [{ targets: ["${target}"] }]`,
      "",
    ].join("\n"),
  );
  const prom = spawnBackground(c, "prometheus", "prometheus", [
    `--config.file=${dir}/prometheus.yml`,
    `--storage.tsdb.path=${dir}/data`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--storage.tsdb.retention.time=1h",
  ], { capture: true });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0;; i++) {
    try {
      const res = await fetch(`${url}/-/ready`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (i > 300) throw new Error(`prometheus not ready:\n${prom.output()}`);
    await sleep(100);
  }
  return { url, prom };
}

/** MAJ:MIN of the whole disk holding `path` (the parent of a partition). */
function wholeDisk(path: string): string {
  const dev = Deno.statSync(path).dev;
  const id = `${(dev >> 8) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
  const sys = `/sys/dev/block/${id}`;
  try {
    Deno.statSync(`${sys}/partition`);
    return Deno.readTextFileSync(`${sys}/../dev`).trim();
  } catch {
    return id;
  }
}

async function promQuery(url: string, expr: string): Promise<{ status: string; n: number; error?: string }> {
  const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  const body = await res.json();
  if (body.status !== "success") return { status: body.status, n: 0, error: body.error };
  const r = body.data.result;
  return { status: body.status, n: Array.isArray(r) ? r.length : 1 };
}

Deno.test({
  name: "dashboards: every panel query returns data from Prometheus scraping the real agent",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withCleanup(async (c) => {
      // A docker-style test container with its own network namespace.
      const tree = await CgroupTestTree.create("dash");
      c.defer("remove the test cgroups", () => tree.cleanup());
      const id = randomHex(64);
      const ctr = await tree.add({
        id,
        podUid: "",
        qos: "",
        runtime: "docker",
        rel: `/docker/${id}`,
        ownNetns: true,
      });
      // The tree has no blkio hierarchy; the agent finds the container's blkio cgroup when it first sees it.
      const blkio = `/sys/fs/cgroup/blkio${tree.root}/docker/${id}`;
      Deno.mkdirSync(blkio, { recursive: true });
      c.defer(`rmdir ${blkio}`, () => removeCgroupTree(`/sys/fs/cgroup/blkio${tree.root}`));
      const esPort = freePort(); // nothing listens: the ES outbox fills and storage_es_up is 0
      const local = Deno.makeTempDirSync({ prefix: "huatuo-it-dash-local-" });
      c.defer(`remove ${local}`, () => Deno.removeSync(local, { recursive: true }));
      Deno.env.set("HUATUO_BAMAI_CGROUP_ROOT", tree.root);
      let agent: RunningAgent;
      try {
        agent = await startAgent({
          args: ["--region", "it", "--disable-kubelet"],
          conf: (p) =>
            confWithPort(
              p,
              (t) =>
                t.replace(
                  /^\s*# Address = "http:\/\/127\.0\.0\.1:9200"$/m,
                  `\t\tAddress = "http://127.0.0.1:${esPort}"`,
                )
                  .replace(/^\s*# OutboxPath = ""$/m, `\t\tOutboxPath = "${local}/outbox"`)
                  .replace(/^\s*# Path = "huatuo-local"$/m, `\t\tPath = "${local}/events"`)
                  // The shipped filter keeps only watermark_* (the seed's default): let the dashboard's through.
                  .replace(
                    /^(\s*)Included = "watermark_inc\|watermark_dec"$/m,
                    '$1Included = "oom_kill|max"',
                  ),
            ),
        });
      } finally {
        Deno.env.delete("HUATUO_BAMAI_CGROUP_ROOT");
      }
      c.defer("stop the agent", () => agent.stop());
      const { url } = await startPrometheus(c, `127.0.0.1:${agent.port}`);

      // Events must come after Prometheus has a sample from before them, or increase() cannot see them.
      for (let i = 0; (await promQuery(url, 'up{job="huatuo-bamai"} == 1')).n === 0; i++) {
        if (i > 100) throw new Error("prometheus never scraped the agent");
        await sleep(200);
      }
      await sleep(4000);

      // The container's own work: a veth in its netns (netdev_container), direct writes from its blkio
      // cgroup (iolatency_container_*), and short sleeps (run-queue wake-ups for runqlat_container_*).
      const hostIf = `hdash${randomHex(6)}`;
      await run("ip", [
        "link",
        "add",
        hostIf,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        String(ctr.pid),
      ]);
      c.defer(`ip link del ${hostIf}`, () => run("ip", ["link", "del", hostIf], { check: false }));
      await run("nsenter", ["-t", String(ctr.pid), "-n", "ip", "link", "set", "eth0", "up"]);
      const file = Deno.makeTempFileSync({ dir: "/var/tmp", prefix: "huatuo-it-dash-" });
      // v1 blk-throttle counts a cgroup's IO on a disk only once the disk has a rule there: a limit no test
      // reaches.
      Deno.writeTextFileSync(`${blkio}/blkio.throttle.write_bps_device`, `${wholeDisk(file)} 100000000000\n`);
      c.defer(`remove ${file}`, () => Deno.removeSync(file));
      const dirs = [...Object.values(ctr.dirs), blkio];
      await run("sh", [
        "-c",
        'for d in "$@"; do echo $$ > "$d/cgroup.procs"; done; ' +
        `dd if=/dev/zero of=${file} bs=1M count=16 oflag=direct status=none; ` +
        "i=0; while [ $i -lt 100 ]; do sleep 0.01; i=$((i+1)); done",
        "sh",
        ...dirs,
      ]);

      // Real events: drops to closed UDP ports, then an OOM kill in the container's memory cgroup.
      const base = closedUdpPortRange(300);
      await udpDrops(base, 300, 1000);
      const memdir = ctr.dirs["memory"];
      assert(memdir, "the test container has a v1 memory cgroup");
      Deno.writeTextFileSync(`${memdir}/memory.limit_in_bytes`, `${32 << 20}\n`);
      const hog = new Deno.Command("sh", {
        args: ["-c", 'echo $$ > "$0/cgroup.procs" && exec tail /dev/zero', memdir],
        stdout: "null",
        stderr: "null",
      }).spawn();
      assertEquals((await hog.status).signal, "SIGKILL", "tail was OOM-killed");
      await udpDrops(base, 300, 1000);
      // Enough scrapes for rate() over 20 s windows and the 5 m increases to see the events.
      await sleep(25_000);

      // The standard process families and build_info, straight from the agent.
      const got = parseExposition(await scrape(agent));
      const names = new Set([...got.values()].map((s) => s.name));
      for (
        const n of [
          "process_cpu_seconds_total",
          "process_resident_memory_bytes",
          "process_virtual_memory_bytes",
          "process_start_time_seconds",
          "process_open_fds",
          "process_max_fds",
          "huatuo_bamai_build_info",
        ]
      ) assert(names.has(n), `${n} on /metrics`);

      const empty: string[] = [];
      const allowed: string[] = [];
      let queries = 0;
      for (const d of DASHBOARDS) {
        for (const row of d.rows) {
          for (const p of row.panels) {
            for (const t of p.targets) {
              queries++;
              const expr = substitute(t.expr);
              const r = await promQuery(url, expr);
              assertEquals(r.status, "success", `${d.file} "${p.title}": ${expr}: ${r.error}`);
              if (r.n > 0) continue;
              const listed = families(expr).find((f) => ALLOWLIST[f]);
              if (listed) allowed.push(`${d.file} "${p.title}": ${listed} (${ALLOWLIST[listed].kind})`);
              else empty.push(`${d.file} "${p.title}": ${expr}`);
            }
          }
        }
      }
      console.log(
        `dashboards: ${queries} queries, ${queries - empty.length - allowed.length} with data, ` +
          `${allowed.length} allowlisted:\n  ${allowed.join("\n  ")}`,
      );
      assertEquals(empty, [], "queries without data and not in integration/dashboards_allowlist.json");

      // The alerting rules evaluate cleanly on the real series.
      const rules = await fetch(`${url}/api/v1/rules`).then((r) => r.json());
      const bad: string[] = [];
      let n = 0;
      for (const g of rules.data.groups) {
        for (const r of g.rules) {
          n++;
          if (r.health !== "ok" && r.health !== "unknown") bad.push(`${r.name}: ${r.health} ${r.lastError}`);
        }
      }
      assert(n >= 20, `${n} rules loaded`);
      assertEquals(bad, []);
      // The OOM kill and the drops reached the rules: HuatuoOOMKill fires (no `for:`).
      const alerts = await fetch(`${url}/api/v1/alerts`).then((r) => r.json());
      const firing = alerts.data.alerts.map((a: { labels: { alertname: string } }) => a.labels.alertname);
      const oom = await fetch(`${url}/api/v1/query?query=huatuo_bamai_events_total`).then((r) => r.json());
      assert(
        firing.includes("HuatuoOOMKill"),
        `HuatuoOOMKill among ${firing}: ${JSON.stringify(oom.data.result)}`,
      );
    });
  },
});
