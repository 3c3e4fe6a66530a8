// loadavg_container_{nr_running,nr_uninterruptible}: the container's tasks
// (threads) in state R and D right now, from /proc/<tid>/stat of every thread
// its cgroup lists: v1 `tasks` (the cpu hierarchy's, else any v1 one), cgroup2
// `cgroup.threads`. The seed's upstream reads these from v1 cgroupstats only;
// reading the task states works on v1 and v2 alike. At most MAX_TASKS threads
// per container are read per scrape, so a fork bomb cannot stall the scrape.

import type { Container, ContainerRegistry } from "../../pod/container.ts";
import { containerLabels } from "../../pod/container.ts";
import type { HostFs } from "../../host/fs.ts";
import { MAX_PROC_FILE_BYTES, SourceError } from "../../host/fs.ts";
import { readTextFileBoundedSync } from "../../io/read.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";
import {
  type CgroupDir,
  controllerDir,
  parseIdList,
  parseTaskState,
  perContainer,
  requireCgroupFile,
} from "../common/cgroup.ts";

export const MAX_TASKS = 4096;

/** Where the container's thread list is: the v1 cpu hierarchy's `tasks`, another v1 one, else cgroup2's. */
export function taskDir(c: Container): CgroupDir | undefined {
  const cpu = controllerDir(c, "cpu");
  if (cpu && !cpu.v2) return cpu;
  for (const [key, dir] of Object.entries(c.cgroupPaths)) {
    if (key !== "unified" && dir !== "") return { dir, v2: false };
  }
  return cpu;
}

export interface TaskCounts {
  running: number;
  uninterruptible: number;
}

/** States of `tids` (at most MAX_TASKS); threads that exited meanwhile are not counted. */
export function countTaskStates(fs: HostFs, tids: readonly number[]): TaskCounts {
  const counts = { running: 0, uninterruptible: 0 };
  const n = Math.min(tids.length, MAX_TASKS);
  for (let i = 0; i < n; i++) {
    const path = fs.proc(`${tids[i]}/stat`);
    let text: string;
    try {
      // procfs reads never wait on a disk; one synchronous read is far cheaper than an async one.
      text = readTextFileBoundedSync(path, MAX_PROC_FILE_BYTES);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || /ESRCH|No such process/.test(String(err))) continue;
      throw new SourceError(path, String(err));
    }
    const state = parseTaskState(text, path);
    if (state === "R") counts.running++;
    else if (state === "D") counts.uninterruptible++;
  }
  return counts;
}

export function loadavgContainer(ctx: FeatureContext, containers: ContainerRegistry): Collector {
  return {
    name: "loadavg",
    collect() {
      return perContainer(containers.list(), (c): Sample[] => {
        const d = taskDir(c);
        if (!d) return [];
        const name = d.v2 ? "cgroup.threads" : "tasks";
        const tids = parseIdList(requireCgroupFile(d.dir, name), `${d.dir}/${name}`);
        const counts = countTaskStates(ctx.fs, tids);
        const labels = containerLabels(c);
        return [
          gauge("loadavg_container_nr_running", "nr_running of container", counts.running, labels),
          gauge(
            "loadavg_container_nr_uninterruptible",
            "nr_uninterruptible of container",
            counts.uninterruptible,
            labels,
          ),
        ];
      });
    },
  };
}
