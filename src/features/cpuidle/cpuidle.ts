// cpuidle (seed 5.3): each container's CPU use — user, sys and their sum as
// a percent of the CPUs it may use (CFS quota, capped by its cpuset; the
// host's CPUs when unlimited), like cpu_util_container_* — over the last
// Interval, and the change since the Interval before. When any pair holds
//   user ≥ UserThreshold  and Δuser ≥ DeltaUserThreshold, or
//   sys ≥ SysThreshold    and Δsys ≥ DeltaSysThreshold, or
//   usage ≥ UsageThreshold and Δusage ≥ DeltaUsageThreshold,
// a CPU profile of that container's tasks runs for RunTracingToolTimeout
// seconds (one container at a time; IntervalTracing per container; Filter
// chooses the containers). "≥" as huatuo-bamai.conf words it ("when cpu usage
// reaches this threshold") and as cpusys does; the seed's 5.3 table writes ">".

import type { Config } from "../../config/schema.ts";
import type { HostFs } from "../../host/fs.ts";
import type { Container, ContainerRegistry } from "../../pod/container.ts";
import type { Profiler, ProfileScope } from "../../profile/profile.ts";
import { UnsupportedError } from "../../tracing/manager.ts";
import { ContainerFilterRules } from "../../autotracing/filter.ts";
import { profileCapture } from "../../autotracing/flamedata.ts";
import { AutoTracer } from "../../autotracing/tracer.ts";
import {
  type CaptureOptions,
  type CaptureResult,
  type Firing,
  round2,
  type Trigger,
} from "../../autotracing/trigger.ts";
import {
  type ContainerCpuUtil,
  containerCpuUtil,
  type CpuUsage,
  readCores,
  readCpuUsage,
} from "../cpu_util/container.ts";
import { hostCpusSync, perContainer } from "../common/cgroup.ts";
import { autotracingFeature } from "../feature.ts";

export type CpuIdleConfig = Config["AutoTracing"]["CPUIdle"];

export interface CpuIdleReading {
  readonly util: ContainerCpuUtil;
  /** util minus the previous Interval's. */
  readonly delta: ContainerCpuUtil;
}

/** The trigger condition: any of the three (value, rise) pairs at or above its thresholds. */
export function cpuidleFires(r: CpuIdleReading, c: CpuIdleConfig): boolean {
  return (r.util.usr >= c.UserThreshold && r.delta.usr >= c.DeltaUserThreshold) ||
    (r.util.sys >= c.SysThreshold && r.delta.sys >= c.DeltaSysThreshold) ||
    (r.util.total >= c.UsageThreshold && r.delta.total >= c.DeltaUsageThreshold);
}

export function cpuidleDelta(prev: ContainerCpuUtil, cur: ContainerCpuUtil): ContainerCpuUtil {
  return { usr: cur.usr - prev.usr, sys: cur.sys - prev.sys, total: cur.total - prev.total };
}

/** The seed's tracer_data fields before flamedata. */
export function cpuidleData(r: CpuIdleReading | undefined, c: CpuIdleConfig): Record<string, unknown> {
  const zero = { usr: 0, sys: 0, total: 0 };
  const u = r?.util ?? zero, d = r?.delta ?? zero;
  return {
    user: round2(u.usr),
    user_threshold: c.UserThreshold,
    deltauser: round2(d.usr),
    deltauser_threshold: c.DeltaUserThreshold,
    sys: round2(u.sys),
    sys_threshold: c.SysThreshold,
    deltasys: round2(d.sys),
    deltasys_threshold: c.DeltaSysThreshold,
    usage: round2(u.total),
    usage_threshold: c.UsageThreshold,
    deltausage: round2(d.total),
    deltausage_threshold: c.DeltaUsageThreshold,
  };
}

/** What a container profile samples: its cgroup2 id and/or its v1 cpu cgroup inode. */
export function containerScope(c: Container): ProfileScope {
  if (!c.cgroupId && !c.cpuCgroupId) {
    throw new Error(`container ${c.id.slice(0, 12)} has no cgroup id to profile`);
  }
  return {
    kind: "container",
    cgroup2Id: c.cgroupId ? BigInt(c.cgroupId) : undefined,
    cpuCgroupInode: c.cpuCgroupId ? BigInt(c.cpuCgroupId) : undefined,
  };
}

interface State {
  usage: CpuUsage;
  /** performance.now() of the reading. */
  at: number;
  util?: ContainerCpuUtil;
  reading?: CpuIdleReading;
}

export class CpuIdleTrigger implements Trigger {
  readonly name = "cpuidle";
  readonly perContainer = true;
  readonly intervalMs: number;
  readonly cooldownMs: number;
  readonly captureMs: number;
  readonly #filter: ContainerFilterRules;
  readonly #states = new Map<string, State>();
  // Quota and cpuset change rarely: read once per registry refresh (new Container objects).
  readonly #cores = new WeakMap<Container, number>();

  constructor(
    private readonly fs: HostFs,
    private readonly cfg: CpuIdleConfig,
    private readonly containers: ContainerRegistry | undefined,
    private readonly profiler: Profiler | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.intervalMs = cfg.Interval * 1000;
    this.cooldownMs = cfg.IntervalTracing * 1000;
    this.captureMs = cfg.RunTracingToolTimeout * 1000;
    this.#filter = new ContainerFilterRules(cfg.Filter);
  }

  prepare(): void {
    if (!this.profiler) throw new UnsupportedError("no CPU profiler in this build");
    if (!this.containers) throw new UnsupportedError("no container registry");
    this.#states.clear();
  }

  admits(c: Container): boolean {
    return this.#filter.admits(c);
  }

  async poll(): Promise<Firing[]> {
    const list = this.containers?.list() ?? [];
    let host: number | undefined;
    const hostCpus = () => host ??= hostCpusSync(this.fs);
    const seen = new Set<string>();
    const firings = await perContainer(list, (c): Firing[] => {
      seen.add(c.id);
      const usage = readCpuUsage(c);
      if (!usage) return [];
      let cores = this.#cores.get(c);
      if (cores === undefined) this.#cores.set(c, cores = readCores(c, hostCpus));
      const at = this.now();
      const prev = this.#states.get(c.id);
      const state: State = { usage, at };
      this.#states.set(c.id, state);
      if (!prev) return [];
      state.util = containerCpuUtil(prev.usage, usage, (at - prev.at) * 1e6, cores);
      if (!state.util || !prev.util) return [];
      const reading = { util: state.util, delta: cpuidleDelta(prev.util, state.util) };
      state.reading = reading;
      return cpuidleFires(reading, this.cfg)
        ? [{ key: c.id, container: c, data: cpuidleData(reading, this.cfg) }]
        : [];
    });
    for (const id of this.#states.keys()) if (!seen.has(id)) this.#states.delete(id);
    return firings;
  }

  async capture(f: Firing, opts: CaptureOptions): Promise<CaptureResult> {
    const scope = containerScope(f.container!);
    const { flamedata, profile } = await profileCapture(this.profiler!, scope, opts.durationMs, opts.signal);
    return { data: { flamedata }, samples: profile.total };
  }

  manualData(c?: Container): Record<string, unknown> {
    return cpuidleData(c ? this.#states.get(c.id)?.reading : undefined, this.cfg);
  }
}

export default autotracingFeature(
  "cpuidle",
  (ctx) =>
    new AutoTracer(
      new CpuIdleTrigger(ctx.fs, ctx.config.AutoTracing.CPUIdle, ctx.containers, ctx.profiler),
      { events: ctx.events, containers: ctx.containers },
    ),
);
