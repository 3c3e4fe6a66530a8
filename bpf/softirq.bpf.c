// SPDX-License-Identifier: GPL-2.0
/*
 * softirq: NET_RX / NET_TX softirq latency, from the first raise of the vector
 * on a CPU (irq:softirq_raise) to the start of its handler on that CPU
 * (irq:softirq_entry). A softirq is always raised for, and run on, the local
 * CPU, so per-CPU timestamps suffice. Repeated raises before the handler runs
 * keep the first timestamp (the pending bit was already set).
 *
 * Programs (raw tracepoints, kernel >= 4.17):
 *   raw_tp/softirq_raise, raw_tp/softirq_entry
 *
 * Maps (agent contract):
 *   softirq_lat  PERCPU_ARRAY[2]  key __u32 (0 = NET_RX, 1 = NET_TX)
 *                value struct hist4; the CPU of each per-CPU slot is the
 *                `cpuid` label.
 *   softirq_ts   PERCPU_ARRAY[2]  same keys, value __u64 raise ktime ns, 0 =
 *                not pending (internal)
 *
 * Zones: 0 [0,10us) 1 [10,100us) 2 [100us,1ms) 3 [1ms,inf).
 *
 * A raise from a hard interrupt that lands between the entry program's read
 * and reset of the timestamp is not measured (rare; no atomic xchg on the
 * oldest supported BPF ISA).
 */
#include "huatuo.h"

HUATUO_MAP(softirq_ts, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, 2);
HUATUO_MAP(softirq_lat, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct hist4, 2);

/* NET_TX_SOFTIRQ = 2, NET_RX_SOFTIRQ = 3 (stable, also in the trace format). */
static __always_inline int vec_slot(unsigned int vec)
{
	if (vec == NET_RX_SOFTIRQ)
		return 0;
	if (vec == NET_TX_SOFTIRQ)
		return 1;
	return -1;
}

SEC("raw_tp/softirq_raise")
int BPF_PROG(softirq_raise, unsigned int vec)
{
	int slot = vec_slot(vec);
	__u32 key;
	__u64 *ts;

	if (slot < 0)
		return 0;
	key = slot;
	ts = bpf_map_lookup_elem(&softirq_ts, &key);
	if (ts && *ts == 0)
		*ts = bpf_ktime_get_ns();
	return 0;
}

SEC("raw_tp/softirq_entry")
int BPF_PROG(softirq_entry, unsigned int vec)
{
	int slot = vec_slot(vec);
	__u64 *ts, start, delta;
	struct hist4 *h;
	__u32 key, z;

	if (slot < 0)
		return 0;
	key = slot;
	ts = bpf_map_lookup_elem(&softirq_ts, &key);
	if (!ts)
		return 0;
	start = *ts;
	*ts = 0;
	if (!start) /* raised before we attached */
		return 0;
	delta = bpf_ktime_get_ns() - start;
	if ((__s64)delta < 0)
		return 0;
	z = huatuo_zone4(delta, 10 * NSEC_PER_USEC, 100 * NSEC_PER_USEC, NSEC_PER_MSEC);
	h = bpf_map_lookup_elem(&softirq_lat, &key);
	if (h)
		__sync_fetch_and_add(&h->zone[z & 3], 1);
	return 0;
}
