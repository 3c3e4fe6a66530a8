// Every feature of the agent, by the seed's name (= BlackList name): the one
// list the agent builds its collectors and tracers from. Each lives in
// src/features/<name>/; a feature with BPF programs has bpf/<name>.bpf.c.

import type { Feature } from "./feature.ts";
import arp from "./arp/arp.ts";
import cpuidle from "./cpuidle/cpuidle.ts";
import cpuStat from "./cpu_stat/cpu_stat.ts";
import cpusys from "./cpusys/cpusys.ts";
import cpuUtil from "./cpu_util/cpu_util.ts";
import diskio from "./diskio/diskio.ts";
import dload from "./dload/dload.ts";
import dropwatch from "./dropwatch/dropwatch.ts";
import hungtask from "./hungtask/hungtask.ts";
import iolatency from "./iolatency/iolatency.ts";
import iotracing from "./iotracing/iotracing.ts";
import loadavg from "./loadavg/loadavg.ts";
import memburst from "./memburst/memburst.ts";
import memoryBuddyinfo from "./memory_buddyinfo/memory_buddyinfo.ts";
import memoryEvents from "./memory_events/memory_events.ts";
import memoryFree from "./memory_free/memory_free.ts";
import memoryReclaim from "./memory_reclaim/memory_reclaim.ts";
import memoryReclaimEvents from "./memory_reclaim_events/memory_reclaim_events.ts";
import memoryVmstat from "./memory_vmstat/memory_vmstat.ts";
import mountpointPerm from "./mountpoint_perm/mountpoint_perm.ts";
import netRxLatency from "./net_rx_latency/net_rx_latency.ts";
import netdev from "./netdev/netdev.ts";
import netdevBondingLacp from "./netdev_bonding_lacp/netdev_bonding_lacp.ts";
import netdevDcb from "./netdev_dcb/netdev_dcb.ts";
import netdevEvents from "./netdev_events/netdev_events.ts";
import netdevHw from "./netdev_hw/netdev_hw.ts";
import netdevTxqueueTimeout from "./netdev_txqueue_timeout/netdev_txqueue_timeout.ts";
import netstat from "./netstat/netstat.ts";
import oom from "./oom/oom.ts";
import qdisc from "./qdisc/qdisc.ts";
import ras from "./ras/ras.ts";
import runqlat from "./runqlat/runqlat.ts";
import sockstat from "./sockstat/sockstat.ts";
import softirq from "./softirq/softirq.ts";
import softirqTracing from "./softirq_tracing/softirq_tracing.ts";
import softlockup from "./softlockup/softlockup.ts";
import tcpMemory from "./tcp_memory/tcp_memory.ts";

export const FEATURES: readonly Feature[] = [
  // metrics (host, and per container where the seed has a container family)
  arp,
  cpuStat,
  cpuUtil,
  diskio,
  iolatency,
  loadavg,
  memoryBuddyinfo,
  memoryEvents,
  memoryFree,
  memoryReclaim,
  memoryVmstat,
  mountpointPerm,
  netdev,
  netdevDcb,
  netdevHw,
  netstat,
  qdisc,
  runqlat,
  sockstat,
  softirq,
  tcpMemory,
  // metrics and events
  dropwatch,
  hungtask,
  netdevEvents,
  ras,
  softlockup,
  // events
  memoryReclaimEvents,
  netRxLatency,
  netdevBondingLacp,
  netdevTxqueueTimeout,
  oom,
  softirqTracing,
  // autotracing (seed 5.3): triggers that capture a scene when a condition holds
  cpusys,
  cpuidle,
  dload,
  iotracing,
  memburst,
];
