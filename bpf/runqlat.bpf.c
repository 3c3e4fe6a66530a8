// SPDX-License-Identifier: GPL-2.0
/*
 * runqlat: run-queue latency, the time from a task becoming runnable
 * (wakeup, wakeup of a new task, or preemption while still TASK_RUNNING) to
 * the moment it is switched in.
 *
 * Two implementations of the same three hooks share the maps; the agent loads
 * the first set that the kernel accepts:
 *   tp_btf/sched_wakeup, tp_btf/sched_wakeup_new, tp_btf/sched_switch
 *     (runqlat_btf_*; kernel BTF and the 5.18+ sched_switch prev_state
 *     argument): task fields are plain BTF loads, no probe-read helper calls,
 *     ~30 % cheaper per context switch (bench/RESULTS.md).
 *   raw_tp/sched_wakeup, raw_tp/sched_wakeup_new, raw_tp/sched_switch
 *     (runqlat_*; kernel >= 4.17): fields read with BPF_CORE_READ.
 *
 * Maps (agent contract):
 *   runqlat_host    PERCPU_ARRAY[1]  key __u32 0       value struct hist4
 *   runqlat_cgroup  HASH[10240]      key __u64 cgid    value struct hist4
 *                   cgid: cpu-controller cgroup id (kernfs id; v1: inode of the
 *                   cgroup dir under /sys/fs/cgroup/cpu,...) of the task being
 *                   switched in. Entries are never removed here; the agent may
 *                   delete entries of cgroups that went away.
 *   runqlat_start   LRU_HASH[65536]  key __u32 tid     value __u64 ktime ns (internal)
 *
 * Zones: 0 [0,10ms) 1 [10,20ms) 2 [20,50ms) 3 [50ms,inf).
 */
#include "huatuo.h"

#define TASK_RUNNING 0

HUATUO_MAP(runqlat_start, BPF_MAP_TYPE_LRU_HASH, __u32, __u64, 65536);
HUATUO_MAP(runqlat_host, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct hist4, 1);
HUATUO_MAP(runqlat_cgroup, BPF_MAP_TYPE_HASH, __u64, struct hist4, 10240);

/* task_struct::state was renamed __state (and became unsigned int) in 5.14. */
struct task_struct___o {
	volatile long int state;
} __attribute__((preserve_access_index));

struct task_struct___x {
	unsigned int __state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *task)
{
	struct task_struct___x *t = (void *)task;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___o *)task, state);
}

/* Marks @pid as queued now; the idle task (pid 0) is never counted. */
static __always_inline int enqueue_pid(__u32 pid)
{
	__u64 ts;

	if (!pid)
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&runqlat_start, &pid, &ts, BPF_ANY);
	return 0;
}

static __always_inline int enqueue(struct task_struct *p)
{
	return enqueue_pid(BPF_CORE_READ(p, pid));
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(runqlat_wakeup, struct task_struct *p)
{
	return enqueue(p);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(runqlat_wakeup_new, struct task_struct *p)
{
	return enqueue(p);
}

/* Counts a switch-in of @pid after its run-queue wait; @cgid 0 = unknown. */
static __always_inline void account(__u32 pid, __u64 cgid)
{
	__u32 key = 0, z;
	__u64 *tsp, delta;
	struct hist4 *h;

	tsp = bpf_map_lookup_elem(&runqlat_start, &pid);
	if (!tsp)
		return;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&runqlat_start, &pid);
	if ((__s64)delta < 0)
		return;

	z = huatuo_zone4(delta, 10 * NSEC_PER_MSEC, 20 * NSEC_PER_MSEC, 50 * NSEC_PER_MSEC);
	h = bpf_map_lookup_elem(&runqlat_host, &key);
	if (h)
		h->zone[z & 3]++; /* per-CPU slot; sched_switch does not nest */
	if (cgid)
		HUATUO_HASH_HIST_INC(runqlat_cgroup, &cgid, struct hist4, z);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(runqlat_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 pid;

	/* A preempted task stays runnable: it is back on the run queue now. */
	if (task_state(prev) == TASK_RUNNING)
		enqueue(prev);

	pid = BPF_CORE_READ(next, pid);
	if (pid)
		account(pid, huatuo_task_cgroup_id(next, HUATUO_CGRP_ID(cpu_cgrp_id)));
	return 0;
}

/* ---- tp_btf implementation: direct BTF loads instead of probe reads ---- */

SEC("tp_btf/sched_wakeup")
int BPF_PROG(runqlat_btf_wakeup, struct task_struct *p)
{
	return enqueue_pid(p->pid);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(runqlat_btf_wakeup_new, struct task_struct *p)
{
	return enqueue_pid(p->pid);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(runqlat_btf_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct cgroup_subsys_state *css;
	__u64 cgid = 0;
	__u32 pid;

	/* Preempted, or switched out while still runnable (cond_resched): queued again. */
	if (preempt || prev_state == TASK_RUNNING)
		enqueue_pid(prev->pid);

	pid = next->pid;
	if (!pid)
		return 0;
	css = next->cgroups->subsys[HUATUO_CGRP_ID(cpu_cgrp_id) & 63];
	if (css)
		cgid = css->cgroup->kn->id;
	account(pid, cgid);
	return 0;
}
