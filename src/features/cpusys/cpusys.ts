// cpusys (seed 5.3): the host's CPU sys percent, read from /proc/stat every
// Interval. When sys reaches SysThreshold AND rose by at least
// DeltaSysThreshold since the previous Interval, a host-wide CPU profile runs
// for RunTracingToolTimeout seconds and its flamedata is recorded.
//
// AND, as the config guide (6.2 "当 SysThreshold 与 DeltaSysThreshold 同时满足时
// 触发") and huatuo-bamai.conf say; the seed's 5.3 table and text say "or"
// (sys > 45% 或 delta_sys > 20%), which would profile a host whose sys stays
// at 50% at every poll that the cooldown allows. "sys" is cpu_util_sys's:
// system + irq + softirq time. [AutoTracing.CPUSys] has no IntervalTracing:
// the seed's 30-minute cooldown of every AutoTracing event applies.

import type { Config } from "../../config/schema.ts";
import type { HostFs } from "../../host/fs.ts";
import { type CpuTimes, cpuUtil, parseCpuTotal } from "../../host/stat.ts";
import type { Profiler } from "../../profile/profile.ts";
import { UnsupportedError } from "../../tracing/manager.ts";
import { profileCapture } from "../../autotracing/flamedata.ts";
import { AutoTracer } from "../../autotracing/tracer.ts";
import {
  type CaptureOptions,
  type CaptureResult,
  type Firing,
  round2,
  type Trigger,
} from "../../autotracing/trigger.ts";
import { autotracingFeature } from "../feature.ts";

/** The seed's cooldown of every AutoTracing event ("默认 30 分钟"); cpusys has no key for it. */
export const CPUSYS_COOLDOWN_SEC = 1800;

export type CpuSysConfig = Config["AutoTracing"]["CPUSys"];

export interface CpuSysReading {
  /** sys percent of all CPUs over the last Interval. */
  readonly nowSys: number;
  /** nowSys minus the previous Interval's (negative when it fell). */
  readonly deltaSys: number;
}

/** The trigger condition: sys at or above SysThreshold and risen by at least DeltaSysThreshold. */
export function cpusysFires(
  r: CpuSysReading,
  cfg: Pick<CpuSysConfig, "SysThreshold" | "DeltaSysThreshold">,
): boolean {
  return r.nowSys >= cfg.SysThreshold && r.deltaSys >= cfg.DeltaSysThreshold;
}

/** The seed's tracer_data fields before flamedata. */
export function cpusysData(r: CpuSysReading | undefined, cfg: CpuSysConfig): Record<string, unknown> {
  return {
    now_sys: round2(r?.nowSys ?? 0),
    sys_threshold: cfg.SysThreshold,
    deltasys: round2(r?.deltaSys ?? 0),
    deltasys_threshold: cfg.DeltaSysThreshold,
  };
}

export class CpuSysTrigger implements Trigger {
  readonly name = "cpusys";
  readonly perContainer = false;
  readonly intervalMs: number;
  readonly cooldownMs = CPUSYS_COOLDOWN_SEC * 1000;
  readonly captureMs: number;
  #times: CpuTimes | undefined;
  #sys: number | undefined;
  #last: CpuSysReading | undefined;

  constructor(
    private readonly fs: HostFs,
    private readonly cfg: CpuSysConfig,
    private readonly profiler: Profiler | undefined,
  ) {
    this.intervalMs = cfg.Interval * 1000;
    this.captureMs = cfg.RunTracingToolTimeout * 1000;
  }

  prepare(): void {
    if (!this.profiler) throw new UnsupportedError("no CPU profiler in this build");
    this.#times = this.#read();
    this.#sys = undefined;
  }

  #read(): CpuTimes {
    const path = this.fs.proc("stat");
    return parseCpuTotal(this.fs.readTextSync(path), path);
  }

  poll(): Firing[] {
    const cur = this.#read();
    const util = this.#times && cpuUtil(this.#times, cur);
    this.#times = cur;
    if (!util) return []; // no tick passed (a static fixture)
    const prev = this.#sys;
    this.#sys = util.sys;
    // The first Interval has no previous one to rise from.
    if (prev === undefined) return [];
    const r = { nowSys: util.sys, deltaSys: util.sys - prev };
    this.#last = r;
    return cpusysFires(r, this.cfg) ? [{ key: "host", data: cpusysData(r, this.cfg) }] : [];
  }

  async capture(_f: Firing, opts: CaptureOptions): Promise<CaptureResult> {
    const { flamedata, profile } = await profileCapture(
      this.profiler!,
      { kind: "host" },
      opts.durationMs,
      opts.signal,
    );
    return { data: { flamedata }, samples: profile.total };
  }

  manualData(): Record<string, unknown> {
    return cpusysData(this.#last, this.cfg);
  }
}

export default autotracingFeature(
  "cpusys",
  (ctx) =>
    new AutoTracer(new CpuSysTrigger(ctx.fs, ctx.config.AutoTracing.CPUSys, ctx.profiler), {
      events: ctx.events,
      containers: ctx.containers,
    }),
);
