// Container network series in the real agent (root): a kubepods pod of two
// containers (two `sleep`s in the cgroups of /huatuo-it-cnet) sharing a fresh
// net namespace wired to the host by a veth pair (eth0 inside), plus a
// hostNetwork container. TCP traffic from the host to an echo server in the
// namespace must show in netdev_container_*{device="eth0"}, netstat_container_*,
// sockstat_container_* and arp_container_entries of both pod containers, none
// of it for the hostNetwork one; a removed container's series go within one
// registry refresh while its pod mate's stay; a container whose process died
// before the refresh is skipped without failing the scrape.

import { assert, assertEquals } from "../testing/assert.ts";
import { CgroupTestTree, randomHex, statInode } from "../testing/cgroup_tree.ts";
import { isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { type ParsedSeries, parseExposition } from "./prom.ts";

const skip = isRoot() ? undefined : "needs root (cgroups, network namespaces)";
if (skip) console.warn(`integration/containers_net_test.ts skipped: ${skip}`);

const P = "huatuo_bamai_";
const CONNECTIONS = 5;
const PAYLOAD = 256 * 1024;

async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

async function quietly(cmd: string, ...args: string[]): Promise<void> {
  await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output().catch(() => undefined);
}

async function stop(child: Deno.ChildProcess | undefined): Promise<void> {
  if (!child) return;
  try {
    child.kill("SIGKILL");
  } catch { /* gone */ }
  await child.status;
}

/** Waits until `pid` is in the namespace whose bind mount is `nsPath`. */
async function untilIn(pid: number, nsPath: string): Promise<void> {
  const want = await statInode(nsPath);
  for (let i = 0; i < 300; i++) {
    if (await statInode(`/proc/${pid}/ns/net`, true).catch(() => 0) === want) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} never entered ${nsPath}`);
}

/** The series `name` (without prefix) of container `cname`, filtered by `extra` labels. */
function series(
  m: Map<string, ParsedSeries>,
  name: string,
  cname: string,
  extra: Record<string, string> = {},
): ParsedSeries[] {
  return [...m.values()].filter((s) =>
    s.name === P + name && s.labels.container_name === cname &&
    Object.entries(extra).every(([k, v]) => s.labels[k] === v)
  );
}

function one(
  m: Map<string, ParsedSeries>,
  name: string,
  cname: string,
  extra: Record<string, string> = {},
): number {
  const got = series(m, name, cname, extra);
  assertEquals(got.length, 1, `${name} of ${cname} ${JSON.stringify(extra)}`);
  return got[0].value;
}

const NET_FAMILY = /^huatuo_bamai_(netdev|netstat|sockstat|arp)_container_/;

function netSeriesOf(m: Map<string, ParsedSeries>, cname: string): ParsedSeries[] {
  return [...m.values()].filter((s) => NET_FAMILY.test(s.name) && s.labels.container_name === cname);
}

Deno.test({
  name: "agent: container netdev/netstat/sockstat/arp series from the pod's own net namespace",
  ignore: skip !== undefined,
  async fn() {
    const rand = randomHex(6);
    const ns = `huatuo-it-cnet-${rand}`;
    const hostIf = `hcn${rand}`;
    const octet = 1 + Math.floor(Math.random() * 250);
    const hostIp = `10.231.${octet}.1`;
    const nsIp = `10.231.${octet}.2`;
    const tree = await CgroupTestTree.create("cnet");
    const procs: Deno.ChildProcess[] = [];
    let server: Deno.ChildProcess | undefined;
    let agent: RunningAgent | undefined;
    let held: Deno.TcpConn | undefined;
    try {
      await run("ip", "netns", "add", ns);
      await run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns);
      await run("ip", "addr", "add", `${hostIp}/24`, "dev", hostIf);
      await run("ip", "link", "set", hostIf, "up");
      await run("ip", "-n", ns, "addr", "add", `${nsIp}/24`, "dev", "eth0");
      await run("ip", "-n", ns, "link", "set", "eth0", "up");
      await run("ip", "-n", ns, "link", "set", "lo", "up");

      // The pod: two containers in the namespace; a hostNetwork pod beside it.
      const podUid = crypto.randomUUID();
      const spawn = (inNs: boolean) => {
        const [cmd, args] = inNs ? ["ip", ["netns", "exec", ns, "sleep", "600"]] : ["sleep", ["600"]];
        const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).spawn();
        procs.push(child);
        return child;
      };
      const specs = [
        {
          id: randomHex(64),
          rel: (id: string) => `/kubepods/burstable/pod${podUid}/${id}`,
          child: spawn(true),
        },
        {
          id: randomHex(64),
          rel: (id: string) => `/kubepods/burstable/pod${podUid}/${id}`,
          child: spawn(true),
        },
        {
          id: randomHex(64),
          rel: (id: string) => `/kubepods/besteffort/pod${crypto.randomUUID()}/${id}`,
          child: spawn(false),
        },
      ];
      const [app, sidecar, hostNet] = specs.map((s) => s.id.slice(0, 12));
      const dirsOf = new Map<string, string[]>();
      for (const s of specs.slice(0, 2)) await untilIn(s.child.pid, `/run/netns/${ns}`);
      for (const s of specs) {
        const dirs: string[] = [];
        for (const h of tree.hierarchies) {
          const dir = `${h.path}${tree.root}${s.rel(s.id)}`;
          await Deno.mkdir(dir, { recursive: true });
          await Deno.writeTextFile(`${dir}/cgroup.procs`, `${s.child.pid}\n`);
          dirs.push(dir);
        }
        dirsOf.set(s.id, dirs);
      }

      // An echo server in the namespace: a TCP socket the pod's sockstat must count.
      const port = 20000 + Math.floor(Math.random() * 20000);
      const code = `const l = Deno.listen({ hostname: "0.0.0.0", port: ${port} }); console.log("ready");
        for await (const c of l) c.readable.pipeTo(c.writable).catch(() => {});`;
      server = new Deno.Command("ip", {
        args: ["netns", "exec", ns, Deno.execPath(), "eval", code],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = server.stdout.getReader();
      const first = await reader.read();
      assert(new TextDecoder().decode(first.value).includes("ready"), "echo server did not start");
      reader.releaseLock();
      server.stdout.cancel().catch(() => {});

      Deno.env.set("HUATUO_BAMAI_CGROUP_ROOT", tree.root);
      try {
        agent = await startAgent({ args: ["--region", "it", "--disable-storage", "--disable-kubelet"] });
      } finally {
        Deno.env.delete("HUATUO_BAMAI_CGROUP_ROOT");
      }
      const before = parseExposition(await scrape(agent));
      const rx0 = one(before, "netdev_container_receive_bytes_total", app, { device: "eth0" });
      const tx0 = one(before, "netdev_container_transmit_bytes_total", app, { device: "eth0" });
      const opens0 = one(before, "netstat_container_Tcp_PassiveOpens", app);
      const tcpExt = (m: Map<string, ParsedSeries>) =>
        [...m.values()].filter((s) =>
          s.name.startsWith(`${P}netstat_container_TcpExt_`) && s.labels.container_name === app
        );
      const ext0 = tcpExt(before);
      assert(ext0.length >= 50, `only ${ext0.length} TcpExt series`);
      // The config excludes lo; the host namespace's devices never show as a container's.
      assertEquals(series(before, "netdev_container_receive_bytes_total", app).map((s) => s.labels.device), [
        "eth0",
      ]);
      assertEquals(netSeriesOf(before, hostNet), [], "hostNetwork container has no network series");

      // Traffic through the veth: CONNECTIONS echo round trips of PAYLOAD bytes, one connection held open.
      const payload = Uint8Array.from({ length: PAYLOAD }, (_, i) => (i * 31 + (i >> 8)) & 0xff);
      for (let i = 0; i < CONNECTIONS; i++) {
        const conn = await Deno.connect({ hostname: nsIp, port });
        const buf = new Uint8Array(PAYLOAD);
        // Written and read concurrently: the echo fills the socket buffers otherwise.
        const write = async () => {
          for (let off = 0; off < PAYLOAD;) off += await conn.write(payload.subarray(off));
        };
        const read = async () => {
          for (let got = 0; got < PAYLOAD;) {
            const n = await conn.read(buf.subarray(got));
            if (n === null) throw new Error(`echo closed after ${got} bytes`);
            got += n;
          }
        };
        await Promise.all([write(), read()]);
        assertEquals(buf, payload);
        if (i === CONNECTIONS - 1) held = conn;
        else conn.close();
      }

      const after = parseExposition(await scrape(agent));
      const rx1 = one(after, "netdev_container_receive_bytes_total", app, { device: "eth0" });
      const tx1 = one(after, "netdev_container_transmit_bytes_total", app, { device: "eth0" });
      console.log(
        `eth0 in ${ns}: rx +${rx1 - rx0} B, tx +${tx1 - tx0} B for ${CONNECTIONS * PAYLOAD} B each way`,
      );
      assert(rx1 - rx0 >= CONNECTIONS * PAYLOAD, `rx grew by ${rx1 - rx0}`);
      assert(tx1 - tx0 >= CONNECTIONS * PAYLOAD, `tx grew by ${tx1 - tx0}`);
      const opens1 = one(after, "netstat_container_Tcp_PassiveOpens", app);
      assert(opens1 - opens0 >= CONNECTIONS, `PassiveOpens ${opens0} → ${opens1}`);
      const sum = (xs: ParsedSeries[]) => xs.reduce((a, s) => a + s.value, 0);
      const ext1 = tcpExt(after);
      assert(sum(ext1) > sum(ext0), `TcpExt sum ${sum(ext0)} → ${sum(ext1)}`);
      const sent = (m: Map<string, ParsedSeries>) => one(m, "netstat_container_TcpExt_TCPOrigDataSent", app);
      assert(sent(after) > sent(before), `TcpExt_TCPOrigDataSent ${sent(before)} → ${sent(after)}`);
      // The listener and the held connection's server side.
      const inuse = one(after, "sockstat_container_TCP_inuse", app);
      assert(inuse >= 2, `TCP_inuse ${inuse}`);
      assertEquals(series(after, "sockstat_container_TCP_mem", app), [], "mem is host-wide");
      const arp = one(after, "arp_container_entries", app);
      assert(arp >= 1, `arp entries ${arp}`);
      // The pod mate sees the same namespace.
      assertEquals(one(after, "arp_container_entries", sidecar), arp);
      assert(one(after, "netdev_container_receive_bytes_total", sidecar, { device: "eth0" }) >= rx1);
      assertEquals(netSeriesOf(after, hostNet), []);
      const labels = series(after, "arp_container_entries", app)[0].labels;
      assertEquals(labels, {
        container_host: "",
        container_hostnamespace: "",
        container_level: "burstable",
        container_name: app,
        container_type: "",
        host: labels.host,
        region: "it",
      });
      held?.close();
      held = undefined;

      // The app container goes (process and cgroups); its mate keeps the namespace alive.
      await stop(specs[0].child);
      for (const dir of dirsOf.get(specs[0].id)!) await Deno.remove(dir);
      const deadline = Date.now() + 15_000;
      let now = parseExposition(await scrape(agent));
      while (netSeriesOf(now, app).length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        now = parseExposition(await scrape(agent));
      }
      assertEquals(netSeriesOf(now, app), [], "removed container's series vanish after a refresh");
      assert(netSeriesOf(now, sidecar).length > 0, "the pod mate keeps its series");
      const success = [...now.values()].filter((s) =>
        s.name === `${P}scrape_collector_success` &&
        ["netdev", "netstat", "sockstat", "arp"].includes(s.labels.collector ?? "")
      );
      assertEquals(success.map((s) => [s.labels.collector, s.value]).sort(), [
        ["arp", 1],
        ["netdev", 1],
        ["netstat", 1],
        ["sockstat", 1],
      ]);
      // The mate's process exits but its cgroup stays: until the next refresh the registry still names the
      // dead pid; the scrape skips it without failing.
      await stop(specs[1].child);
      const dead = parseExposition(await scrape(agent));
      assertEquals(netSeriesOf(dead, sidecar), []);
      assertEquals(
        [...dead.values()].filter((s) =>
          s.name === `${P}scrape_collector_success` &&
          ["netdev", "netstat", "sockstat", "arp"].includes(s.labels.collector ?? "") && s.value !== 1
        ),
        [],
      );
      const { code: exit } = await agent.stop();
      assertEquals(exit, 0, agent.output());
    } finally {
      held?.close();
      await agent?.stop();
      await stop(server);
      for (const p of procs) await stop(p);
      await tree.cleanup();
      await quietly("ip", "link", "del", hostIf);
      await quietly("ip", "netns", "del", ns);
    }
  },
});
