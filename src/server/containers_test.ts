import { silentLogger } from "../log/logger.ts";
import { Registry } from "../metrics/registry.ts";
import type { Container, ContainerRegistry } from "../pod/container.ts";
import { assertEquals, assertMatch } from "../../testing/assert.ts";
import { parseContainersQuery } from "./containers.ts";
import { createHandler } from "./http.ts";

const A = "ab12cd34" + "0".repeat(56);
const B = "ab99ef00" + "1".repeat(56);

function container(id: string, extra: Partial<Container> = {}): Container {
  return {
    id,
    podUid: "5d2c7a1e-9b3f-4c8d-a6e2-1f0b7c9d3e4a",
    qosFromPath: "burstable",
    runtime: "containerd",
    cgroupPaths: { unified: `/sys/fs/cgroup/unified/kubepods/burstable/pod5d2c/${id}` },
    cgroupId: 4242,
    memcgId: 77,
    cpuCgroupId: 78,
    blkioCgroupId: 0,
    initPid: 1234,
    netnsInode: 4026532999,
    ...extra,
  };
}

/** The lookups the route uses over a fixed list (the registry itself is tested on real cgroups). */
function listRegistry(list: Container[]): ContainerRegistry {
  return {
    list: () => list,
    byId: (id) => list.find((c) => c.id === id),
    byCgroupId: () => undefined,
    byNetns: () => undefined,
  };
}

const pod = { name: "app", pod: "web-0", namespace: "shop", qos: "burstable", type: "normal" };

function handler(containers?: ContainerRegistry) {
  const registry = new Registry({ host: "h", region: "r" }, silentLogger);
  return createHandler({ registry, log: silentLogger, version: {}, isReady: () => true, containers });
}

const get = (path: string) => new Request(`http://localhost${path}`);

Deno.test("GET /containers/json lists every container with its fields and labels", async () => {
  const h = handler(listRegistry([container(A, { pod }), container(B)]));
  const res = await h(get("/containers/json"));
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
  const body = await res.json();
  assertEquals(body.length, 2);
  assertEquals(body[0], {
    ...container(A),
    pod,
    labels: {
      container_host: "web-0",
      container_hostnamespace: "shop",
      container_level: "burstable",
      container_name: "app",
      container_type: "normal",
    },
  });
  // Without kubelet names: labels from the path, the name is the short id.
  assertEquals(body[1].pod, null);
  assertEquals(body[1].labels.container_name, B.slice(0, 12));
});

Deno.test("GET /containers/json?id= filters by prefix, case-insensitively", async () => {
  const h = handler(listRegistry([container(A), container(B)]));
  const ids = async (q: string) =>
    (await (await h(get(`/containers/json${q}`))).json()).map((c: Container) => c.id);
  assertEquals(await ids("?id=ab"), [A, B]);
  assertEquals(await ids("?id=AB12"), [A]);
  assertEquals(await ids(`?id=${B}`), [B]);
  assertEquals(await ids("?id=ffff"), []);
});

Deno.test("GET /containers/json: a bad query is a JSON 400", async () => {
  const h = handler(listRegistry([container(A)]));
  for (const q of ["?id=", "?id=xyz", `?id=${A}0`, "?id=ab&id=cd", "?name=web", "?id=ab&all=1"]) {
    const res = await h(get(`/containers/json${q}`));
    assertEquals(res.status, 400, q);
    assertMatch((await res.json()).error, /id|parameter/, q);
  }
  assertEquals(parseContainersQuery(new URLSearchParams("")), { id: "" });
});

Deno.test("no container registry → /containers/json is a 404", async () => {
  const res = await handler()(get("/containers/json"));
  assertEquals(res.status, 404);
  await res.body?.cancel();
});
