// GET /containers/json: the containers the registry knows, with their
// Prometheus labels; `?id=<hex prefix>` narrows the list. Unknown or malformed
// query parameters are a JSON 400, so a typo never silently lists everything.

import { type Container, containerLabels, type ContainerRegistry } from "../pod/container.ts";
import { jsonResponse, type Route } from "./json.ts";

const ID_PREFIX = /^[0-9a-f]{1,64}$/;

export function containerJson(c: Container): Record<string, unknown> {
  return {
    id: c.id,
    podUid: c.podUid,
    qosFromPath: c.qosFromPath,
    runtime: c.runtime,
    cgroupPaths: c.cgroupPaths,
    cgroupId: c.cgroupId,
    memcgId: c.memcgId,
    cpuCgroupId: c.cpuCgroupId,
    blkioCgroupId: c.blkioCgroupId,
    initPid: c.initPid,
    netnsInode: c.netnsInode,
    pod: c.pod ?? null,
    labels: containerLabels(c),
  };
}

/** The id prefix asked for ("" = all), or the 400 to answer with. */
export function parseContainersQuery(params: URLSearchParams): { id: string } | { error: string } {
  let id = "";
  const seen = new Set<string>();
  for (const [key, value] of params) {
    if (key !== "id") return { error: `unknown query parameter "${key}" (accepted: id)` };
    if (seen.has(key)) return { error: `query parameter "${key}" given twice` };
    seen.add(key);
    id = value.toLowerCase();
    if (!ID_PREFIX.test(id)) return { error: `id must be 1-64 hex digits, got ${JSON.stringify(value)}` };
  }
  return { id };
}

export function containersRoute(registry: ContainerRegistry): Route {
  return (req) => {
    const q = parseContainersQuery(new URL(req.url).searchParams);
    if ("error" in q) return jsonResponse(400, { error: q.error });
    const list = q.id ? registry.list().filter((c) => c.id.startsWith(q.id)) : registry.list();
    return jsonResponse(200, list.map(containerJson));
  };
}
