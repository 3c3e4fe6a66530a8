// Which block devices exist and which a cgroup has done I/O on, as "major:minor"
// (the label iolatency's series use):
//   /sys/block/<disk>/dev                    "8:0" (whole disks only: partitions live under their disk)
//   cgroup2 io.stat                          "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0"
//   cgroup1 blkio.throttle.io_serviced       "8:0 Read 1" ... "8:0 Total 1", last line "Total 1"

import { type HostFs, readProcTextSync, SourceError } from "./fs.ts";

const MAJ_MIN = /^\d+:\d+$/;

/** The "major:minor" of a sysfs `dev` file. */
export function parseDevFile(text: string, path: string): string {
  const t = text.trim();
  if (!MAJ_MIN.test(t)) throw new SourceError(path, `expected "major:minor", found ${JSON.stringify(t)}`);
  return t;
}

/** Devices of a cgroup2 io.stat with at least one read, write or discard completed. */
export function parseIoStatDevices(text: string, path: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "") continue;
    if (!MAJ_MIN.test(f[0])) {
      throw new SourceError(path, `expected "major:minor key=value ...", found ${line}`);
    }
    let ios = 0;
    for (const kv of f.slice(1)) {
      const m = /^(rios|wios|dios)=(\d+)$/.exec(kv);
      if (m) ios += Number(m[2]);
    }
    if (ios > 0) out.push(f[0]);
  }
  return out;
}

/** Devices of a cgroup1 blkio.*io_serviced file whose Total is above 0. */
export function parseIoServicedDevices(text: string, path: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "" || f[0] === "Total") continue;
    if (f.length !== 3 || !MAJ_MIN.test(f[0]) || !/^\d+$/.test(f[2])) {
      throw new SourceError(path, `expected "major:minor Op count", found ${JSON.stringify(line)}`);
    }
    if (f[1] === "Total" && Number(f[2]) > 0) out.push(f[0]);
  }
  return out;
}

/**
 * Every whole disk of /sys/block; none when /sys/block is absent (a fixture
 * tree). A disk removed while being listed is skipped.
 */
export function listBlockDisks(fs: HostFs): string[] {
  const dir = fs.sys("block");
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw new SourceError(dir, String(err));
  }
  const out: string[] = [];
  for (const name of names.sort()) {
    const path = `${dir}/${name}/dev`;
    let text: string;
    try {
      text = readProcTextSync(path);
    } catch {
      continue; // removed meanwhile (losetup -d)
    }
    out.push(parseDevFile(text, path));
  }
  return out;
}
