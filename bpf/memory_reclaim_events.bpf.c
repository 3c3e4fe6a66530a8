// SPDX-License-Identifier: GPL-2.0
/*
 * memory_reclaim_events: a container process stalled in direct reclaim for
 * longer than blocked_threshold within one second.
 *
 * Reclaim done by the allocating task itself, from begin to end tracepoint:
 *   vmscan:mm_vmscan_direct_reclaim_begin/end   global direct reclaim
 *                                               (try_to_free_pages)
 *   vmscan:mm_vmscan_memcg_reclaim_begin/end    memory cgroup limit reclaim
 *                                               (try_to_free_mem_cgroup_pages:
 *                                               a charge over the v1 limit or
 *                                               v2 memory.max/high)
 * The two never nest (a charge does not reclaim globally and global reclaim
 * does not charge), but each keeps its own start time so an end always pairs
 * with its begin. The memcg soft-limit reclaim tracepoints are not used: that
 * reclaim runs inside global direct reclaim and would be counted twice.
 *
 * Per process (tgid), reclaim time is summed over a window of window_ns
 * (1 s) that opens at the first reclaim that ends after the previous window;
 * the first time the sum reaches blocked_threshold in a window one event is
 * written with the sum so far. Threads of one process that reclaim at the
 * same time on several CPUs update the window without a lock: a lost update
 * can at worst undercount or repeat one event.
 *
 * Only container processes are reported. Until the container registry maps
 * cgroups to containers, "container process" means a task whose memory
 * cgroup is not the root memory cgroup (css->parent != NULL); the memory
 * cgroup id is recorded so the container can be attached in user space.
 *
 * Programs (raw tracepoints, kernel >= 4.17):
 *   raw_tp/mm_vmscan_direct_reclaim_begin, raw_tp/mm_vmscan_direct_reclaim_end,
 *   raw_tp/mm_vmscan_memcg_reclaim_begin,  raw_tp/mm_vmscan_memcg_reclaim_end
 *
 * Read-only constants (set by the agent before load):
 *   blocked_threshold  ns (EventTracing.MemoryReclaim.BlockedThreshold)
 *   window_ns          ns (1 s)
 *
 * Maps (agent contract):
 *   memory_reclaim_events  RINGBUF 64 KiB of struct reclaim_event, below
 *   memory_reclaim_events_lost  PERCPU_ARRAY[1] __u64 (ring full)
 *   reclaim_start          LRU_HASH[10240] key __u32 tid, kept across
 *                          reclaims (internal)
 *   reclaim_window         LRU_HASH[10240] key __u32 tgid (internal)
 */
#include "huatuo.h"

#define KIND_DIRECT 1
#define KIND_MEMCG 2

const volatile __u64 blocked_threshold = 900 * NSEC_PER_MSEC;
const volatile __u64 window_ns = NSEC_PER_SEC;

/* One window over the threshold, decoded by src/features/memory_reclaim_events/memory_reclaim_events.ts. */
struct reclaim_event {
	__u32 pid;                /* tgid */
	__u32 tid;                /* thread whose reclaim crossed the threshold */
	char comm[TASK_COMM_LEN]; /* that thread's */
	__u64 deltatime;          /* ns of reclaim in the window so far */
	__u64 memcg_id;           /* memory cgroup id: v1 inode of the cgroup dir, v2 cgroup id */
	__u64 now;                /* CLOCK_MONOTONIC ns */
	__u64 window_start;       /* ns */
	__u32 count;              /* reclaims in the window */
	__u32 kind;               /* KIND_DIRECT or KIND_MEMCG: the reclaim that crossed the threshold */
};
HUATUO_RECORD(struct reclaim_event, 64);

/* Begin times of one thread: [0] direct, [1] memcg. */
struct reclaim_start {
	__u64 ts[2];
	__u64 memcg_id;
};

struct reclaim_window {
	__u64 start;
	__u64 total;
	__u32 count;
	__u32 reported;
};

HUATUO_EVENT_RING(memory_reclaim_events, 64 * 1024);
HUATUO_MAP(reclaim_start, BPF_MAP_TYPE_LRU_HASH, __u32, struct reclaim_start, 10240);
HUATUO_MAP(reclaim_window, BPF_MAP_TYPE_LRU_HASH, __u32, struct reclaim_window, 10240);

/* Memory cgroup id of @task if it is in a non-root memory cgroup, else 0. */
static __always_inline __u64 container_memcg_id(struct task_struct *task)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cset = BPF_CORE_READ(task, cgroups);
	__u32 id = HUATUO_CGRP_ID(memory_cgrp_id);

	if (!cset || id >= 64)
		return 0;
	if (bpf_core_read(&css, sizeof(css), &cset->subsys[id]) || !css)
		return 0;
	if (!BPF_CORE_READ(css, parent)) /* the root memory cgroup: a host process */
		return 0;
	return huatuo_css_cgroup_id(css);
}

static __always_inline void reclaim_begin(int slot)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct reclaim_start *s, init = {};
	__u64 memcg_id;

	memcg_id = container_memcg_id((struct task_struct *)bpf_get_current_task());
	if (!memcg_id)
		return;
	s = bpf_map_lookup_elem(&reclaim_start, &tid);
	if (!s) {
		bpf_map_update_elem(&reclaim_start, &tid, &init, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&reclaim_start, &tid);
		if (!s)
			return;
	}
	s->ts[slot & 1] = bpf_ktime_get_ns();
	s->memcg_id = memcg_id;
}

static __always_inline void reclaim_end(int slot)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
	struct reclaim_window *w, init = {};
	struct reclaim_event *ev;
	struct reclaim_start *s;
	__u64 now, begin, delta, memcg_id;

	s = bpf_map_lookup_elem(&reclaim_start, &tid);
	if (!s)
		return;
	begin = s->ts[slot & 1];
	memcg_id = s->memcg_id;
	s->ts[slot & 1] = 0; /* the entry stays for the thread's next reclaim; LRU evicts it */
	if (!begin)
		return;
	now = bpf_ktime_get_ns();
	delta = now - begin;
	if ((__s64)delta < 0)
		return;

	w = bpf_map_lookup_elem(&reclaim_window, &tgid);
	if (!w) {
		bpf_map_update_elem(&reclaim_window, &tgid, &init, BPF_NOEXIST);
		w = bpf_map_lookup_elem(&reclaim_window, &tgid);
		if (!w)
			return;
	}
	if (!w->start || now - w->start > window_ns) {
		/* A new window: it opens where this reclaim began. */
		w->start = begin;
		w->total = 0;
		w->count = 0;
		w->reported = 0;
	}
	w->total += delta;
	w->count += 1;
	if (w->reported || w->total < blocked_threshold)
		return;
	w->reported = 1;

	ev = huatuo_reserve(memory_reclaim_events, ev);
	if (!ev)
		return;
	ev->pid = tgid;
	ev->tid = tid;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	ev->deltatime = w->total;
	ev->memcg_id = memcg_id;
	ev->now = now;
	ev->window_start = w->start;
	ev->count = w->count;
	ev->kind = slot == 0 ? KIND_DIRECT : KIND_MEMCG;
	bpf_ringbuf_submit(ev, 0);
}

SEC("raw_tp/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(reclaim_events_direct_begin)
{
	reclaim_begin(0);
	return 0;
}

SEC("raw_tp/mm_vmscan_direct_reclaim_end")
int BPF_PROG(reclaim_events_direct_end)
{
	reclaim_end(0);
	return 0;
}

SEC("raw_tp/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(reclaim_events_memcg_begin)
{
	reclaim_begin(1);
	return 0;
}

SEC("raw_tp/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(reclaim_events_memcg_end)
{
	reclaim_end(1);
	return 0;
}
