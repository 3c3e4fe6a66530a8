// SPDX-License-Identifier: GPL-2.0
/*
 * memory_free: time tasks stall in the page allocator slow path.
 *
 *   allocpages: global direct reclaim (try_to_free_pages), per task
 *               vmscan:mm_vmscan_direct_reclaim_begin -> _end
 *               (memcg limit reclaim has its own tracepoints, see
 *               memory_reclaim.bpf.c, and is not counted here)
 *   compaction: direct compaction, per task, summed over the zones compacted
 *               compaction:mm_compaction_begin -> mm_compaction_end, counted
 *               only when the compact_control is a direct compaction
 *               (cc->direct_compaction): kcompactd, proactive compaction and
 *               writes to /proc/sys/vm/compact_memory are excluded.
 *
 * Programs (raw tracepoints):
 *   raw_tp/mm_vmscan_direct_reclaim_begin, raw_tp/mm_vmscan_direct_reclaim_end,
 *   raw_tp/mm_compaction_begin, raw_tp/mm_compaction_end
 *
 * Maps (agent contract):
 *   memory_free   PERCPU_ARRAY[1] key __u32 0, value struct memory_free_stat
 *                 { __u64 allocpages_ns; __u64 compaction_ns;
 *                   __u64 allocpages_cnt; __u64 compaction_cnt; }
 *                 cumulative ns / number of completed stalls, summed over CPUs.
 *   mf_reclaim_ts LRU_HASH[10240] key __u32 tid, value __u64 (internal)
 *   mf_compact_ts LRU_HASH[10240] key __u32 tid, value __u64 (internal)
 *
 * Kernel notes: mm_compaction_begin/end receive the struct compact_control
 * since 5.18 (before: pfn scalars); on older kernels the program falls back to
 * "current is not a kernel thread", which also counts compact_memory writes.
 */
#include "huatuo.h"

extern int LINUX_KERNEL_VERSION __kconfig;

struct memory_free_stat {
	__u64 allocpages_ns;
	__u64 compaction_ns;
	__u64 allocpages_cnt;
	__u64 compaction_cnt;
};

HUATUO_MAP(memory_free, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct memory_free_stat, 1);
HUATUO_MAP(mf_reclaim_ts, BPF_MAP_TYPE_LRU_HASH, __u32, __u64, 10240);
HUATUO_MAP(mf_compact_ts, BPF_MAP_TYPE_LRU_HASH, __u32, __u64, 10240);

static __always_inline void stall_begin(void *map)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 ts = bpf_ktime_get_ns();

	bpf_map_update_elem(map, &tid, &ts, BPF_ANY);
}

/* Returns the stall in ns, or 0 if its begin was not seen. */
static __always_inline __u64 stall_end(void *map)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *tsp, delta;

	tsp = bpf_map_lookup_elem(map, &tid);
	if (!tsp)
		return 0;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(map, &tid);
	if ((__s64)delta <= 0)
		return 0;
	return delta;
}

/* Adds one finished stall of @delta ns (0: none) to the per-CPU totals. */
static __always_inline void add_stall(__u64 delta, bool compaction)
{
	struct memory_free_stat *st;
	__u32 key = 0;

	if (!delta)
		return;
	st = bpf_map_lookup_elem(&memory_free, &key);
	if (!st)
		return;
	if (compaction) {
		__sync_fetch_and_add(&st->compaction_ns, delta);
		__sync_fetch_and_add(&st->compaction_cnt, 1);
	} else {
		__sync_fetch_and_add(&st->allocpages_ns, delta);
		__sync_fetch_and_add(&st->allocpages_cnt, 1);
	}
}

SEC("raw_tp/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(mf_reclaim_begin)
{
	stall_begin(&mf_reclaim_ts);
	return 0;
}

SEC("raw_tp/mm_vmscan_direct_reclaim_end")
int BPF_PROG(mf_reclaim_end)
{
	add_stall(stall_end(&mf_reclaim_ts), false);
	return 0;
}

static __always_inline bool is_direct_compaction(__u64 *ctx)
{
	struct task_struct *task;

	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(5, 18, 0)) {
		struct compact_control *cc = (void *)ctx[0];

		return BPF_CORE_READ(cc, direct_compaction);
	}
	task = (struct task_struct *)bpf_get_current_task();
	return !(BPF_CORE_READ(task, flags) & PF_KTHREAD);
}

SEC("raw_tp/mm_compaction_begin")
int mf_compact_begin(__u64 *ctx)
{
	if (is_direct_compaction(ctx))
		stall_begin(&mf_compact_ts);
	return 0;
}

SEC("raw_tp/mm_compaction_end")
int mf_compact_end(__u64 *ctx)
{
	add_stall(stall_end(&mf_compact_ts), true);
	return 0;
}
