// dload (seed 5.3): per container, an exponential moving average of its
// tasks in D state (uninterruptible sleep), like the kernel's load average
// with a 1-minute constant: every Interval seconds
//   dload = dload·e + nr_uninterruptible·(1 − e),  e = exp(−Interval/60)
// (load_avg likewise over running + uninterruptible). When dload_avg is above
// ThresholdLoad (the seed's "EMA > 5"; 0 then means any D-state load), the kernel stacks of the D-state tasks — the container's
// first, then the rest of the host's — are recorded; an IssuesList rule that
// matches them names the known issue. Cooldown: IntervalTracing per container;
// Filter chooses the containers.
//
// Source: the task states of the container's threads (v1 `tasks` of its cpu
// cgroup, cgroup2 `cgroup.threads`) read from /proc/<tid>/stat at every poll,
// as loadavg_container_* does. The seed's upstream asks taskstats for
// CGROUPSTATS over generic netlink, which the kernel answers for cgroup v1
// directories only (cgroupstats_build refuses cgroup2); the states are the
// same either way: R running, S (and I) sleeping, D uninterruptible, T/t
// stopped. nr_iowait counts the container's D-state tasks whose kernel stack
// waits for block I/O (src/host/proc_pid.ts waitsForIo), read at capture:
// the kernel's per-task in_iowait flag is exported nowhere.

import type { Config } from "../../config/schema.ts";
import type { HostFs } from "../../host/fs.ts";
import { MAX_PROC_FILE_BYTES } from "../../host/fs.ts";
import { waitsForIo } from "../../host/proc_pid.ts";
import { readTextFileBoundedSync } from "../../io/read.ts";
import type { Container, ContainerRegistry } from "../../pod/container.ts";
import { blockedTasksStacks } from "../../events/kernel_stacks.ts";
import { ContainerFilterRules } from "../../autotracing/filter.ts";
import { readStack } from "../../autotracing/procs.ts";
import { AutoTracer } from "../../autotracing/tracer.ts";
import { type CaptureResult, type Firing, round2, type Trigger } from "../../autotracing/trigger.ts";
import { UnsupportedError } from "../../tracing/manager.ts";
import { MAX_TASKS, taskDir } from "../loadavg/container.ts";
import { parseIdList, parseTaskState, perContainer, requireCgroupFile } from "../common/cgroup.ts";
import { compileIssues, type KnownIssue, matchIssue } from "../common/issues.ts";
import { autotracingFeature } from "../feature.ts";

export type DloadConfig = Config["AutoTracing"]["Dload"];

/** The load average's time constant: 1 minute, like /proc/loadavg's first figure. */
export const DLOAD_EMA_SEC = 60;

export interface TaskStates {
  running: number;
  sleeping: number;
  uninterruptible: number;
  stopped: number;
}

/** Counts one-letter task states (/proc/<tid>/stat). */
export function countStates(states: Iterable<string>): TaskStates {
  const n = { running: 0, sleeping: 0, uninterruptible: 0, stopped: 0 };
  for (const s of states) {
    if (s === "R") n.running++;
    else if (s === "S" || s === "I") n.sleeping++;
    else if (s === "D") n.uninterruptible++;
    else if (s === "T" || s === "t") n.stopped++;
  }
  return n;
}

/** The weight the previous average keeps after `intervalSec`. */
export function emaDecay(intervalSec: number): number {
  return Math.exp(-intervalSec / DLOAD_EMA_SEC);
}

export function ema(prev: number, sample: number, decay: number): number {
  return prev * decay + sample * (1 - decay);
}

interface State {
  load: number;
  dload: number;
  states: TaskStates;
}

/** The seed's tracer_data fields before known_issue and stack (nr_iowait is filled at capture). */
export function dloadData(s: State | undefined, threshold: number, nrIowait = 0): Record<string, unknown> {
  const n = s?.states ?? { running: 0, sleeping: 0, uninterruptible: 0, stopped: 0 };
  return {
    threshold,
    nr_sleeping: n.sleeping,
    nr_running: n.running,
    nr_stopped: n.stopped,
    nr_uninterruptible: n.uninterruptible,
    nr_iowait: nrIowait,
    load_avg: round2(s?.load ?? 0),
    dload_avg: round2(s?.dload ?? 0),
  };
}

/** The container's threads (at most MAX_TASKS), or undefined when it has no cgroup to list them. */
function containerTids(c: Container): number[] | undefined {
  const d = taskDir(c);
  if (!d) return undefined;
  const name = d.v2 ? "cgroup.threads" : "tasks";
  return parseIdList(requireCgroupFile(d.dir, name), `${d.dir}/${name}`).slice(0, MAX_TASKS);
}

/** State letters of `tids` now; threads that exited meanwhile are left out. */
function taskStates(fs: HostFs, tids: readonly number[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const tid of tids) {
    const path = fs.proc(`${tid}/stat`);
    try {
      out.set(tid, parseTaskState(readTextFileBoundedSync(path, MAX_PROC_FILE_BYTES), path));
    } catch {
      // exited
    }
  }
  return out;
}

export class DloadTrigger implements Trigger {
  readonly name = "dload";
  readonly perContainer = true;
  readonly intervalMs: number;
  readonly cooldownMs: number;
  readonly #decay: number;
  readonly #filter: ContainerFilterRules;
  readonly #issues: KnownIssue[];
  readonly #states = new Map<string, State>();

  constructor(
    private readonly fs: HostFs,
    private readonly cfg: DloadConfig,
    issuesList: readonly (readonly [string, string])[],
    private readonly containers: ContainerRegistry | undefined,
  ) {
    this.intervalMs = cfg.Interval * 1000;
    this.cooldownMs = cfg.IntervalTracing * 1000;
    this.#decay = emaDecay(cfg.Interval);
    this.#filter = new ContainerFilterRules(cfg.Filter);
    this.#issues = compileIssues(issuesList);
  }

  prepare(): void {
    if (!this.containers) throw new UnsupportedError("no container registry");
    this.#states.clear();
  }

  admits(c: Container): boolean {
    return this.#filter.admits(c);
  }

  async poll(): Promise<Firing[]> {
    const seen = new Set<string>();
    const firings = await perContainer(this.containers?.list() ?? [], (c): Firing[] => {
      seen.add(c.id);
      const tids = containerTids(c);
      if (!tids) return [];
      const states = countStates(taskStates(this.fs, tids).values());
      // Like the kernel's, the averages start at 0: a container seen first in a storm rises to it.
      const prev = this.#states.get(c.id) ?? { load: 0, dload: 0, states };
      const s: State = {
        load: ema(prev.load, states.running + states.uninterruptible, this.#decay),
        dload: ema(prev.dload, states.uninterruptible, this.#decay),
        states,
      };
      this.#states.set(c.id, s);
      return s.dload > this.cfg.ThresholdLoad
        ? [{ key: c.id, container: c, data: dloadData(s, this.cfg.ThresholdLoad) }]
        : [];
    });
    for (const id of this.#states.keys()) if (!seen.has(id)) this.#states.delete(id);
    return firings;
  }

  async capture(f: Firing): Promise<CaptureResult> {
    const c = f.container!;
    const mine = new Set(containerTids(c) ?? []);
    const blocked = await blockedTasksStacks(this.fs, { first: (_tgid, tid) => mine.has(tid) });
    let iowait = 0;
    for (const [tid, state] of taskStates(this.fs, [...mine])) {
      if (state !== "D") continue;
      const frames = readStack(this.fs, tid);
      if (frames && waitsForIo(frames)) iowait++;
    }
    return {
      data: {
        nr_iowait: iowait,
        known_issue: matchIssue(blocked.text, this.#issues) ?? "",
        stack: blocked.text,
      },
      samples: blocked.found,
    };
  }

  manualData(c?: Container): Record<string, unknown> {
    return dloadData(c ? this.#states.get(c.id) : undefined, this.cfg.ThresholdLoad);
  }
}

export default autotracingFeature(
  "dload",
  (ctx) =>
    new AutoTracer(
      new DloadTrigger(
        ctx.fs,
        ctx.config.AutoTracing.Dload,
        ctx.config.AutoTracing.IssuesList,
        ctx.containers,
      ),
      { events: ctx.events, containers: ctx.containers },
    ),
);
