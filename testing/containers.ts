// Shared by the container collectors' tests: the fixture hosts under
// fixtures/cgroup, containers built by hand on the contract's fields, a
// one-map ContainerRegistry and sample lookups.

import { defaultConfig } from "../src/config/schema.ts";
import type { Config } from "../src/config/schema.ts";
import { HostFs } from "../src/host/fs.ts";
import { silentLogger } from "../src/log/logger.ts";
import { BpfRuntime } from "../src/bpf/tracer.ts";
import type { Container, ContainerRegistry } from "../src/pod/container.ts";
import type { FeatureContext } from "../src/features/feature.ts";
import type { Sample } from "../src/core/sample.ts";

export const FIXTURES = new URL("../fixtures/cgroup/", import.meta.url).pathname;

export const V1_ID = "3f5a8c2e9b7d4f1a6c0e8b2d5f9a7c3e1b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a";
export const V2_ID = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
const POD_UID = "6a1f3c2e-8b4d-4f7a-9c1e-2d3b4a5c6d7e";

/** The v1 fixture container (cgroupfs driver) under host root `root` (a copy of fixtures/cgroup/v1, or garbled). */
export function v1Container(root = `${FIXTURES}v1`, qosDir = "burstable/"): Container {
  const rel = `kubepods/${qosDir}pod${POD_UID}/${V1_ID}`;
  return {
    id: V1_ID,
    podUid: POD_UID,
    qosFromPath: "burstable",
    runtime: "",
    cgroupPaths: {
      cpu: `${root}/sys/fs/cgroup/cpu/${rel}`,
      cpuacct: `${root}/sys/fs/cgroup/cpuacct/${rel}`,
      memory: `${root}/sys/fs/cgroup/memory/${rel}`,
    },
    cgroupId: 0,
    memcgId: 0,
    cpuCgroupId: 0,
    blkioCgroupId: 0,
    initPid: 1201,
    netnsInode: 0,
    pod: {
      name: "coredns",
      pod: "coredns-855c4dd65d-8v5kg",
      namespace: "kube-system",
      qos: "burstable",
      type: "normal",
    },
  };
}

/** The cgroup2 fixture container (systemd driver, containerd), known only from its path (no kubelet). */
export function v2Container(root = `${FIXTURES}v2`): Container {
  return {
    id: V2_ID,
    podUid: "6a1f3c2e-8b4d-4f7a-9c1e-2d3b4a5c6d7f",
    qosFromPath: "burstable",
    runtime: "containerd",
    cgroupPaths: {
      unified: `${root}/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/` +
        `kubepods-burstable-pod6a1f3c2e_8b4d_4f7a_9c1e_2d3b4a5c6d7f.slice/cri-containerd-${V2_ID}.scope`,
    },
    cgroupId: 0,
    memcgId: 0,
    cpuCgroupId: 0,
    blkioCgroupId: 0,
    initPid: 2201,
    netnsInode: 0,
  };
}

export function staticRegistry(list: Container[]): ContainerRegistry {
  return {
    list: () => list,
    byId: (id) => list.find((c) => c.id === id),
    byCgroupId: (id) =>
      list.find((c) =>
        [c.cgroupId, c.memcgId, c.cpuCgroupId].some((x) => x !== 0 && BigInt(x) === BigInt(id))
      ),
    byNetns: (inode) => list.find((c) => c.netnsInode === inode),
  };
}

export function context(root: string, config: Config = defaultConfig()): FeatureContext {
  return { fs: new HostFs(root), config, log: silentLogger, bpf: new BpfRuntime("") };
}

/** Config with only the filters given changed. */
export function withFilters(
  vmstat: { IncludedOnContainer?: string; ExcludedOnContainer?: string },
  events: { Included?: string; Excluded?: string } = {},
): Config {
  const d = defaultConfig();
  return {
    ...d,
    MetricCollector: {
      ...d.MetricCollector,
      Vmstat: { ...d.MetricCollector.Vmstat, ...vmstat },
      MemoryEvents: { ...d.MetricCollector.MemoryEvents, ...events },
    },
  };
}

/** name → value of the samples of container `name` (container_name label). */
export function valuesOf(samples: Sample[], containerName: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.labels?.container_name !== containerName) continue;
    if (out.has(s.name)) throw new Error(`duplicate series ${s.name} for ${containerName}`);
    out.set(s.name, s.value);
  }
  return out;
}

/** A writable copy of a fixture host. */
export async function copyFixture(name: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "huatuo-ccoll-" });
  const cmd = new Deno.Command("cp", { args: ["-a", `${FIXTURES}${name}/.`, dir] });
  const r = await cmd.output();
  if (!r.success) throw new Error(`cp ${name}: ${new TextDecoder().decode(r.stderr)}`);
  return dir;
}
