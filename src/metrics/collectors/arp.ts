// ARP entries of the host net namespace, and the sum over every net namespace
// that has at least one process (one /proc/<pid>/net/arp read per namespace).

import { countArpEntries, netnsInode } from "../../host/arp.ts";
import { defineCollector } from "../collector.ts";
import { gauge } from "../sample.ts";

export default defineCollector("arp", ({ fs }) => ({
  async collect() {
    const hostPath = fs.proc("1/net/arp");
    const host = countArpEntries(await fs.readText(hostPath), hostPath);
    let total = host;
    const seen = new Set<string>();
    const hostNs = await readNetns(fs.proc("1/ns/net"));
    if (hostNs) seen.add(hostNs);
    for await (const e of Deno.readDir(fs.proc(""))) {
      if (!/^\d+$/.test(e.name) || e.name === "1") continue;
      const ns = await readNetns(fs.proc(`${e.name}/ns/net`));
      if (!ns || seen.has(ns)) continue;
      seen.add(ns);
      const path = fs.proc(`${e.name}/net/arp`);
      // The process may exit between readdir and read: skip it, another of its
      // namespace (if any) is found later in the walk.
      const text = await fs.readText(path).catch(() => undefined);
      if (text === undefined) {
        seen.delete(ns);
        continue;
      }
      total += countArpEntries(text, path);
    }
    return [
      gauge("arp_entries", "host init namespace", host),
      gauge("arp_total", "all entries in arp_cache for containers and host netns", total),
    ];
  },
}));

async function readNetns(path: string): Promise<string | undefined> {
  try {
    return netnsInode(await Deno.readLink(path));
  } catch {
    return undefined;
  }
}
