// Finds the containers of this host in the cgroup tree: walks every cgroup
// hierarchy (the v1 controllers and the cgroup2 mount: /sys/fs/cgroup/unified
// on hybrid hosts, /sys/fs/cgroup itself on pure v2), merges what it finds per
// container id and fills the ids BPF programs key on. The scan yields to the
// event loop every couple of milliseconds, so a host with thousands of
// cgroups never holds the loop for long.

import { exists, type HostFs, MAX_PROC_FILE_BYTES, SourceError } from "../host/fs.ts";
import { readTextFileBoundedSync } from "../io/read.ts";
import type { Container } from "./container.ts";
import { type CgroupPathInfo, parseCgroupPath } from "./cgroup_path.ts";
import { Slicer } from "../host/slicer.ts";
import { netnsInode as parseNetnsLink } from "../host/arp.ts";

/** One mounted cgroup hierarchy. */
export interface Hierarchy {
  /** "unified" for cgroup2, else the v1 mount's directory name ("cpu,cpuacct", "memory", "systemd"). */
  name: string;
  /** Mount directory, e.g. /sys/fs/cgroup/memory. */
  path: string;
  /** v1 controllers of the mount (from its name); [] for cgroup2. */
  controllers: string[];
}

export interface DiscoveryOptions {
  fs: HostFs;
  /**
   * Path inside every hierarchy to scan instead of "/" (tests point it at
   * their own subtree). Container paths still parse relative to the mount.
   */
  root?: string;
  /** Where the hierarchies are mounted; fs.sys("fs/cgroup") by default. */
  mountBase?: string;
  /** The scan hands the event loop back after this many milliseconds of work. */
  sliceMs?: number;
  /** A walk stops after this many directories per hierarchy (and says so in errors). */
  maxDirs?: number;
}

export interface DiscoveryResult {
  containers: Container[];
  hierarchies: Hierarchy[];
  /** Directories read, over all hierarchies. */
  dirs: number;
  /** What could not be read (permission, truncated walk); vanished directories are not errors. */
  errors: string[];
  /**
   * Container id → inode of its v1 blkio cgroup dir (iolatency's per-cgroup
   * key on v1 hosts); only containers that have one. Kept beside Container,
   * whose shape is the shared contract.
   */
}

const DEFAULT_SLICE_MS = 2;
const DEFAULT_MAX_DIRS = 100_000;

function isGone(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The cgroup hierarchies mounted under `base`; symlinked aliases (cpu → cpu,cpuacct) are listed once. */
export async function findHierarchies(base: string): Promise<Hierarchy[]> {
  if (exists(`${base}/cgroup.controllers`)) return [{ name: "unified", path: base, controllers: [] }];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(base));
  } catch (err) {
    throw new SourceError(base, `cannot list cgroup mounts: ${errText(err)}`);
  }
  // Real directories first, so an alias resolves to a mount already listed.
  entries.sort((a, b) => Number(a.isSymlink) - Number(b.isSymlink) || a.name.localeCompare(b.name));
  const seen = new Set<string>();
  const out: Hierarchy[] = [];
  for (const e of entries) {
    if (!e.isDirectory && !e.isSymlink) continue;
    let real: string;
    try {
      real = await Deno.realPath(`${base}/${e.name}`);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    const path = `${base}/${e.name}`;
    if (exists(`${path}/cgroup.controllers`)) {
      out.push({ name: "unified", path, controllers: [] });
    } else if (exists(`${path}/cgroup.procs`)) {
      const name = real.slice(real.lastIndexOf("/") + 1);
      out.push({ name, path, controllers: name.split(",").filter((c) => !c.startsWith("name=")) });
    }
  }
  return out;
}

interface Found {
  info: CgroupPathInfo;
  /** Directory relative to its hierarchy's root, e.g. "/kubepods/burstable/pod<uid>/<id>". */
  rel: string;
  /** Hierarchy name → directory. */
  paths: Record<string, string>;
  /** Hierarchy name → inode of that directory, where already stat'ed. */
  inodes: Record<string, number>;
}

/** Walks one hierarchy below `root` and records every directory that is a container; not its sub-cgroups. */
async function walk(
  h: Hierarchy,
  root: string,
  found: Map<string, Found>,
  maxDirs: number,
  slicer: Slicer,
  errors: string[],
): Promise<number> {
  const start = root === "/" ? h.path : `${h.path}${root}`;
  if (!exists(start)) return 0;
  const queue: string[] = [start];
  let dirs = 0;
  while (queue.length > 0) {
    if (dirs >= maxDirs) {
      errors.push(`${start}: walk stopped after ${maxDirs} directories`);
      break;
    }
    await slicer.tick();
    const dir = queue.pop()!;
    dirs++;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (err) {
      // A cgroup removed during the walk is not an error.
      if (!isGone(err)) errors.push(`${dir}: ${errText(err)}`);
      continue;
    }
    for (const e of entries) {
      if (!e.isDirectory) continue;
      const path = `${dir}/${e.name}`;
      const rel = path.slice(h.path.length);
      const info = parseCgroupPath(rel);
      if (!info) {
        queue.push(path);
        continue;
      }
      let f = found.get(info.id);
      if (!f) found.set(info.id, f = { info, rel, paths: {}, inodes: {} });
      f.paths[h.name] ??= path;
    }
  }
  return dirs;
}

/** Inode of a container's directory in hierarchy `name` (0: not there), stat'ed at most once. */
function inodeOf(f: Found, name: string | undefined): number {
  if (name === undefined || f.paths[name] === undefined) return 0;
  return f.inodes[name] ??= inode(f.paths[name]);
}

function inode(path: string | undefined): number {
  if (path === undefined) return 0;
  try {
    return Deno.statSync(path).ino ?? 0;
  } catch {
    return 0;
  }
}

/** Lowest pid in a cgroup.procs; 0 when empty or gone. */
export function lowestPid(procs: string): number {
  let min = 0;
  for (const line of procs.split("\n")) {
    const pid = Number(line);
    if (line !== "" && Number.isInteger(pid) && pid > 0 && (min === 0 || pid < min)) min = pid;
  }
  return min;
}

/** The network namespace inode of a process, from the `net:[N]` link; 0 when unknown. */
export function netnsInode(fs: HostFs, pid: number): number {
  if (pid <= 0) return 0;
  try {
    return Number(parseNetnsLink(Deno.readLinkSync(fs.proc(`${pid}/ns/net`))) ?? 0);
  } catch {
    return 0;
  }
}

/** Hierarchy name holding a v1 controller, e.g. "cpu" → "cpu,cpuacct". */
function holding(hs: Hierarchy[], controller: string): string | undefined {
  return hs.find((h) => h.controllers.includes(controller))?.name;
}

function describe(fs: HostFs, f: Found, hs: Hierarchy[]): Container {
  const memory = holding(hs, "memory");
  const cpu = holding(hs, "cpu");
  // A container's processes are in all its cgroups; the first non-empty
  // cgroup.procs (cgroup2, then memory, cpu, the rest) names them.
  const order = ["unified", memory, cpu, ...Object.keys(f.paths)].filter((n): n is string => n !== undefined);
  let initPid = 0;
  for (const name of new Set(order)) {
    const dir = f.paths[name];
    if (dir === undefined) continue;
    try {
      initPid = lowestPid(readTextFileBoundedSync(`${dir}/cgroup.procs`, MAX_PROC_FILE_BYTES));
    } catch {
      continue;
    }
    if (initPid > 0) break;
  }
  return {
    ...f.info,
    cgroupPaths: f.paths,
    cgroupId: inodeOf(f, "unified"),
    memcgId: inodeOf(f, memory),
    cpuCgroupId: inodeOf(f, cpu),
    blkioCgroupId: inodeOf(f, holding(hs, "blkio")),
    initPid,
    netnsInode: netnsInode(fs, initPid),
  };
}

/**
 * The hierarchy walked for containers: v1 memory (the kubelet and docker
 * always create a memory cgroup per container), else the unified one.
 */
export function primaryHierarchy(hs: readonly Hierarchy[]): Hierarchy {
  return hs.find((h) => h.controllers.includes("memory")) ?? hs.find((h) => h.name === "unified") ?? hs[0];
}

/** Normalises a root override to "/" or "/a/b" (no trailing slash, no "..": it stays inside the hierarchy). */
export function normalizeRoot(root: string | undefined): string {
  const parts = (root ?? "").split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Error(`cgroup root ${JSON.stringify(root)} must not contain ".."`);
  return parts.length === 0 ? "/" : `/${parts.join("/")}`;
}

/** One full scan: every container found in any hierarchy, sorted by id. */
export async function discoverContainers(opts: DiscoveryOptions): Promise<DiscoveryResult> {
  const base = opts.mountBase ?? opts.fs.sys("fs/cgroup");
  const root = normalizeRoot(opts.root);
  const maxDirs = opts.maxDirs ?? DEFAULT_MAX_DIRS;
  const slicer = new Slicer(opts.sliceMs ?? DEFAULT_SLICE_MS);
  const hierarchies = await findHierarchies(base);
  if (hierarchies.length === 0) throw new SourceError(base, "no cgroup hierarchy mounted");
  const found = new Map<string, Found>();
  const errors: string[] = [];
  // Only one hierarchy is walked (a readdir of every cgroup directory costs ~100 µs: 6+ hierarchies
  // per container on v1 hosts); the runtimes create a container's directory under the same relative
  // path in every hierarchy, so the others are found by one lstat each.
  const primary = primaryHierarchy(hierarchies);
  const dirs = await walk(primary, root, found, maxDirs, slicer, errors);
  for (const h of hierarchies) {
    if (h === primary) continue;
    for (const f of found.values()) {
      await slicer.tick();
      const path = `${h.path}${f.rel}`;
      const ino = inode(path); // one stat: exists, and its id
      if (ino > 0 && f.paths[h.name] === undefined) {
        f.paths[h.name] = path;
        f.inodes[h.name] = ino;
      }
    }
  }
  const containers: Container[] = [];
  for (const id of [...found.keys()].sort()) {
    await slicer.tick();
    containers.push(describe(opts.fs, found.get(id)!, hierarchies));
  }
  return { containers, hierarchies, dirs, errors };
}
