// netdev_dcb_pfc_{received,send}_total{device,priority}: PFC (802.1Qbb pause)
// frames per priority of each listed device ([MetricCollector.NetdevDCB]
// DeviceList; empty = none), from the DCB netlink interface (RTM_GETDCB
// DCB_CMD_IEEE_GET, DCB_ATTR_IEEE_PFC: struct ieee_pfc indications[8] =
// received, requests[8] = sent). A device without DCB support (EOPNOTSUPP:
// veth, virtio_net, most NICs without DCB offload), without PFC in its DCB
// answer, or that does not exist reports nothing and says why once in the log.

import { RtNetlink } from "../../../ffi/netlink.ts";
import { ErrnoError } from "../../../ffi/libc.ts";
import { DCB_PRIORITIES, type IeeePfc } from "../../host/dcbnl.ts";
import { readDcbPfc } from "../../host/rtnetlink_read.ts";
import { counter, type Sample } from "../../core/sample.ts";
import { OnceLog } from "../common/once_log.ts";
import { metricsFeature } from "../feature.ts";

/** Reads one device's PFC state (the real socket, or captured replies in tests). */
export type PfcReader = (device: string) => IeeePfc | undefined;

/** Why a device reports nothing, from the kernel's answer. */
export function dcbTrouble(err: unknown): string | undefined {
  if (!(err instanceof ErrnoError)) return undefined;
  if (err.code === "EOPNOTSUPP") {
    return "no DCB support (EOPNOTSUPP: its driver has no DCB netlink operations)";
  }
  if (err.code === "ENODEV") return "no such device (ENODEV)";
  if (err.code === "EPERM" || err.code === "EACCES") return `not permitted (${err.code})`;
  return undefined;
}

export function pfcSamples(device: string, pfc: IeeePfc): Sample[] {
  const out: Sample[] = [];
  for (let p = 0; p < DCB_PRIORITIES; p++) {
    const labels = { device, priority: String(p) };
    out.push(
      counter(
        "netdev_dcb_pfc_received_total",
        "PFC frames received, per priority.",
        Number(pfc.indications[p]),
        labels,
      ),
      counter("netdev_dcb_pfc_send_total", "PFC frames sent, per priority.", Number(pfc.requests[p]), labels),
    );
  }
  return out;
}

/** The series of every listed device; the devices that report nothing are logged through `once`. */
export function netdevDcbSamples(devices: readonly string[], read: PfcReader, once: OnceLog): Sample[] {
  const out: Sample[] = [];
  for (const device of devices) {
    let pfc: IeeePfc | undefined;
    try {
      pfc = read(device);
    } catch (err) {
      const why = dcbTrouble(err);
      if (why === undefined) throw err;
      once.trouble(device, why);
      continue;
    }
    if (pfc === undefined) {
      once.trouble(device, "its DCB answer has no IEEE PFC (DCB_ATTR_IEEE_PFC)");
      continue;
    }
    once.well(device);
    out.push(...pfcSamples(device, pfc));
  }
  return out;
}

export default metricsFeature("netdev_dcb", ({ config, log }) => {
  const devices = config.MetricCollector.NetdevDCB.DeviceList;
  const once = new OnceLog(log, "netdev_dcb: device not reported");
  return {
    collect() {
      if (devices.length === 0) return Promise.resolve([]);
      // A rejection, not a throw: merged collectors run their parts as promises.
      try {
        const nl = new RtNetlink();
        try {
          return Promise.resolve(netdevDcbSamples(devices, (d) => readDcbPfc(d, nl), once));
        } finally {
          nl.close();
        }
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
});
