// SPDX-License-Identifier: GPL-2.0
/*
 * netdev_txqueue_timeout: the netdev watchdog (dev_watchdog) found a TX queue
 * stopped for longer than the device's watchdog_timeo and called the driver's
 * ndo_tx_timeout. net:net_dev_xmit_timeout fires once per timed-out queue.
 *
 * Program (raw tracepoint): raw_tp/net_dev_xmit_timeout
 *   (struct net_device *dev, int queue_index)
 * A raw tracepoint needs no tracefs mount, and the kernel can run it on
 * crafted arguments (BPF_PROG_TEST_RUN), which is how its tests exercise the
 * whole path: no driver here can be made to time out for real. The driver
 * name is what the tracepoint itself prints (netdev_drivername()): the name
 * of the parent device's driver, "" for virtual devices. On a kernel without
 * the tracepoint the attach fails with ENOENT: "unsupported on this kernel".
 *
 * Maps (agent contract):
 *   netdev_txqueue_timeout_events  RINGBUF 64 KiB of struct
 *                                  txqueue_timeout_event, below.
 *                                  BPF_MAP_TYPE_RINGBUF needs kernel >= 5.8.
 *   netdev_txqueue_timeout_events_lost  PERCPU_ARRAY[1]: records dropped
 *                                  because the ring was full.
 */
#include "huatuo.h"

#define IFNAMSIZ 16
#define DRIVER_NAME_LEN 32

/* One timed-out queue, decoded by src/features/netdev_txqueue_timeout/netdev_txqueue_timeout.ts. */
struct txqueue_timeout_event {
	__s32 queue_index;
	char device_name[IFNAMSIZ];        /* NUL-terminated */
	char driver_name[DRIVER_NAME_LEN]; /* NUL-terminated */
	__u64 ts;                          /* CLOCK_MONOTONIC ns */
};
HUATUO_RECORD(struct txqueue_timeout_event, 64);

HUATUO_EVENT_RING(netdev_txqueue_timeout_events, 64 * 1024);

SEC("raw_tp/net_dev_xmit_timeout")
int BPF_PROG(netdev_txqueue_timeout, struct net_device *dev, int queue_index)
{
	struct txqueue_timeout_event *ev;
	const char *driver;

	ev = huatuo_reserve(netdev_txqueue_timeout_events, ev);
	if (!ev)
		return 0;
	ev->queue_index = queue_index;
	/* A failed read (e.g. a NULL dev in a test run) leaves zeros: empty strings. */
	if (bpf_core_read_str(ev->device_name, sizeof(ev->device_name), &dev->name) < 0)
		ev->device_name[0] = 0;
	/* netdev_drivername(): dev->dev.parent->driver->name, "" when any link is missing. */
	driver = BPF_CORE_READ(dev, dev.parent, driver, name);
	ev->driver_name[0] = 0;
	if (driver)
		bpf_probe_read_kernel_str(ev->driver_name, sizeof(ev->driver_name), driver);
	ev->ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP); /* the agent polls on a timer */
	return 0;
}
