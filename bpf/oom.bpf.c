// SPDX-License-Identifier: GPL-2.0
/*
 * oom: the OOM killer chose a victim (global or memory cgroup OOM).
 * oom:mark_victim fires once per kill from __oom_kill_process(), in the
 * context of the task whose allocation hit the OOM (the trigger), so
 * bpf_get_current_task() is the trigger and the tracepoint argument the
 * victim.
 *
 * Program (BTF tracepoint, kernel >= 5.5 with BTF):
 *   tp_btf/mark_victim (struct task_struct *task, uid_t uid)   [6.x signature]
 *
 * Maps (agent contract):
 *   oom_events       RINGBUF 64 KiB of struct oom_event, below
 *   oom_events_lost  PERCPU_ARRAY[1] __u64: records dropped on a full ring.
 */
#include "huatuo.h"

/* enum mm_counter_type (include/linux/mm_types_task.h), stable since 4.x */
#define HUATUO_MM_FILEPAGES 0
#define HUATUO_MM_ANONPAGES 1
#define HUATUO_MM_SHMEMPAGES 3

/*
 * One kill, decoded by src/features/oom/oom.ts. The rss values are the mm
 * counters' approximate global counts, as the kernel's own mark_victim event
 * prints them.
 */
struct oom_event {
	__u32 victim_pid;  /* tgid of the victim */
	__u32 trigger_pid; /* tgid of current */
	char victim_comm[TASK_COMM_LEN];
	char trigger_comm[TASK_COMM_LEN];
	/* memory controller cgroup id: inode of the v1 memory cgroup dir, or the cgroup2 id; 0 if unknown */
	__u64 victim_memcg_id;
	__u64 trigger_memcg_id;
	/* the memory controller's struct cgroup_subsys_state *, a kernel address; 0 if unknown */
	__u64 victim_memcg_css;
	__u64 trigger_memcg_css;
	__u64 total_vm;  /* victim, pages */
	__u64 anon_rss;  /* victim, pages */
	__u64 file_rss;  /* victim, pages */
	__u64 shmem_rss; /* victim, pages */
	__u64 ts;        /* CLOCK_MONOTONIC ns */
	__u32 uid;       /* tracepoint argument */
	__s16 oom_score_adj; /* victim's */
};
HUATUO_RECORD(struct oom_event, 120);

HUATUO_EVENT_RING(oom_events, 64 * 1024);

/* Before 6.2 mm->rss_stat was struct mm_rss_stat { atomic_long_t count[]; }. */
struct mm_rss_stat___old {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___old {
	struct mm_rss_stat___old rss_stat;
} __attribute__((preserve_access_index));

static __always_inline __u64 oom_mm_counter(struct mm_struct *mm, const int idx)
{
	long v;

	if (bpf_core_type_exists(struct mm_rss_stat___old)) {
		struct mm_struct___old *old = (void *)mm;

		v = BPF_CORE_READ(old, rss_stat.count[idx].counter);
	} else {
		v = BPF_CORE_READ(mm, rss_stat[idx].count);
	}
	return v < 0 ? 0 : v;
}

static __always_inline __u64 oom_memcg_css(struct task_struct *task)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cset = BPF_CORE_READ(task, cgroups);
	__u32 id = HUATUO_CGRP_ID(memory_cgrp_id);

	if (!cset || id >= 64)
		return 0;
	if (bpf_core_read(&css, sizeof(css), &cset->subsys[id]))
		return 0;
	return (__u64)css;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(oom_mark_victim, struct task_struct *task, uid_t uid)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	struct oom_event *ev;
	struct mm_struct *mm;

	ev = huatuo_reserve(oom_events, ev);
	if (!ev)
		return 0;
	ev->victim_pid = BPF_CORE_READ(task, tgid);
	ev->trigger_pid = BPF_CORE_READ(cur, tgid);
	BPF_CORE_READ_STR_INTO(&ev->victim_comm, task, comm);
	BPF_CORE_READ_STR_INTO(&ev->trigger_comm, cur, comm);
	ev->victim_memcg_id = huatuo_task_cgroup_id(task, HUATUO_CGRP_ID(memory_cgrp_id));
	ev->trigger_memcg_id = huatuo_task_cgroup_id(cur, HUATUO_CGRP_ID(memory_cgrp_id));
	ev->victim_memcg_css = oom_memcg_css(task);
	ev->trigger_memcg_css = oom_memcg_css(cur);

	mm = BPF_CORE_READ(task, mm);
	if (mm) {
		ev->total_vm = BPF_CORE_READ(mm, total_vm);
		ev->anon_rss = oom_mm_counter(mm, HUATUO_MM_ANONPAGES);
		ev->file_rss = oom_mm_counter(mm, HUATUO_MM_FILEPAGES);
		ev->shmem_rss = oom_mm_counter(mm, HUATUO_MM_SHMEMPAGES);
	} else {
		ev->total_vm = 0;
		ev->anon_rss = 0;
		ev->file_rss = 0;
		ev->shmem_rss = 0;
	}
	ev->ts = bpf_ktime_get_ns();
	ev->uid = uid;
	ev->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}
