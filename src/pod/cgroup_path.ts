// Pure parser of one cgroup path (relative to its hierarchy's mount, any
// prefix allowed) into the container it holds, for the kubelet's two cgroup
// driver grammars and the docker / containerd / cri-o leaf names:
//
//   cgroupfs: .../kubepods[/burstable|/besteffort]/pod<uid>/[crio-]<id>
//   systemd:  .../kubepods[-<qos>].slice/kubepods[-<qos>]-pod<uid_>.slice/{cri-containerd,docker,crio}-<id>.scope
//   containerd outside systemd's tree: .../kubepods[-<qos>]-pod<uid_>.slice:cri-containerd:<id>
//   plain docker: .../docker/<id> or .../docker-<id>.scope
//
// Pod slices and QoS slices are not containers. The pod sandbox ("pause")
// container has a cgroup of its own and is reported like any other container:
// it holds the pod's network namespace.

export interface CgroupPathInfo {
  /** Runtime container id, 64 lower-case hex digits. */
  id: string;
  /** Pod UID with dashes restored; "" when the path names no pod. */
  podUid: string;
  /** guaranteed | burstable | besteffort from the path; "" when unknown. */
  qosFromPath: string;
  /** docker | containerd | crio; "" when the leaf is a bare id under a pod (cgroupfs driver). */
  runtime: string;
}

const ID = "[0-9a-f]{64}";
const RUNTIME_OF: Record<string, string> = { "cri-containerd": "containerd", docker: "docker", crio: "crio" };

/** `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, and cri-o's cgroupfs `crio-<id>`. */
const PREFIXED_LEAF = new RegExp(`^(cri-containerd|docker|crio)-(${ID})(\\.scope)?$`);
/** containerd's "<slice>:<prefix>:<id>" name when it manages cgroups itself under the systemd driver. */
const COLON_LEAF = new RegExp(
  `^(kubepods(?:-[a-z]+)?-pod[0-9A-Za-z_-]+\\.slice):(cri-containerd|docker|crio):(${ID})$`,
);
const BARE_LEAF = new RegExp(`^${ID}$`);
/** Static pods have a 32-hex config hash instead of a UUID: accept any id-like text. */
const SYSTEMD_POD = /^kubepods(?:-(burstable|besteffort))?-pod([0-9A-Za-z_-]+)\.slice$/;
const CGROUPFS_POD = /^pod([0-9A-Za-z-]+)$/;

interface PodPart {
  podUid: string;
  qosFromPath: string;
}

/** A pod directory name (either grammar) → its UID and QoS; `grand` is the cgroupfs pod dir's parent. */
function podOf(name: string | undefined, grand: string | undefined): PodPart | undefined {
  if (name === undefined) return undefined;
  const s = SYSTEMD_POD.exec(name);
  // systemd escapes "-" as "_" in unit names: the UID's dashes come back.
  if (s) return { podUid: s[2].replaceAll("_", "-"), qosFromPath: s[1] ?? "guaranteed" };
  const c = CGROUPFS_POD.exec(name);
  if (!c) return undefined;
  let qos = "";
  if (grand === "burstable" || grand === "besteffort") qos = grand;
  else if (grand === "kubepods") qos = "guaranteed";
  return { podUid: c[1], qosFromPath: qos };
}

/** The container a cgroup directory holds, or undefined when it holds none (pod/QoS slices, services, ...). */
export function parseCgroupPath(path: string): CgroupPathInfo | undefined {
  const parts = path.split("/").filter((p) => p !== "");
  const leaf = parts.at(-1);
  if (leaf === undefined) return undefined;
  const parent = parts.at(-2);
  const grand = parts.at(-3);

  const colon = COLON_LEAF.exec(leaf);
  if (colon) {
    const pod = podOf(colon[1], undefined)!;
    return { id: colon[3], ...pod, runtime: RUNTIME_OF[colon[2]] };
  }
  const prefixed = PREFIXED_LEAF.exec(leaf);
  if (prefixed) {
    const pod = podOf(parent, grand) ?? { podUid: "", qosFromPath: "" };
    return { id: prefixed[2], ...pod, runtime: RUNTIME_OF[prefixed[1]] };
  }
  if (BARE_LEAF.test(leaf)) {
    const pod = podOf(parent, grand);
    if (pod) return { id: leaf, ...pod, runtime: "" };
    // Docker's cgroupfs driver: /docker/<id>; other bare ids (containerd namespaces, ...) keep runtime "".
    return { id: leaf, podUid: "", qosFromPath: "", runtime: parent === "docker" ? "docker" : "" };
  }
  return undefined;
}
