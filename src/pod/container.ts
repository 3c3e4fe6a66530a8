// A container on this host, as discovered from the cgroup tree and named by
// the kubelet, and the registry every collector and event tracer asks. This
// file is the contract between discovery (src/pod/discovery.ts), the kubelet
// client (src/pod/kubelet.ts), container collectors and event enrichment.

/** Kubernetes metadata of a container, from the kubelet's /pods (absent without a kubelet). */
export interface PodInfo {
  /** Container name in the pod spec → label container_name. */
  name: string;
  /** Pod name → label container_host and event field container_hostname. */
  pod: string;
  /** Pod namespace → label container_hostnamespace / event container_host_namespace. */
  namespace: string;
  /** Pod QoS class, lower-case: guaranteed | burstable | besteffort → container_level / container_qos. */
  qos: string;
  /** normal | sidecar | daemonset | init | ... → container_type. */
  type: string;
}

export interface Container {
  /** Runtime container id (64 hex digits for docker/containerd/cri-o). */
  id: string;
  /** Pod UID from the cgroup path (dashes restored), "" when the path has none (plain docker). */
  podUid: string;
  /** QoS class from the cgroup path (guaranteed when the pod sits directly under kubepods), "" when unknown. */
  qosFromPath: string;
  /** Runtime from the path grammar: "docker" | "containerd" | "crio" | "". */
  runtime: string;
  /** Cgroup directory per v1 controller name ("cpu,cpuacct", "memory", ...) and "unified" for cgroup2. */
  cgroupPaths: Record<string, string>;
  /** cgroup2 id: the inode of the cgroup2 directory (what bpf_get_current_cgroup_id returns); 0 if none. */
  cgroupId: number;
  /** Inode of the v1 memory cgroup dir (what the BPF memcg helpers key on); 0 if none. */
  memcgId: number;
  /** Inode of the v1 cpu cgroup dir (runqlat's per-cgroup key on v1 hosts); 0 if none. */
  cpuCgroupId: number;
  /** Inode of the v1 blkio cgroup dir (iolatency's per-cgroup key on v1 hosts); 0 if none. */
  blkioCgroupId: number;
  /** A process of the container (its lowest pid), 0 when it has none right now. */
  initPid: number;
  /** Inode of initPid's network namespace; 0 when unknown. */
  netnsInode: number;
  /** Kubelet metadata when known. */
  pod?: PodInfo;
}

// One frozen label object per Container: a refresh or relabel makes new
// Container objects, so this never goes stale, and the exposition can cache
// what it renders for the same object (200 containers × 18+ series a scrape).
const labelCache = new WeakMap<Container, Readonly<Record<string, string>>>();

/** The Prometheus labels of a container series, exactly the seed's names (frozen; spread to extend). */
export function containerLabels(c: Container): Readonly<Record<string, string>> {
  let labels = labelCache.get(c);
  if (!labels) {
    labels = Object.freeze({
      container_host: c.pod?.pod ?? "",
      container_hostnamespace: c.pod?.namespace ?? "",
      container_level: c.pod?.qos ?? c.qosFromPath,
      container_name: c.pod?.name ?? c.id.slice(0, 12),
      container_type: c.pod?.type ?? "",
    });
    labelCache.set(c, labels);
  }
  return labels;
}

/** Event document fields of a container (seed: container_id, _hostname, _host_namespace, _type, _qos). */
export function containerEventFields(c: Container): Record<string, string> {
  return {
    container_id: c.id,
    container_hostname: c.pod?.pod ?? "",
    container_host_namespace: c.pod?.namespace ?? "",
    container_type: c.pod?.type ?? "",
    container_qos: c.pod?.qos ?? c.qosFromPath,
  };
}

/** A cgroup controller whose kernfs id a BPF map or event carries: cpu, memory and io (v1 name blkio). */
export type CgroupController = "cpu" | "memory" | "blkio";

/**
 * What a cgroup id names: the css of a controller (the v1 dir inode where a
 * v1 hierarchy holds it, else the cgroup2 id), or a cgroup2 directory.
 */
export type CgroupIdKind = CgroupController | "cgroup2";

/** What collectors and tracers use: a snapshot refreshed off the scrape path; lookups are map reads. */
export interface ContainerRegistry {
  /** Every container known at the last refresh. */
  list(): readonly Container[];
  byId(id: string): Container | undefined;
  /**
   * By cgroup2 id, v1 memory cgroup inode or v1 cpu cgroup inode, for callers
   * that do not know which; numbers of different hierarchies can coincide.
   */
  byCgroupId(id: number | bigint): Container | undefined;
  /** By an id of a known kind: exact, never another hierarchy's number. */
  byControllerCgroupId?(kind: CgroupIdKind, id: number | bigint): Container | undefined;
  byNetns(inode: number): Container | undefined;
}

/** A registry with the exact lookup. */
export type ControllerIdLookup = Required<Pick<ContainerRegistry, "byControllerCgroupId">>;

/** Resolves ids of `kind`: exactly where the registry can, else through byCgroupId (any kind). */
export function controllerLookup(
  registry: ContainerRegistry,
  kind: CgroupIdKind,
): (id: number | bigint) => Container | undefined {
  if (registry.byControllerCgroupId) return (id) => registry.byControllerCgroupId!(kind, id);
  return (id) => registry.byCgroupId(id);
}
