// /proc/<pid>/net/dev parser. Field names follow the seed's metric names
// (`netdev_<field>_total`).

import { SourceError } from "./fs.ts";

export const NETDEV_FIELDS = [
  "receive_bytes",
  "receive_packets",
  "receive_errors",
  "receive_dropped",
  "receive_fifo",
  "receive_frame",
  "receive_compressed",
  "receive_multicast",
  "transmit_bytes",
  "transmit_packets",
  "transmit_errors",
  "transmit_dropped",
  "transmit_fifo",
  "transmit_colls",
  "transmit_carrier",
  "transmit_compressed",
] as const;

export type NetDevField = typeof NETDEV_FIELDS[number];
export type NetDevCounters = Record<NetDevField, number>;

/** Device name → counters, in file order. Throws on any malformed line. */
export function parseNetDev(text: string, path = "net/dev"): Map<string, NetDevCounters> {
  const lines = text.split("\n");
  if (lines.length < 2 || !lines[0].includes("|") || !lines[1].includes("|")) {
    throw new SourceError(path, "missing the two header lines");
  }
  const out = new Map<string, NetDevCounters>();
  for (let i = 2; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon < 0) throw new SourceError(path, `line ${i + 1}: no "device:" prefix`);
    const device = line.slice(0, colon).trim();
    const fields = line.slice(colon + 1).trim().split(/\s+/);
    if (device === "" || fields.length !== NETDEV_FIELDS.length) {
      throw new SourceError(
        path,
        `line ${i + 1}: expected ${NETDEV_FIELDS.length} counters for ${
          device || "?"
        }, found ${fields.length}`,
      );
    }
    const counters = {} as NetDevCounters;
    NETDEV_FIELDS.forEach((f, j) => {
      const v = Number(fields[j]);
      if (!/^\d+$/.test(fields[j])) throw new SourceError(path, `line ${i + 1}: ${f} is not a number`);
      counters[f] = v;
    });
    out.set(device, counters);
  }
  return out;
}
