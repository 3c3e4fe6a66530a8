// arp_container_entries: neighbour entries of each container's net namespace,
// counted from /proc/<initPid>/net/arp (the file shows the process's
// namespace, so no setns).

import { countArpEntries } from "../../host/arp.ts";
import type { ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { gauge } from "../../core/sample.ts";
import { perNetns } from "../common/netns.ts";

export function arpContainer({ fs }: FeatureContext, containers: ContainerRegistry): Collector {
  return {
    name: "arp",
    collect() {
      return perNetns(fs, containers.list(), (pid) => {
        const path = fs.proc(`${pid}/net/arp`);
        return [
          gauge(
            "arp_container_entries",
            "arp entries in container netns",
            countArpEntries(fs.readTextSync(path), path),
          ),
        ];
      });
    },
  };
}
