// --enable-cgroup: confine the agent with RuntimeCgroup limits. The agent makes
// a child cgroup named "huatuo-bamai" under the cgroup it already runs in (per
// controller on v1/hybrid hosts, in the unified tree on pure v2 hosts), so a
// systemd unit or a container keeps its own accounting. LimitInitCPU applies
// during start-up, LimitCPU once ready; LimitMem (MB) throughout. On shutdown
// the agent moves back to where it came from and removes what it created.

import type { Logger } from "../log/logger.ts";
import { parseProcCgroup } from "../host/proc_cgroup.ts";
import { exists, MAX_PROC_FILE_BYTES } from "../host/fs.ts";
import { readTextFileBounded } from "../io/read.ts";

export interface CgroupLimits {
  LimitInitCPU: number;
  LimitCPU: number;
  LimitMem: number;
}

const ROOT = "/sys/fs/cgroup";
const NAME = "huatuo-bamai";
const CFS_PERIOD_US = 100_000;

interface Placement {
  /** Directory of the cgroup we created. */
  dir: string;
  /** Directory we came from, to move back into on leave. */
  origin: string;
}

export function cpuQuota(cpus: number): { quota: number; period: number } {
  return { quota: Math.max(1000, Math.round(cpus * CFS_PERIOD_US)), period: CFS_PERIOD_US };
}

export class RuntimeCgroup {
  private constructor(
    private readonly limits: CgroupLimits,
    private readonly log: Logger,
    private readonly v2: boolean,
    private readonly cpu: Placement,
    private readonly memory: Placement,
  ) {}

  static async enter(limits: CgroupLimits, log: Logger): Promise<RuntimeCgroup> {
    const self = parseProcCgroup(await readTextFileBounded("/proc/self/cgroup", MAX_PROC_FILE_BYTES));
    const v2 = exists(`${ROOT}/cgroup.controllers`);
    let cpu: Placement, memory: Placement;
    if (v2) {
      const origin = `${ROOT}${self.get("") ?? "/"}`.replace(/\/$/, "");
      cpu = memory = { origin, dir: `${origin}/${NAME}` };
    } else {
      const at = (ctrl: string): Placement => {
        const origin = `${ROOT}/${ctrl}${self.get(ctrl) ?? "/"}`.replace(/\/$/, "");
        return { origin, dir: `${origin}/${NAME}` };
      };
      cpu = at("cpu");
      memory = at("memory");
    }
    const cg = new RuntimeCgroup(limits, log, v2, cpu, memory);
    await cg.#create();
    await cg.#setCpu(limits.LimitInitCPU);
    await cg.#setMemory(limits.LimitMem);
    for (const p of cg.#placements()) await Deno.writeTextFile(`${p.dir}/cgroup.procs`, String(Deno.pid));
    log.info("agent confined in its cgroup", {
      cpu: cpu.dir,
      memory: memory.dir,
      cpus: limits.LimitInitCPU,
      mem_mb: limits.LimitMem,
    });
    return cg;
  }

  get directories(): string[] {
    return this.#placements().map((p) => p.dir);
  }

  /** Start-up is over: raise the CPU limit from LimitInitCPU to LimitCPU. */
  async started(): Promise<void> {
    await this.#setCpu(this.limits.LimitCPU);
    this.log.info("cgroup cpu limit raised after start-up", { cpus: this.limits.LimitCPU });
  }

  async leave(): Promise<void> {
    for (const p of this.#placements()) {
      try {
        await Deno.writeTextFile(`${p.origin}/cgroup.procs`, String(Deno.pid));
        await Deno.remove(p.dir);
      } catch (err) {
        this.log.warn("cannot remove the agent cgroup", { dir: p.dir, error: String(err) });
      }
    }
  }

  #placements(): Placement[] {
    return this.v2 || this.cpu.dir === this.memory.dir ? [this.cpu] : [this.cpu, this.memory];
  }

  async #create(): Promise<void> {
    for (const p of this.#placements()) await Deno.mkdir(p.dir, { recursive: false }).catch(ignoreExists);
    if (this.v2) {
      // Controllers must be enabled in the parent's subtree_control for the child to get cpu.max/memory.max.
      await Deno.writeTextFile(`${this.cpu.origin}/cgroup.subtree_control`, "+cpu +memory");
    }
  }

  async #setCpu(cpus: number): Promise<void> {
    const { quota, period } = cpuQuota(cpus);
    if (this.v2) {
      await Deno.writeTextFile(`${this.cpu.dir}/cpu.max`, `${quota} ${period}`);
    } else {
      await Deno.writeTextFile(`${this.cpu.dir}/cpu.cfs_period_us`, String(period));
      await Deno.writeTextFile(`${this.cpu.dir}/cpu.cfs_quota_us`, String(quota));
    }
  }

  async #setMemory(mb: number): Promise<void> {
    const bytes = String(mb * 1024 * 1024);
    await Deno.writeTextFile(`${this.memory.dir}/${this.v2 ? "memory.max" : "memory.limit_in_bytes"}`, bytes);
  }
}

function ignoreExists(err: unknown): void {
  if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
}
