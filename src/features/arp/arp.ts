// ARP entries of the host net namespace, and the sum over every net namespace
// that has at least one process (one /proc/<pid>/net/arp read per namespace).

import { countArpEntries, netnsInode } from "../../host/arp.ts";
import { type HostFs, MAX_PROC_FILE_BYTES } from "../../host/fs.ts";
import { readTextFileBoundedSync } from "../../io/read.ts";
import { metricsFeature } from "../feature.ts";
import { arpContainer } from "./container.ts";
import { gauge } from "../../core/sample.ts";

export default metricsFeature("arp", ({ fs }) => ({
  async collect() {
    const hostPath = fs.proc("1/net/arp");
    const host = countArpEntries(await fs.readText(hostPath), hostPath);
    return [
      gauge("arp_entries", "host init namespace", host),
      gauge(
        "arp_total",
        "all entries in arp_cache for containers and host netns",
        host + otherNamespacesArp(fs),
      ),
    ];
  },
}), { container: arpContainer });

/**
 * Sums the ARP entries of every other net namespace, reading net/arp through
 * one process of each. The walk uses synchronous calls: each is a few
 * microseconds on procfs, and awaiting one promise per process made this the
 * slowest collector.
 */
function otherNamespacesArp(fs: HostFs): number {
  let total = 0;
  const seen = new Set<string>();
  const hostNs = readNetns(fs.proc("1/ns/net"));
  if (hostNs) seen.add(hostNs);
  for (const e of Deno.readDirSync(fs.proc(""))) {
    if (!/^\d+$/.test(e.name) || e.name === "1") continue;
    const ns = readNetns(fs.proc(`${e.name}/ns/net`));
    if (!ns || seen.has(ns)) continue;
    const path = fs.proc(`${e.name}/net/arp`);
    let text: string;
    try {
      text = readTextFileBoundedSync(path, MAX_PROC_FILE_BYTES);
    } catch {
      // The process exited between readdir and read: another process of its
      // namespace (if any) is found later in the walk.
      continue;
    }
    seen.add(ns);
    total += countArpEntries(text, path);
  }
  return total;
}

function readNetns(path: string): string | undefined {
  try {
    return netnsInode(Deno.readLinkSync(path));
  } catch {
    return undefined;
  }
}
