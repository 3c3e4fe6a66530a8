// Pure parser of the kubelet's GET /pods answer (a v1 PodList) into the
// lookups the container registry needs: runtime container id → PodInfo, and
// pod UID → pod-level PodInfo for containers the kubelet has not started (or
// not reported) yet, e.g. the pod sandbox ("pause") container.

import type { PodInfo } from "./container.ts";

/** The part of a v1 PodList this agent reads; everything else is ignored. */
interface ContainerSpec {
  name?: string;
  restartPolicy?: string;
}

interface ContainerStatus {
  name?: string;
  containerID?: string;
}

interface Pod {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    annotations?: Record<string, string>;
    ownerReferences?: { kind?: string; controller?: boolean }[];
  };
  spec?: { initContainers?: ContainerSpec[] };
  status?: {
    qosClass?: string;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
    ephemeralContainerStatuses?: ContainerStatus[];
  };
}

export interface PodView {
  /** Runtime container id (scheme stripped) → the container's metadata. */
  byContainer: Map<string, PodInfo>;
  /** Pod UID → pod-level metadata (name "" : the container is unknown). */
  byPod: Map<string, PodInfo>;
  /** Pods in the list. */
  pods: number;
}

export class PodListError extends Error {
  override name = "PodListError";
}

/**
 * Strips the runtime scheme of a containerID ("containerd://<id>",
 * "docker://<id>", "cri-o://<id>"); "" for an empty or scheme-less value
 * (the kubelet reports "" for a container not started yet).
 */
export function stripRuntimeScheme(containerId: string | undefined): string {
  if (!containerId) return "";
  const i = containerId.indexOf("://");
  return i < 0 ? "" : containerId.slice(i + 3);
}

/**
 * A static pod as the kubelet itself lists it carries
 * kubernetes.io/config.source = file|http; its mirror in the API server
 * carries kubernetes.io/config.mirror. Either marks "static".
 */
function isStatic(pod: Pod): boolean {
  const a = pod.metadata?.annotations ?? {};
  if ("kubernetes.io/config.mirror" in a) return true;
  const source = a["kubernetes.io/config.source"];
  return source === "file" || source === "http";
}

function isDaemonSet(pod: Pod): boolean {
  return (pod.metadata?.ownerReferences ?? []).some((o) => o.kind === "DaemonSet");
}

/**
 * container_type precedence: the container's own role first (init,
 * sidecar, ephemeral — what the container does), then the pod's origin
 * (static, daemonset — who runs it), else normal. So a DaemonSet pod's
 * init container is "init", its main container "daemonset".
 */
function podType(pod: Pod): string {
  if (isStatic(pod)) return "static";
  if (isDaemonSet(pod)) return "daemonset";
  return "normal";
}

/** Parses the JSON text of GET /pods; throws PodListError when it is not a PodList. */
export function parsePodListText(text: string): PodView {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new PodListError(`/pods is not JSON: ${err instanceof Error ? err.message : err}`);
  }
  return parsePodList(doc);
}

export function parsePodList(doc: unknown): PodView {
  if (typeof doc !== "object" || doc === null || !Array.isArray((doc as { items?: unknown }).items)) {
    throw new PodListError("/pods is not a PodList (no items array)");
  }
  const items = (doc as { items: unknown[] }).items;
  const byContainer = new Map<string, PodInfo>();
  const byPod = new Map<string, PodInfo>();
  let pods = 0;
  for (const item of items) {
    if (typeof item !== "object" || item === null) continue;
    const pod = item as Pod;
    pods++;
    const base = {
      pod: pod.metadata?.name ?? "",
      namespace: pod.metadata?.namespace ?? "",
      qos: (pod.status?.qosClass ?? "").toLowerCase(),
    };
    const type = podType(pod);
    const uid = pod.metadata?.uid;
    if (uid) byPod.set(uid, { ...base, name: "", type });

    const add = (statuses: ContainerStatus[] | undefined, typeOf: (name: string) => string) => {
      for (const s of statuses ?? []) {
        const id = stripRuntimeScheme(s.containerID);
        if (id) byContainer.set(id, { ...base, name: s.name ?? "", type: typeOf(s.name ?? "") });
      }
    };
    // restartPolicy Always on an init container = native sidecar (KEP-753).
    const sidecars = new Set(
      (pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always").map((c) => c.name),
    );
    add(pod.status?.containerStatuses, () => type);
    add(pod.status?.initContainerStatuses, (name) => sidecars.has(name) ? "sidecar" : "init");
    add(pod.status?.ephemeralContainerStatuses, () => "ephemeral");
  }
  return { byContainer, byPod, pods };
}
