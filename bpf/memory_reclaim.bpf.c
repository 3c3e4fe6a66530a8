// SPDX-License-Identifier: GPL-2.0
/*
 * memory_reclaim: memcg direct reclaim, i.e. a task reclaiming its memory
 * cgroup's pages because a charge hit the limit (try_charge ->
 * try_to_free_mem_cgroup_pages), per memory cgroup. The same tracepoints also
 * fire for memory.high reclaim on return to user space, memory.reclaim writes
 * and limit shrinking; all of them stall the task doing it.
 *
 * Programs (raw tracepoints):
 *   raw_tp/mm_vmscan_memcg_reclaim_begin, raw_tp/mm_vmscan_memcg_reclaim_end
 *
 * Maps (agent contract):
 *   memcg_reclaim  HASH[10240]  key __u64 cgid, value struct memcg_reclaim_stat
 *                  { __u64 count; __u64 stall_ns; } (cumulative)
 *                  cgid: memory-controller cgroup id of current at _begin
 *                  (kernfs id: v1 = inode of the cgroup dir under
 *                  /sys/fs/cgroup/memory, v2 = cgroup2 id). The tracepoint
 *                  does not pass the memcg; for charges the reclaiming task
 *                  is the charging task, whose memcg is (almost always) the
 *                  one over its limit. Entries are never removed here.
 *   memcg_rcl_ts   LRU_HASH[10240] key __u32 tid, value struct { ts; cgid; }
 *                  (internal)
 */
#include "huatuo.h"

struct memcg_reclaim_stat {
	__u64 count;
	__u64 stall_ns;
};

struct memcg_rcl_start {
	__u64 ts;
	__u64 cgid;
};

HUATUO_MAP(memcg_reclaim, BPF_MAP_TYPE_HASH, __u64, struct memcg_reclaim_stat, 10240);
HUATUO_MAP(memcg_rcl_ts, BPF_MAP_TYPE_LRU_HASH, __u32, struct memcg_rcl_start, 10240);

SEC("raw_tp/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(memcg_reclaim_begin)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct memcg_rcl_start v;

	v.cgid = huatuo_task_cgroup_id(task, HUATUO_CGRP_ID(memory_cgrp_id));
	if (!v.cgid)
		return 0;
	v.ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&memcg_rcl_ts, &tid, &v, BPF_ANY);
	return 0;
}

SEC("raw_tp/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(memcg_reclaim_end)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct memcg_reclaim_stat *st;
	struct memcg_rcl_start *v;
	__u64 delta, cgid;

	v = bpf_map_lookup_elem(&memcg_rcl_ts, &tid);
	if (!v)
		return 0;
	delta = bpf_ktime_get_ns() - v->ts;
	cgid = v->cgid;
	bpf_map_delete_elem(&memcg_rcl_ts, &tid);
	if ((__s64)delta < 0)
		return 0;

	st = bpf_map_lookup_elem(&memcg_reclaim, &cgid);
	if (!st) {
		struct memcg_reclaim_stat zero = {};

		bpf_map_update_elem(&memcg_reclaim, &cgid, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&memcg_reclaim, &cgid);
		if (!st)
			return 0;
	}
	__sync_fetch_and_add(&st->count, 1);
	__sync_fetch_and_add(&st->stall_ns, delta);
	return 0;
}
