// /proc/diskstats (Documentation/admin-guide/iostats.rst): one line per block
// device the kernel accounts (whole disks, partitions, loop, md, dm, nvme, ...):
//   major minor name reads merged sectors ms writes merged sectors ms in_flight io_ms weighted_ms
// followed, on newer kernels, by 4 discard fields (4.18) and 2 flush fields (5.5).

import { SourceError } from "./fs.ts";

/** Bytes of one diskstats sector: always 512, whatever the device's logical block size. */
export const SECTOR_BYTES = 512;

/** Fields every line has since 2.6.25 (older kernels printed 7 for partitions). */
const MIN_FIELDS = 14;

export interface DiskStats {
  major: number;
  minor: number;
  /** The name in field 3 (sda, sda1, loop0, md0, dm-0, nvme0n1p1). */
  name: string;
  readsCompleted: number;
  readSectors: number;
  readMs: number;
  writesCompleted: number;
  writeSectors: number;
  writeMs: number;
  /** I/Os currently in flight (the only field that is not cumulative). */
  inProgress: number;
}

/** Every line, in file order; throws naming the line when one is short or not numeric. */
export function parseDiskStats(text: string, path = "diskstats"): DiskStats[] {
  const out: DiskStats[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const f = line.split(/\s+/);
    if (f.length < MIN_FIELDS) {
      throw new SourceError(path, `line ${i + 1}: expected at least ${MIN_FIELDS} fields, found ${f.length}`);
    }
    const bad = [0, 1, ...Array.from({ length: f.length - 3 }, (_, j) => j + 3)].find((j) =>
      !/^\d+$/.test(f[j])
    );
    if (bad !== undefined) {
      throw new SourceError(
        path,
        `line ${i + 1}: field ${bad + 1} is not a number: ${JSON.stringify(f[bad])}`,
      );
    }
    const n = (j: number) => Number(f[j]);
    out.push({
      major: n(0),
      minor: n(1),
      name: f[2],
      readsCompleted: n(3),
      readSectors: n(5),
      readMs: n(6),
      writesCompleted: n(7),
      writeSectors: n(9),
      writeMs: n(10),
      inProgress: n(11),
    });
  }
  // Empty is valid: a diskless host (network or tmpfs root) accounts no block device.
  return out;
}
