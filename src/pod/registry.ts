// The container registry: a snapshot of the host's containers rebuilt from
// the cgroup tree on a timer (never in the scrape path), named through an
// optional pod source (the kubelet client), and indexed so collectors and
// event tracers resolve a BPF map key or a netns with one map read.

import type { HostFs } from "../host/fs.ts";
import type { Logger } from "../log/logger.ts";
import type { CgroupIdKind, Container, ContainerRegistry, PodInfo } from "./container.ts";
import { discoverContainers, type DiscoveryOptions, type DiscoveryResult, netnsInode } from "./discovery.ts";

/** Kubernetes names of containers; the kubelet client implements it. */
export interface PodSource {
  podInfo(podUid: string, containerId: string): PodInfo | undefined;
}

export interface CgroupRegistryOptions {
  fs: HostFs;
  log: Logger;
  /** Path inside every cgroup hierarchy to scan (tests); "/" by default. */
  root?: string;
  /** Mount base of the hierarchies; fs.sys("fs/cgroup") by default. */
  mountBase?: string;
  /** Refresh period; 10 s by default. */
  intervalMs?: number;
  podSource?: PodSource;
}

export const DEFAULT_REFRESH_MS = 10_000;

export class CgroupContainerRegistry implements ContainerRegistry {
  private containers: readonly Container[] = [];
  private ids = new Map<string, Container>();
  private cgroup2 = new Map<number, Container>();
  private memcg = new Map<number, Container>();
  private cpucg = new Map<number, Container>();
  private blkiocg = new Map<number, Container>();
  /** Controllers mounted in a v1 hierarchy at the last scan; the others live in cgroup2. */
  private v1Controllers = new Set<string>();
  private netns = new Map<number, Container>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private failing = false;
  private hostNetns = 0;
  private podSource: PodSource | undefined;
  private readonly intervalMs: number;
  private readonly discovery: DiscoveryOptions;
  /** Duration and size of the last refresh, for logs and benchmarks. */
  lastRefresh = { ms: 0, dirs: 0, containers: 0 };

  constructor(private readonly opts: CgroupRegistryOptions) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_REFRESH_MS;
    this.podSource = opts.podSource;
    this.discovery = { fs: opts.fs, root: opts.root, mountBase: opts.mountBase };
  }

  list(): readonly Container[] {
    return this.containers;
  }

  byId(id: string): Container | undefined {
    return this.ids.get(id);
  }

  /**
   * By cgroup2 id, else v1 memory inode, else v1 cpu inode. Each hierarchy
   * numbers its inodes on its own, so the same number can name different
   * cgroups in two hierarchies: a caller that knows its key's hierarchy
   * should use byCgroup2Id / byMemcgId / byCpuCgroupId.
   */
  byCgroupId(id: number | bigint): Container | undefined {
    const n = Number(id);
    return this.cgroup2.get(n) ?? this.memcg.get(n) ?? this.cpucg.get(n);
  }

  byCgroup2Id(id: number | bigint): Container | undefined {
    return this.cgroup2.get(Number(id));
  }

  byMemcgId(id: number | bigint): Container | undefined {
    return this.memcg.get(Number(id));
  }

  byCpuCgroupId(id: number | bigint): Container | undefined {
    return this.cpucg.get(Number(id));
  }

  /** By inode of the v1 blkio cgroup dir. */
  byBlkioCgroupId(id: number | bigint): Container | undefined {
    return this.blkiocg.get(Number(id));
  }

  /** Inode of the container's v1 blkio cgroup dir; 0 if none. */
  blkioCgroupId(containerId: string): number {
    return this.ids.get(containerId)?.blkioCgroupId ?? 0;
  }

  /**
   * By the kernfs id a task's css of `controller` carries (what BPF reads
   * from task->cgroups->subsys[...]->cgroup->kn->id): the inode of the
   * controller's v1 cgroup dir when a v1 hierarchy holds the controller, else
   * the cgroup2 id. Never mixes the two: inode numbers of different
   * hierarchies may coincide.
   */
  byControllerCgroupId(controller: CgroupIdKind, id: number | bigint): Container | undefined {
    if (controller === "cgroup2" || !this.v1Controllers.has(controller)) return this.cgroup2.get(Number(id));
    switch (controller) {
      case "cpu":
        return this.cpucg.get(Number(id));
      case "memory":
        return this.memcg.get(Number(id));
      case "blkio":
        return this.blkiocg.get(Number(id));
    }
  }

  /**
   * The container owning a network namespace. Containers of one pod share it:
   * one the pod source names wins over the sandbox ("pause") container, which
   * it knows by pod only or not at all; ties go to the lowest id. The host's own namespace (hostNetwork pods) maps to none.
   */
  byNetns(inode: number): Container | undefined {
    return this.netns.get(inode);
  }

  /** Injected by the kubelet client once it is up; names apply from the next refresh or relabel(). */
  setPodSource(source: PodSource | undefined): void {
    this.podSource = source;
    this.relabel();
  }

  /** Re-applies the pod source to the current snapshot without rescanning (after a kubelet fetch). */
  relabel(): void {
    this.install(this.containers.map((c) => this.named(c)), this.hostNetns);
  }

  /** First refresh, then one every intervalMs until stop(). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Waits for a refresh in flight, if any (shutdown, tests). */
  async idle(): Promise<void> {
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(async () => {
      this.timer = undefined;
      await this.refresh();
      this.schedule();
    }, this.intervalMs);
  }

  /** Rescans the cgroup tree; concurrent callers share one scan. Never throws. */
  refresh(): Promise<void> {
    this.running ??= this.scan().finally(() => this.running = undefined);
    return this.running;
  }

  private async scan(): Promise<void> {
    const t0 = performance.now();
    let res: DiscoveryResult;
    try {
      res = await discoverContainers(this.discovery);
      // Pid 1's namespace is the host's; inside a restricted pid view, the agent's own.
      this.hostNetns = netnsInode(this.opts.fs, 1) || netnsInode(this.opts.fs, Deno.pid);
    } catch (err) {
      this.reportError(err instanceof Error ? err.message : String(err));
      return;
    }
    const next = res.containers.map((c) => this.named(c));
    this.logChurn(next);
    this.v1Controllers = new Set(res.hierarchies.flatMap((h) => h.controllers));
    this.install(next, this.hostNetns);
    this.lastRefresh = { ms: performance.now() - t0, dirs: res.dirs, containers: next.length };
    this.reportError(
      res.errors.length ? `${res.errors.length} cgroup paths unreadable: ${res.errors[0]}` : "",
    );
  }

  /** Logs the first error of a failing streak, and its end. */
  private reportError(error: string): void {
    if ((error !== "") === this.failing) return;
    this.failing = error !== "";
    if (error) this.opts.log.warn("container discovery failed", { error });
    else this.opts.log.info("container discovery recovered", { containers: this.containers.length });
  }

  private named(c: Container): Container {
    const pod = this.podSource?.podInfo(c.podUid, c.id);
    const { pod: _old, ...rest } = c;
    return pod ? { ...rest, pod } : rest;
  }

  private logChurn(next: readonly Container[]): void {
    if (!this.opts.log.enabled("Debug")) return;
    const seen = new Set<string>();
    for (const c of next) {
      seen.add(c.id);
      if (!this.ids.has(c.id)) {
        this.opts.log.debug("container appeared", {
          id: c.id.slice(0, 12),
          pod_uid: c.podUid,
          runtime: c.runtime,
          qos: c.qosFromPath,
          pid: c.initPid,
        });
      }
    }
    for (const id of this.ids.keys()) {
      if (!seen.has(id)) this.opts.log.debug("container gone", { id: id.slice(0, 12) });
    }
  }

  private install(next: readonly Container[], hostNetns: number): void {
    const ids = new Map<string, Container>();
    const cgroup2 = new Map<number, Container>();
    const memcg = new Map<number, Container>();
    const cpucg = new Map<number, Container>();
    const blkiocg = new Map<number, Container>();
    const netns = new Map<number, Container>();
    for (const c of next) {
      ids.set(c.id, c);
      if (c.blkioCgroupId) blkiocg.set(c.blkioCgroupId, c);
      if (c.cgroupId) cgroup2.set(c.cgroupId, c);
      if (c.memcgId) memcg.set(c.memcgId, c);
      if (c.cpuCgroupId) cpucg.set(c.cpuCgroupId, c);
      if (c.netnsInode && c.netnsInode !== hostNetns) {
        const have = netns.get(c.netnsInode);
        // next is sorted by id: the first stays unless a better-named container comes later.
        if (!have || nameRank(c) > nameRank(have)) netns.set(c.netnsInode, c);
      }
    }
    // Swapped together: a reader never sees half a refresh.
    this.containers = Object.freeze([...next]);
    this.ids = ids;
    this.cgroup2 = cgroup2;
    this.memcg = memcg;
    this.cpucg = cpucg;
    this.blkiocg = blkiocg;
    this.netns = netns;
  }
}

/** 2: a container the pod source names; 1: known by its pod only (the sandbox); 0: unknown. */
function nameRank(c: Container): number {
  return c.pod?.name ? 2 : c.pod ? 1 : 0;
}
