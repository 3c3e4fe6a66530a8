// GET /containers/json in the real agent (root): kubepods trees of both cgroup
// driver grammars and a plain docker container built in the real v1 and
// cgroup2 hierarchies under /huatuo-it-disc-agent, each with a live `sleep`;
// the agent scans that subtree (HUATUO_BAMAI_CGROUP_ROOT), lists each container
// with its ids, pid and labels, filters by id prefix, answers a bad query with
// a JSON 400, and drops a removed container within one refresh (10 s).

import { assert, assertEquals } from "../testing/assert.ts";
import { CgroupTestTree, sampleSpecs, statInode } from "../testing/cgroup_tree.ts";
import { isRoot, type RunningAgent, startAgent } from "./agent.ts";
import type { Container, PodInfo } from "../src/pod/container.ts";

const skip = isRoot() ? undefined : "needs root (cgroups)";
if (skip) console.warn(`integration/containers_test.ts skipped: ${skip}`);

/** One entry of GET /containers/json (src/server/containers.ts containerJson). */
type ContainerDoc = Omit<Container, "pod"> & { pod: PodInfo | null; labels: Record<string, string> };

Deno.test({
  name: "agent: GET /containers/json lists the test containers and drops a removed one",
  ignore: skip !== undefined,
  async fn() {
    const tree = await CgroupTestTree.create("disc-agent");
    let agent: RunningAgent | undefined;
    try {
      const specs = sampleSpecs();
      for (const s of specs) await tree.add(s);
      Deno.env.set("HUATUO_BAMAI_CGROUP_ROOT", tree.root);
      try {
        agent = await startAgent({
          args: ["--region", "it", "--disable-storage", "--disable-kubelet", "--log-debug"],
        });
      } finally {
        Deno.env.delete("HUATUO_BAMAI_CGROUP_ROOT");
      }
      const url = agent.url;
      const get = async (q = ""): Promise<ContainerDoc[]> => {
        const res = await fetch(`${url}/containers/json${q}`);
        assertEquals(res.status, 200, `containers/json${q}`);
        return await res.json();
      };
      const list = await get();
      assertEquals(list.map((c) => c.id), specs.map((s) => s.id).sort());
      for (const c of list) {
        const t = tree.containers.get(c.id)!;
        assertEquals([c.podUid, c.qosFromPath, c.runtime], [t.podUid, t.qos, t.runtime], t.rel);
        assertEquals(c.cgroupPaths["unified"], t.dirs["unified"]);
        assertEquals(c.cgroupId, await statInode(t.dirs["unified"]), t.rel);
        assertEquals(c.memcgId, await statInode(t.dirs["memory"]), t.rel);
        assertEquals(c.initPid, t.pid, t.rel);
        assertEquals(c.netnsInode, await statInode(`/proc/${t.pid}/ns/net`, true), t.rel);
        assertEquals(c.pod, null);
        assertEquals(c.labels, {
          container_host: "",
          container_hostnamespace: "",
          container_level: t.qos,
          container_name: t.id.slice(0, 12),
          container_type: "",
        });
      }
      const one = specs[4];
      assertEquals((await get(`?id=${one.id.slice(0, 10)}`)).map((c) => c.id), [one.id]);
      const bad = await fetch(`${url}/containers/json?id=not-hex`);
      assertEquals(bad.status, 400);
      assert(String((await bad.json()).error).includes("hex"));

      await tree.remove(one.id);
      const deadline = Date.now() + 15_000;
      let ids = (await get()).map((c) => c.id);
      while (ids.includes(one.id) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        ids = (await get()).map((c) => c.id);
      }
      assertEquals(ids, specs.filter((s) => s !== one).map((s) => s.id).sort());
      const { code } = await agent.stop();
      assertEquals(code, 0, agent.output());
      const out = agent.output();
      assert(!/container discovery failed/.test(out), out);
      for (const s of specs) assert(out.includes(`msg="container appeared" id=${s.id.slice(0, 12)}`), out);
      assert(out.includes(`msg="container gone" id=${one.id.slice(0, 12)}`), out);
    } finally {
      await agent?.stop();
      await tree.cleanup();
    }
  },
});
