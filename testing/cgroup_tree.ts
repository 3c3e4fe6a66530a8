// Test support (not a test): builds kubepods-style trees in the host's real
// cgroup hierarchies under /huatuo-it-<topic>, moves a real `sleep` into each
// container cgroup, and removes everything afterwards. Needs root.

import { findHierarchies, type Hierarchy } from "../src/pod/discovery.ts";

export const CGROUP_MOUNT = "/sys/fs/cgroup";

export interface TestContainer extends ContainerSpec {
  pid: number;
  /** Directory per hierarchy name. */
  dirs: Record<string, string>;
  child: Deno.ChildProcess;
}

export interface ContainerSpec {
  /** Path inside each hierarchy, below the tree's root, e.g. /kubepods/pod<uid>/<id>. */
  rel: string;
  id: string;
  podUid: string;
  qos: string;
  runtime: string;
  /** Run the process in a network namespace of its own (like a pod without hostNetwork). */
  ownNetns?: boolean;
}

/** Random lower-case hex of `n` digits. */
export function randomHex(n: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil(n / 2)));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, n);
}

/**
 * The six kubelet layouts (cgroupfs and systemd drivers, every QoS class,
 * containerd / docker / cri-o) and a plain docker container, with fresh ids.
 */
export function sampleSpecs(): ContainerSpec[] {
  const uid = (): string => crypto.randomUUID();
  const specs: ContainerSpec[] = [];
  const add = (
    qos: string,
    runtime: string,
    rel: (id: string, uid: string) => string,
    podUid: string = uid(),
    ownNetns = false,
  ) => {
    const id = randomHex(64);
    specs.push({ id, podUid, qos, runtime, rel: rel(id, podUid), ownNetns });
  };
  const u = (s: string) => s.replaceAll("-", "_");
  add("burstable", "", (id, p) => `/kubepods/burstable/pod${p}/${id}`);
  add("guaranteed", "", (id, p) => `/kubepods/pod${p}/${id}`);
  add("besteffort", "", (id, p) => `/kubepods/besteffort/pod${p}/${id}`);
  add(
    "burstable",
    "containerd",
    (id, p) =>
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${
        u(p)
      }.slice/cri-containerd-${id}.scope`,
  );
  add(
    "guaranteed",
    "docker",
    (id, p) => `/kubepods.slice/kubepods-pod${u(p)}.slice/docker-${id}.scope`,
    uid(),
    true,
  );
  add(
    "besteffort",
    "crio",
    (id, p) =>
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${u(p)}.slice/crio-${id}.scope`,
  );
  add("", "docker", (id) => `/docker/${id}`, "");
  return specs;
}

/** rmdir of a cgroup subtree, deepest first (cgroup dirs go with rmdir, their files with them). */
export async function removeCgroupTree(dir: string): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  for (const e of entries) if (e.isDirectory) await removeCgroupTree(`${dir}/${e.name}`);
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.remove(dir);
      return;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      // A just-killed task can keep its cgroup busy for a moment.
      if (attempt >= 50) throw new Error(`rmdir ${dir}: ${err instanceof Error ? err.message : err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Why cgroup-building tests cannot run here (they use `ignore:` with it), or undefined. */
export const CGROUP_TREE_SKIP: string | undefined = Deno.uid() !== 0
  ? `building cgroups needs root (uid ${Deno.uid()})`
  : undefined;
if (CGROUP_TREE_SKIP) console.warn(`cgroup tree tests ignored: ${CGROUP_TREE_SKIP}`);

export class CgroupTestTree {
  readonly containers = new Map<string, TestContainer>();

  private constructor(
    /** e.g. /huatuo-it-disc: the path inside every hierarchy. */
    readonly root: string,
    readonly hierarchies: Hierarchy[],
  ) {}

  /**
   * A fresh /huatuo-it-<topic> in the cgroup2 mount and the v1 cpu, cpuacct,
   * memory and pids hierarchies (those present). Throws when not root: tests
   * that build cgroups are ignored then (CGROUP_TREE_SKIP).
   */
  static async create(topic: string): Promise<CgroupTestTree> {
    if (CGROUP_TREE_SKIP) throw new Error(CGROUP_TREE_SKIP);
    const wanted = new Set(["cpu", "cpuacct", "memory", "pids"]);
    const hs = (await findHierarchies(CGROUP_MOUNT)).filter((h) =>
      h.name === "unified" || h.controllers.some((c) => wanted.has(c))
    );
    const tree = new CgroupTestTree(`/huatuo-it-${topic}`, hs);
    for (const h of hs) await removeCgroupTree(`${h.path}${tree.root}`);
    return tree;
  }

  /** Creates the container's cgroup in every hierarchy and moves a new `sleep` into it. */
  async add(spec: ContainerSpec): Promise<TestContainer> {
    // unshare execs sleep: the pid stays the same.
    const [cmd, args] = spec.ownNetns ? ["unshare", ["--net", "sleep", "600"]] : ["sleep", ["600"]];
    const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).spawn();
    const dirs: Record<string, string> = {};
    for (const h of this.hierarchies) {
      const dir = `${h.path}${this.root}${spec.rel}`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(`${dir}/cgroup.procs`, `${child.pid}\n`);
      dirs[h.name] = dir;
    }
    if (spec.ownNetns) await untilOwnNetns(child.pid);
    const c: TestContainer = { ...spec, pid: child.pid, dirs, child };
    this.containers.set(spec.id, c);
    return c;
  }

  /** Kills the container's process and removes its cgroups (the pod directories stay). */
  async remove(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (!c) return;
    this.containers.delete(id);
    await stopChild(c.child);
    for (const dir of Object.values(c.dirs)) await removeCgroupTree(dir);
  }

  async cleanup(): Promise<void> {
    for (const c of this.containers.values()) await stopChild(c.child);
    this.containers.clear();
    for (const h of this.hierarchies) await removeCgroupTree(`${h.path}${this.root}`);
  }
}

/** Waits until unshare has moved `pid` out of this process's network namespace. */
async function untilOwnNetns(pid: number): Promise<void> {
  const mine = await Deno.readLink("/proc/self/ns/net");
  for (let i = 0; i < 200; i++) {
    if (await Deno.readLink(`/proc/${pid}/ns/net`) !== mine) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} never left the host network namespace`);
}

async function stopChild(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
}

/** `stat -c %i` of a path, as the tests' independent witness of inode numbers. */
export async function statInode(path: string, follow = false): Promise<number> {
  const out = await new Deno.Command("stat", { args: [...(follow ? ["-L"] : []), "-c", "%i", path] })
    .output();
  if (!out.success) throw new Error(`stat ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return Number(new TextDecoder().decode(out.stdout).trim());
}
