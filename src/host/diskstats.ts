// /proc/diskstats (Documentation/admin-guide/iostats.rst): per block device
// cumulative counters, and the iostat-style rates between two readings.

import { SourceError } from "./fs.ts";

/** Bytes of one sector in diskstats, whatever the device's real sector size. */
export const SECTOR_BYTES = 512;
/** MB as iostat -m counts it (and the iotracing thresholds): 2^20 bytes. */
export const MB = 1024 * 1024;

export interface DiskStat {
  major: number;
  minor: number;
  name: string;
  readIos: number;
  readSectors: number;
  /** ms spent reading (all requests together). */
  readTicks: number;
  writeIos: number;
  writeSectors: number;
  writeTicks: number;
  inFlight: number;
  /** ms the device had I/O in flight (util). */
  ioTicks: number;
  /** ms × requests in flight (average queue size). */
  timeInQueue: number;
}

/** Parses every line (14 fields on old kernels, 18 with discards, 20 with flushes); malformed lines throw. */
export function parseDiskstats(text: string, path = "diskstats"): DiskStat[] {
  const out: DiskStat[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const f = lines[i].trim().split(/\s+/);
    if (f.length === 1 && f[0] === "") continue;
    if (f.length < 14) {
      throw new SourceError(path, `line ${i + 1}: expected at least 14 fields, found ${f.length}`);
    }
    const bad = [0, 1, ...range(3, f.length)].find((k) => !/^\d+$/.test(f[k]));
    if (bad !== undefined) {
      throw new SourceError(
        path,
        `line ${i + 1}: field ${bad + 1} is not a number: ${JSON.stringify(f[bad])}`,
      );
    }
    const n = (k: number) => Number(f[k]);
    out.push({
      major: n(0),
      minor: n(1),
      name: f[2],
      readIos: n(3),
      readSectors: n(5),
      readTicks: n(6),
      writeIos: n(7),
      writeSectors: n(9),
      writeTicks: n(10),
      inFlight: n(11),
      ioTicks: n(12),
      timeInQueue: n(13),
    });
  }
  // Empty is valid: a diskless host (network or tmpfs root) accounts no block device.
  return out;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** The seed's iostatus: MB/s, IO/s, ms per request, percent busy, average requests in flight. */
export interface IoStatus {
  read_bps: number;
  read_iops: number;
  read_await: number;
  write_bps: number;
  write_iops: number;
  write_await: number;
  io_util: number;
  queue_size: number;
}

/** Rates between two readings of one device `seconds` apart (iostat -x); undefined when no time passed. */
export function ioStatus(prev: DiskStat, cur: DiskStat, seconds: number): IoStatus | undefined {
  if (!(seconds > 0)) return undefined;
  // Counters wrap (32-bit on 32-bit kernels) or reset when a device is re-created: a negative step is 0.
  const d = (k: keyof DiskStat) => Math.max(0, (cur[k] as number) - (prev[k] as number));
  const reads = d("readIos"), writes = d("writeIos");
  return {
    read_bps: d("readSectors") * SECTOR_BYTES / MB / seconds,
    read_iops: reads / seconds,
    read_await: reads > 0 ? d("readTicks") / reads : 0,
    write_bps: d("writeSectors") * SECTOR_BYTES / MB / seconds,
    write_iops: writes / seconds,
    write_await: writes > 0 ? d("writeTicks") / writes : 0,
    io_util: Math.min(100, d("ioTicks") / (seconds * 1000) * 100),
    queue_size: d("timeInQueue") / (seconds * 1000),
  };
}

/**
 * Major and minor of a st_dev as stat(2) reports it (glibc's dev_t layout:
 * minor bits 0-7 and 20-43, major bits 8-19 and 44-63).
 */
export function splitDev(dev: number): { major: number; minor: number } {
  const lo = dev % 2 ** 32, hi = Math.floor(dev / 2 ** 32);
  const major = (((lo >>> 8) & 0xfff) | (hi & 0xfffff000)) >>> 0;
  const minor = ((lo & 0xff) | ((((hi & 0xfff) << 20) | (lo >>> 12)) & 0xffffff00)) >>> 0;
  return { major, minor };
}
