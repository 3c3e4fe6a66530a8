// Every metric collector, by registry name (= BlackList name).

import type { CollectorDefinition } from "../collector.ts";
import arp from "./arp.ts";
import cpuUtil from "./cpu_util.ts";
import dropwatch from "./dropwatch.ts";
import hungtask from "./hungtask.ts";
import iolatency from "./iolatency.ts";
import loadavg from "./loadavg.ts";
import memoryBuddyinfo from "./memory_buddyinfo.ts";
import memoryFree from "./memory_free.ts";
import memoryReclaim from "./memory_reclaim.ts";
import memoryVmstat from "./memory_vmstat.ts";
import mountpointPerm from "./mountpoint_perm.ts";
import netdev from "./netdev.ts";
import netdevEvents from "./netdev_events.ts";
import netstat from "./netstat.ts";
import qdisc from "./qdisc.ts";
import ras from "./ras.ts";
import runqlat from "./runqlat.ts";
import softirq from "./softirq.ts";
import softlockup from "./softlockup.ts";
import sockstat from "./sockstat.ts";
import tcpMemory from "./tcp_memory.ts";

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
