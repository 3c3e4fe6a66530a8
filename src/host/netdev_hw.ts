// netdev_hw_rx_dropped: packets a NIC itself dropped on receive, per driver.
//
// The stack's own receive drops (rx_dropped: the core's backlog and
// no-protocol drops folded into the driver's count; rx_nohandler) are software
// and never counted. What is counted:
//
//   every driver (the generic sysfs rule):
//     statistics/rx_missed_errors + statistics/rx_fifo_errors
//     (the NIC had no receive buffer / its FIFO overran: hardware counters)
//   veth: the generic rule alone (always 0 on veth, which has no hardware;
//     its ethtool rx_queue_N_drops / _xdp_drops are software: ring full, XDP)
//   virtio_net: the generic rule
//     + Σ rxN_hw_drops                  (the device's own count, virtio device
//                                        stats, when the device offers them)
//     + Σ rxN_drops − Σ rxN_xdp_drops   (frames the device handed over that the
//                                        driver had to drop: bad length, no
//                                        memory for the skb; minus XDP_DROP
//                                        verdicts, software drops the driver
//                                        counts in the same counter)
//     per queue N, "rx_queue_N_" on kernels before 6.10; the aggregate
//     rx_drops / rx_xdp_drops lines of newer kernels are not added again.

/** The sysfs statistics the generic rule reads. */
export interface SysfsRxErrors {
  rxMissedErrors: number;
  rxFifoErrors: number;
}

/** The drivers with a rule of their own; any other driver gets the generic rule. */
export const HW_DROP_DRIVERS = ["veth", "virtio_net"] as const;

/** Σ of the per-queue ethtool counters named rx<N>_<suffix> or rx_queue_<N>_<suffix>. */
export function perQueueSum(stats: ReadonlyMap<string, bigint>, suffix: string): bigint {
  const re = new RegExp(`^rx(?:_queue_)?\\d+_${suffix}$`);
  let sum = 0n;
  for (const [name, v] of stats) if (re.test(name)) sum += v;
  return sum;
}

/** netdev_hw_rx_dropped of one device with driver `driver` (see the rules above). */
export function hwRxDropped(
  driver: string,
  sysfs: SysfsRxErrors,
  ethtool: ReadonlyMap<string, bigint> | undefined,
): number {
  const generic = sysfs.rxMissedErrors + sysfs.rxFifoErrors;
  if (driver === "virtio_net" && ethtool) {
    const driverDrops = perQueueSum(ethtool, "drops") - perQueueSum(ethtool, "xdp_drops");
    const own = perQueueSum(ethtool, "hw_drops") + (driverDrops > 0n ? driverDrops : 0n);
    return generic + Number(own);
  }
  return generic;
}
