// Every metric collector, by registry name (= BlackList name).

import type { CollectorDefinition } from "./feature.ts";
import arp from "./arp/arp.ts";
import cpuUtil from "./cpu_util/cpu_util.ts";
import dropwatch from "./dropwatch/dropwatch.ts";
import hungtask from "./hungtask/hungtask.ts";
import iolatency from "./iolatency/iolatency.ts";
import loadavg from "./loadavg/loadavg.ts";
import memoryBuddyinfo from "./memory_buddyinfo/memory_buddyinfo.ts";
import memoryFree from "./memory_free/memory_free.ts";
import memoryReclaim from "./memory_reclaim/memory_reclaim.ts";
import memoryVmstat from "./memory_vmstat/memory_vmstat.ts";
import mountpointPerm from "./mountpoint_perm/mountpoint_perm.ts";
import netdev from "./netdev/netdev.ts";
import netdevEvents from "./netdev_events/netdev_events.ts";
import netstat from "./netstat/netstat.ts";
import qdisc from "./qdisc/qdisc.ts";
import ras from "./ras/ras.ts";
import runqlat from "./runqlat/runqlat.ts";
import softirq from "./softirq/softirq.ts";
import softlockup from "./softlockup/softlockup.ts";
import sockstat from "./sockstat/sockstat.ts";
import tcpMemory from "./tcp_memory/tcp_memory.ts";

export const COLLECTORS: readonly CollectorDefinition[] = [
  arp,
  cpuUtil,
  dropwatch,
  hungtask,
  iolatency,
  loadavg,
  memoryBuddyinfo,
  memoryFree,
  memoryReclaim,
  memoryVmstat,
  mountpointPerm,
  netdev,
  netdevEvents,
  netstat,
  qdisc,
  ras,
  runqlat,
  sockstat,
  softirq,
  softlockup,
  tcpMemory,
];
