// The CPU profile contract AutoTracing builds on: what a capture is asked
// for and what it yields (stacks with counts), and the seed's flamedata frame.
// The profiler (BPF perf_event sampling) and the flame graph builders and
// renderers live beside this file; the triggers in src/features/ use them.

/** Whose CPU time a capture samples. */
export type ProfileScope =
  | { readonly kind: "host" }
  /**
   * One container's tasks. On cgroup v2 (and hybrid hosts' unified hierarchy)
   * `cgroup2Id` is what bpf_get_current_cgroup_id() returns; on a v1-only
   * container `cpuCgroupInode` is the inode of its v1 cpu (cpu,cpuacct)
   * cgroup directory. At least one is set.
   */
  | { readonly kind: "container"; readonly cgroup2Id?: bigint; readonly cpuCgroupInode?: bigint };

export interface ProfileRequest {
  readonly durationMs: number;
  /** Samples per second per CPU (software cpu-clock; hardware cycles where present). */
  readonly frequencyHz?: number;
  readonly scope: ProfileScope;
  /** Ends the capture early (agent shutdown). */
  readonly signal?: AbortSignal;
}

/** One distinct stack of one process with how many samples hit it. */
export interface StackSample {
  readonly tgid: number;
  /** The process name (comm of the thread group leader); same-named processes merge in flamedata. */
  readonly process: string;
  /** Symbolized frames, outermost (root) first: user frames, then kernel frames; "[unknown]" where none resolves. */
  readonly frames: readonly string[];
  readonly count: number;
}

export interface Profile {
  readonly samples: readonly StackSample[];
  /** Total samples taken (sum of counts), and samples lost (map full, stack unreadable). */
  readonly total: number;
  readonly lost: number;
  readonly durationMs: number;
  readonly frequencyHz: number;
}

export interface Profiler {
  capture(req: ProfileRequest): Promise<Profile>;
}

/**
 * A frame of the seed's flamedata: depth-first, root "all" at level 0; a
 * node's value is its self plus its children's values.
 */
export interface FlameFrame {
  readonly level: number;
  readonly value: number;
  readonly self: number;
  readonly label: string;
}
