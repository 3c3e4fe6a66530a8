// What every per-container collector shares: finding a container's directory
// for a controller (v1 first: on a hybrid host the v1 controllers are where
// accounting lives; the unified directory carries only the controllers enabled
// in it), reading its files with "the container is gone" told apart from "the
// file is missing or broken", and the small parsers of cgroup file formats.

import type { Container } from "../../pod/container.ts";
import { describeFsError, type HostFs, MAX_PROC_FILE_BYTES, SourceError } from "../../host/fs.ts";
import { readTextFileBoundedSync } from "../../io/read.ts";
import { Slicer } from "../../host/slicer.ts";
import { parseCpuList } from "../../host/cpulist.ts";
import { fieldsAfterComm, statField } from "../../host/pid_stat.ts";

/** The container's cgroup directory was removed (the container was deleted): skip it silently. */
export class ContainerGone extends Error {
  constructor(readonly dir: string) {
    super(`${dir}: cgroup removed`);
    this.name = "ContainerGone";
  }
}

export interface CgroupDir {
  readonly dir: string;
  readonly v2: boolean;
}

/**
 * The directory holding `controller`'s files: the v1 hierarchy whose name
 * lists it ("cpu", "cpu,cpuacct", "cpuacct,cpu"), else the unified directory.
 */
export function controllerDir(c: Container, controller: string): CgroupDir | undefined {
  for (const [key, dir] of Object.entries(c.cgroupPaths)) {
    if (key !== "unified" && dir !== "" && key.split(",").includes(controller)) return { dir, v2: false };
  }
  const unified = c.cgroupPaths["unified"];
  return unified ? { dir: unified, v2: true } : undefined;
}

function dirExists(dir: string): boolean {
  try {
    return Deno.statSync(dir).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Reads `dir/name` (synchronously: see src/host/slicer.ts): undefined when the
 * file does not exist (the controller or feature is absent) while the
 * directory does; ContainerGone when the directory itself is gone (also when
 * it vanished during the read, which fails with ENODEV); SourceError for
 * anything else.
 */
export function readCgroupFile(dir: string, name: string): string | undefined {
  const path = `${dir}/${name}`;
  try {
    return readTextFileBoundedSync(path, MAX_PROC_FILE_BYTES);
  } catch (err) {
    if (!dirExists(dir)) throw new ContainerGone(dir);
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new SourceError(path, describeFsError(err));
  }
}

/** Like readCgroupFile, but the file must exist. */
export function requireCgroupFile(dir: string, name: string): string {
  const text = readCgroupFile(dir, name);
  if (text === undefined) throw new SourceError(`${dir}/${name}`, "no such file or directory");
  return text;
}

/**
 * Runs `each` per container, one after another with the event loop handed
 * back every few ms (each does sync reads); a container whose cgroup vanished
 * contributes nothing, any other error fails the whole collection (as a host
 * collector's).
 */
export async function perContainer<T>(
  containers: readonly Container[],
  each: (c: Container) => T[] | Promise<T[]>,
): Promise<T[]> {
  const out: T[] = [];
  const slicer = new Slicer();
  for (const c of containers) {
    await slicer.tick();
    try {
      for (const x of await each(c)) out.push(x);
    } catch (err) {
      if (err instanceof ContainerGone) continue;
      throw err;
    }
  }
  return out;
}

/** One integer (memory.failcnt, cpu.cfs_quota_us, ...). */
export function parseSingleInt(text: string, path: string): number {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) throw new SourceError(path, `expected an integer, found ${JSON.stringify(t)}`);
  return Number(t);
}

/** CPUs in a list like "0-3,8,10-11" (cpuset.cpus, /sys/devices/system/cpu/online); "" is 0. */
export function countCpuList(text: string, path: string): number {
  try {
    return parseCpuList(text).length;
  } catch (err) {
    throw new SourceError(path, `bad CPU list ${JSON.stringify(text.trim())}: ${(err as Error).message}`);
  }
}

/**
 * cgroup2 cpu.max "max 100000" | "<quota> <period>" → CPUs allowed, or
 * undefined when unlimited.
 */
export function parseCpuMax(text: string, path: string): number | undefined {
  const m = /^(max|\d+) (\d+)$/.exec(text.trim());
  if (!m || Number(m[2]) <= 0) {
    throw new SourceError(path, `expected "<quota|max> <period>", found ${JSON.stringify(text.trim())}`);
  }
  return m[1] === "max" ? undefined : Number(m[1]) / Number(m[2]);
}

/** A v1 cfs quota/period pair → CPUs allowed, or undefined when unlimited (quota -1). */
export function cfsCores(quota: number, period: number, path: string): number | undefined {
  if (quota < 0) return undefined;
  if (period <= 0) throw new SourceError(path, `cfs period ${period}`);
  return quota / period;
}

/** The state letter of a /proc/<pid>/stat line (after the last ")": comm may hold anything). */
export function parseTaskState(text: string, path: string): string {
  const state = fieldsAfterComm(text)?.[0]?.charAt(0) ?? "";
  if (state === "") {
    throw new SourceError(path, `no state after the command name in ${JSON.stringify(text.slice(0, 80))}`);
  }
  return state;
}

/** Start time of a process in clock ticks since boot: field 22 of /proc/<pid>/stat. */
export function parseStartTicks(text: string, path: string): number {
  const fields = fieldsAfterComm(text);
  const v = fields && statField(fields, 22);
  if (v === undefined || !/^\d+$/.test(v)) {
    throw new SourceError(path, "no start time (field 22)");
  }
  return Number(v);
}

/** Newline-separated ids (tasks, cgroup.threads, cgroup.procs). */
export function parseIdList(text: string, path: string): number[] {
  const out: number[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (!/^\d+$/.test(line)) {
      throw new SourceError(path, `expected one id per line, found ${JSON.stringify(line)}`);
    }
    out.push(Number(line));
  }
  return out;
}

/** Linux reports process times to user space in USER_HZ = 100 ticks per second on every architecture we run on. */
export const USER_HZ = 100;

/** Online CPUs of the host, read through the fs root (fixtures included). */
export function hostCpusSync(fs: HostFs): number {
  const path = fs.sys("devices/system/cpu/online");
  const n = countCpuList(fs.readTextSync(path), path);
  if (n <= 0) throw new SourceError(path, "no online CPU");
  return n;
}
