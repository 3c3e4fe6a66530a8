// What the container network collectors share: reading a container's
// /proc/<pid>/net/* files, which show the net namespace of that process,
// without setns. Containers are grouped by the namespace their process is in
// now, so a pod's containers (one shared namespace) cost one read per scrape;
// containers in the host namespace are left out (their series would repeat
// the host's), and so are containers whose process exited since the last
// registry refresh.

import type { HostFs } from "../../host/fs.ts";
import { type Container, containerLabels } from "../../pod/container.ts";
import type { Sample } from "../../core/sample.ts";
import { Slicer } from "../../host/slicer.ts";
import { netnsInode } from "../../pod/discovery.ts";

/** The inode of `pid`'s network namespace now; 0 when the process is gone. */
export const liveNetns: (fs: HostFs, pid: number) => number = netnsInode;

/** The host namespace: pid 1's; inside a restricted pid view, the agent's own (as the registry does). */
export function hostNetns(fs: HostFs): number {
  return liveNetns(fs, 1) || liveNetns(fs, Deno.pid);
}

export interface NetnsGroup {
  readonly inode: number;
  /** The containers in this namespace, in registry order. */
  readonly containers: Container[];
  /** Their processes, each a way into the namespace. */
  readonly pids: number[];
}

/**
 * Containers by the namespace their initPid is in now. A container is left
 * out when its process is gone, when it sits in the host namespace, or when
 * the namespace differs from the one the registry saw (the pid was reused by
 * another process since the refresh).
 */
export function groupByNetns(fs: HostFs, containers: readonly Container[]): NetnsGroup[] {
  const host = hostNetns(fs);
  const groups = new Map<number, { inode: number; containers: Container[]; pids: number[] }>();
  for (const c of containers) {
    const ns = liveNetns(fs, c.initPid);
    if (ns === 0 || ns === host || (c.netnsInode !== 0 && ns !== c.netnsInode)) continue;
    let g = groups.get(ns);
    if (!g) groups.set(ns, g = { inode: ns, containers: [], pids: [] });
    g.containers.push(c);
    if (!g.pids.includes(c.initPid)) g.pids.push(c.initPid);
  }
  return [...groups.values()];
}

/**
 * Reads (and parses) each namespace once, through the first of its processes
 * still in it, into samples without container labels, and repeats them for
 * each container of the namespace with its labels. A read failing because
 * the process left (exited, or its pid now names a process elsewhere) tries
 * the next process; a namespace without one is skipped. Any other failure
 * (a garbled file) fails the collection.
 */
export async function perNetns(
  fs: HostFs,
  containers: readonly Container[],
  read: (pid: number) => Sample[],
): Promise<Sample[]> {
  const slicer = new Slicer();
  const parts: Sample[][] = [];
  for (const g of groupByNetns(fs, containers)) {
    await slicer.tick();
    parts.push((() => {
      for (const pid of g.pids) {
        let result: Sample[];
        try {
          result = read(pid);
        } catch (err) {
          if (liveNetns(fs, pid) !== g.inode) continue;
          throw err;
        }
        // The pid was reused during the read: what was read may be another namespace's.
        const now = liveNetns(fs, pid);
        if (now !== 0 && now !== g.inode) continue;
        return g.containers.flatMap((c) => {
          const labels = containerLabels(c);
          return result.map((s) => ({ ...s, labels: s.labels ? { ...labels, ...s.labels } : labels }));
        });
      }
      return [];
    })());
  }
  return parts.flat();
}
