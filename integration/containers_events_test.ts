// Container fields on events, end to end (root): the real agent scans a
// kubepods tree built in the real cgroup hierarchies under
// /huatuo-it-evts (HUATUO_BAMAI_CGROUP_ROOT), a stand-in kubelet read-only
// port names the test container's pod, and real kernel activity in the
// container must produce documents carrying container_id, container_hostname
// (pod name), container_host_namespace, container_type and container_qos:
//   - an OOM kill inside the container's v1 memory cgroup (a small
//     memory.limit_in_bytes and `tail /dev/zero`, which buffers forever):
//     the oom document (victim's container at top level, victim_/trigger_
//     container_id and _hostname in tracer_data);
//   - a UDP datagram to a closed port inside the container's network
//     namespace (no socket owns the dropped skb: the netns ties it):
//     the dropwatch document.
// net_rx_latency's ExcludedContainerQos is covered by
// src/features/net_rx_latency_test.ts (the filter on a resolver's QoS).

import { assert, assertEquals } from "../testing/assert.ts";
import { CgroupTestTree, type ContainerSpec, randomHex } from "../testing/cgroup_tree.ts";
import { isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { parseExposition } from "./prom.ts";

const skip = !isRoot() ? "needs root (cgroups, BPF)" : undefined;
if (skip) console.warn(`integration/containers_events_test.ts skipped: ${skip}`);

const POD = "checkout-6b8f7d9c4-x7k2p";
const NAMESPACE = "shop";
const CONTAINER = "checkout";

/** A kubelet /pods answer naming the test container (a Deployment pod, Burstable). */
function podList(spec: ContainerSpec): unknown {
  return {
    kind: "PodList",
    apiVersion: "v1",
    metadata: {},
    items: [{
      metadata: {
        name: POD,
        namespace: NAMESPACE,
        uid: spec.podUid,
        ownerReferences: [{
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: "checkout-6b8f7d9c4",
          controller: true,
        }],
      },
      spec: { containers: [{ name: CONTAINER, image: "registry.local/checkout:1.4" }] },
      status: {
        phase: "Running",
        qosClass: "Burstable",
        containerStatuses: [{
          name: CONTAINER,
          containerID: `containerd://${spec.id}`,
          state: { running: { startedAt: "2025-05-01T10:00:09Z" } },
          ready: true,
        }],
      },
    }],
  };
}

type Doc = Record<string, unknown> & { tracer_data: Record<string, unknown> };

/** Documents of a tracer in the agent's local file store (one JSON per line). */
function docs(dir: string, tracer: string): Doc[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${dir}/${tracer}`);
  } catch {
    return [];
  }
  return text.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

async function waitFor<T>(
  what: string,
  get: () => T | undefined | Promise<T | undefined>,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function run(cmd: string, args: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
}

Deno.test({
  name: "events carry the container: a real OOM kill and a real packet drop inside a test container",
  ignore: skip !== undefined,
  async fn() {
    const tree = await CgroupTestTree.create("evts");
    const local = Deno.makeTempDirSync({ prefix: "huatuo-it-evts-" });
    const podUid = crypto.randomUUID();
    const id = randomHex(64);
    const spec: ContainerSpec = {
      id,
      podUid,
      qos: "burstable",
      runtime: "containerd",
      rel: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${
        podUid.replaceAll("-", "_")
      }.slice/cri-containerd-${id}.scope`,
      ownNetns: true,
    };
    const kubelet = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) =>
        new URL(req.url).pathname === "/pods"
          ? Response.json(podList(spec))
          : new Response("", { status: 404 }),
    );
    let agent: RunningAgent | undefined;
    let hog: Deno.ChildProcess | undefined;
    try {
      const c = await tree.add(spec);
      Deno.env.set("HUATUO_BAMAI_CGROUP_ROOT", tree.root);
      try {
        agent = await startAgent({
          args: ["--region", "it", "--disable-storage"],
          conf: (p) =>
            `[Storage.LocalFile]\nPath = "${local}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n` +
            `[Pod]\nKubeletReadOnlyPort = ${kubelet.addr.port}\nKubeletAuthorizedPort = 0\n` +
            `KubeletClientCertPath = ""\n`,
        });
      } finally {
        Deno.env.delete("HUATUO_BAMAI_CGROUP_ROOT");
      }
      const url = agent.url;
      for (const t of ["oom", "dropwatch"]) {
        const s = await (await fetch(`${url}/v1/tracers/${t}`)).json() as { state: string };
        assertEquals(s.state, "running", `${t}: ${JSON.stringify(s)}`);
      }
      // The registry knows the container and the kubelet has named it.
      await waitFor("the test container with its pod", async () => {
        const list = await (await fetch(`${url}/containers/json`)).json() as {
          id: string;
          pod: { pod: string } | null;
        }[];
        return list.find((x) => x.id === id && x.pod?.pod === POD);
      });
      // The same names label the container's series on /metrics, and the kubelet is reported up.
      const series = [...parseExposition(await scrape(agent)).values()];
      const cpuStat = series.find((x) => x.name === "huatuo_bamai_cpu_stat_container_nr_throttled");
      assertEquals(cpuStat?.labels, {
        container_host: POD,
        container_hostnamespace: NAMESPACE,
        container_level: "burstable",
        container_name: CONTAINER,
        container_type: "normal",
        host: cpuStat?.labels.host ?? "",
        region: "it",
      });
      assertEquals(series.find((x) => x.name === "huatuo_bamai_kubelet_up")?.value, 1);
      const want = {
        container_id: id,
        container_hostname: POD,
        container_host_namespace: NAMESPACE,
        container_type: "normal",
        container_qos: "burstable",
      };
      const fields = (d: Doc) => ({
        container_id: d.container_id,
        container_hostname: d.container_hostname,
        container_host_namespace: d.container_host_namespace,
        container_type: d.container_type,
        container_qos: d.container_qos,
      });

      // (b) A datagram to a closed port in the container's netns: dropped with NO_SOCKET on its lo.
      const ns = `--net=/proc/${c.pid}/ns/net`;
      let out = await run("nsenter", [ns, "ip", "link", "set", "lo", "up"]);
      assert(out.success, `lo up: ${new TextDecoder().decode(out.stderr)}`);
      const port = 9; // discard: nothing listens in a fresh namespace
      const drop = await waitFor("a dropwatch document for the container's drop", async () => {
        out = await run("nsenter", [ns, "bash", "-c", `echo huatuo > /dev/udp/127.0.0.1/${port}`]);
        assert(out.success, `send: ${new TextDecoder().decode(out.stderr)}`);
        return docs(local, "dropwatch").find((d) =>
          d.tracer_data.dport === port && d.tracer_data.daddr === "127.0.0.1" && d.container_id === id
        );
      });
      assertEquals(fields(drop), want);
      assertEquals([drop.tracer_data.reason, drop.tracer_data.netdev_name], ["NO_SOCKET", "lo"]);

      // (a) An OOM kill in the container's memory cgroup.
      const memdir = c.dirs["memory"];
      assert(memdir, "the container has a v1 memory cgroup");
      Deno.writeTextFileSync(`${memdir}/memory.limit_in_bytes`, `${32 << 20}\n`);
      hog = new Deno.Command("sh", {
        args: ["-c", 'echo $$ > "$0/cgroup.procs" && exec tail /dev/zero', memdir],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const status = await hog.status;
      assertEquals(status.signal, "SIGKILL", "tail was OOM-killed");
      const oom = await waitFor(
        "an oom document for the container",
        () => docs(local, "oom").find((d) => d.tracer_data.victim_pid === hog!.pid),
      );
      assertEquals(fields(oom), want, "the document's container is the victim's");
      const td = oom.tracer_data;
      assertEquals(
        [
          td.victim_container_id,
          td.victim_container_hostname,
          td.trigger_container_id,
          td.trigger_container_hostname,
        ],
        [id, POD, id, POD],
      );
    } finally {
      if (hog) {
        try {
          hog.kill("SIGKILL");
        } catch { /* gone */ }
        await hog.status;
      }
      if (agent) assertEquals((await agent.stop()).code, 0);
      await kubelet.shutdown();
      await tree.cleanup();
      Deno.removeSync(local, { recursive: true });
    }
  },
});
