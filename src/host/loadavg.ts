// /proc/loadavg: "0.30 0.20 0.22 2/345 6789".

import { SourceError } from "./fs.ts";

export interface LoadAvg {
  load1: number;
  load5: number;
  load15: number;
}

export function parseLoadAvg(text: string, path = "loadavg"): LoadAvg {
  const f = text.trim().split(/\s+/);
  if (f.length < 3 || f.slice(0, 3).some((x) => !/^\d+(\.\d+)?$/.test(x))) {
    throw new SourceError(path, `expected three load averages, found ${JSON.stringify(text.trim())}`);
  }
  return { load1: Number(f[0]), load5: Number(f[1]), load15: Number(f[2]) };
}
