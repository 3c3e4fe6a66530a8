// sockstat_container_*: socket usage of each container's net namespace from
// /proc/<initPid>/net/sockstat and sockstat6 (the files show the process's
// namespace, so no setns). The "mem" fields are left out: the kernel's
// protocol memory is one pool for the whole host (the seed lists TCP_mem as a
// host series only), so per container they would only repeat the host value.

import type { ContainerRegistry } from "../../pod/container.ts";
import type { Collector } from "../../core/collector.ts";
import type { FeatureContext } from "../feature.ts";
import { sockstatSamples } from "./samples.ts";
import { perNetns } from "../common/netns.ts";

const perNamespace = (_proto: string, key: string) => key !== "mem";

export function sockstatContainer({ fs }: FeatureContext, containers: ContainerRegistry): Collector {
  return {
    name: "sockstat",
    collect() {
      return perNetns(fs, containers.list(), (pid) => {
        const v4 = fs.proc(`${pid}/net/sockstat`);
        const v6 = fs.proc(`${pid}/net/sockstat6`);
        const text4 = fs.readTextSync(v4);
        let text6: string | undefined;
        try {
          text6 = fs.readTextSync(v6);
        } catch { /* no IPv6 in this kernel */ }
        return sockstatSamples(text4, v4, text6, v6, "sockstat_container", undefined, perNamespace);
      });
    },
  };
}
