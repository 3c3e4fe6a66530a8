// Joining the entries of a BPF map keyed by cgroup id (runqlat_cgroup,
// iolat_cgroup, memcg_reclaim) to containers. A key is the kernfs id of the
// task's css of one controller: the inode of the controller's v1 cgroup dir
// on hosts where a v1 hierarchy holds it, else the cgroup2 id; the registry
// resolves it with one map read. The BPF side never deletes entries, so the
// join also says which ones to delete: keys of a container that has gone, at
// once, and keys that never named a container (host cgroups, transient
// scopes, cgroups already removed) once they stayed unknown for a grace
// period longer than a registry refresh, so a container that appears before
// the registry notices it keeps its first counts. Without this the maps fill
// (10240 entries) and new cgroups stop being counted.

import type { Container } from "../../pod/container.ts";

/** Unknown keys older than this are deleted: six registry refreshes (10 s each by default). */
export const UNKNOWN_GRACE_MS = 60_000;

export interface CgroupKeyed {
  /** The cgroup id part of the map key. */
  readonly cgroup: bigint;
}

/** A map entry and the container its cgroup id names. */
export interface Matched<E> {
  entry: E;
  container: Container;
}

export interface JoinResult<E> {
  /** Entries of known containers, in map order. */
  matched: Matched<E>[];
  /** Entries to delete from the map. */
  stale: E[];
}

/**
 * The join with its memory across scrapes: which cgroup ids were containers
 * at the previous join, and since when the others have been unknown.
 */
export class CgroupKeyJoin {
  private known = new Set<bigint>();
  private unknownSince = new Map<bigint, number>();

  constructor(readonly graceMs: number = UNKNOWN_GRACE_MS) {}

  join<E extends CgroupKeyed>(
    entries: Iterable<E>,
    lookup: (id: bigint) => Container | undefined,
    nowMs: number,
  ): JoinResult<E> {
    const matched: Matched<E>[] = [];
    const stale: E[] = [];
    const known = new Set<bigint>();
    const unknownSince = new Map<bigint, number>();
    for (const entry of entries) {
      const id = entry.cgroup;
      const container = lookup(id);
      if (container) {
        matched.push({ entry, container });
        known.add(id);
        continue;
      }
      // A container the previous join knew: the registry dropped it, its cgroup is gone.
      if (this.known.has(id)) {
        stale.push(entry);
        continue;
      }
      const since = unknownSince.get(id) ?? this.unknownSince.get(id) ?? nowMs;
      if (nowMs - since >= this.graceMs) stale.push(entry);
      else unknownSince.set(id, since);
    }
    // Ids absent from the map now are forgotten with the old sets.
    this.known = known;
    this.unknownSince = unknownSince;
    return { matched, stale };
  }
}

/** The 8-byte little-endian key of a map keyed by cgroup id alone. */
export function u64Key(id: bigint): Uint8Array<ArrayBuffer> {
  const key = new Uint8Array(8);
  new DataView(key.buffer).setBigUint64(0, id, true);
  return key;
}
