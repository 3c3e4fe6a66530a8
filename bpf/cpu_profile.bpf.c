// SPDX-License-Identifier: GPL-2.0
/*
 * cpu_profile: on-CPU sampling profiler (AutoTracing's flame graphs).
 *
 * The agent opens one perf event per online CPU (software cpu-clock, or
 * hardware cycles where a PMU exists; freq=1, sample_freq=F) and attaches
 * cpu_profile_sample to each. Every sample records the interrupted task's
 * kernel and user stacks in profile_stacks and adds 1 to profile_counts under
 * {tgid, kernel stack id, user stack id, process comm}: aggregation happens
 * here, nothing per sample goes to user space. src/profile/cpu_profiler.ts
 * reads both maps after detaching and symbolizes.
 *
 * User stacks are walked through frame pointers (bpf_get_stackid): code built
 * without them yields short user stacks (the leaf and a few callers).
 *
 * Scope, set in .rodata before load: host-wide (both ids 0), or one
 * container, whose tasks must match every id given: the cgroup2 id
 * (bpf_get_current_cgroup_id) and/or the inode of the task's v1 cpu
 * controller cgroup (v1-only containers on hybrid hosts).
 *
 * Maps (agent contract):
 *   profile_counts  HASH struct profile_key -> __u64 samples
 *   profile_stacks  STACK_TRACE: id -> PROFILE_STACK_DEPTH return addresses
 *   profile_lost    PERCPU_ARRAY[PROFILE_LOST_SLOTS] __u64, by cause below
 */
#include "huatuo.h"

#define PROFILE_STACK_DEPTH 127 /* PERF_MAX_STACK_DEPTH */

/* profile_lost slots: why a sample was dropped. */
#define PROFILE_LOST_COUNTS 0 /* profile_counts full */
#define PROFILE_LOST_STACKS 1 /* profile_stacks full or a bucket collision */
#define PROFILE_LOST_SLOTS 2

#define EFAULT 14
#define EEXIST 17
#define ENOMEM 12

const volatile __u64 target_cgroup2_id = 0;
const volatile __u64 target_cpu_cgroup_ino = 0;
/* Samples of the idle task (pid 0) are dropped unless this is set (like bcc's profile -I). */
const volatile bool include_idle = false;

/* Key of profile_counts, decoded by src/profile/cpu_profiler.ts. */
struct profile_key {
	__u32 tgid;
	__s32 kernel_stack_id; /* -1: no kernel stack (sampled in user mode) */
	__s32 user_stack_id;   /* -1: no user stack (kernel thread) */
	char comm[TASK_COMM_LEN]; /* the thread group leader's */
};
HUATUO_RECORD(struct profile_key, 28);

/* Sized by the agent before load from the expected sample count. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PROFILE_STACK_DEPTH * sizeof(__u64));
} profile_stacks SEC(".maps");

HUATUO_MAP(profile_counts, BPF_MAP_TYPE_HASH, struct profile_key, __u64, 16384);
HUATUO_MAP(profile_lost, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, PROFILE_LOST_SLOTS);

static __always_inline void profile_lose(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&profile_lost, &slot);

	if (n)
		*n += 1; /* per-CPU slot */
}

/*
 * A stack id, or -1 when the task has no stack of that kind here (-EFAULT:
 * user mode has no kernel part, a kernel thread no user part); other errors
 * (map full, bucket taken by another stack) lose the sample: -2.
 */
static __always_inline __s32 profile_stack(struct bpf_perf_event_data *ctx, __u64 flags)
{
	long id = bpf_get_stackid(ctx, &profile_stacks, flags);

	if (id >= 0)
		return id;
	return id == -EFAULT ? -1 : -2;
}

static __always_inline bool profile_in_scope(struct task_struct *task)
{
	if (target_cgroup2_id && bpf_get_current_cgroup_id() != target_cgroup2_id)
		return false;
	if (target_cpu_cgroup_ino &&
	    huatuo_task_cgroup_id(task, HUATUO_CGRP_ID(cpu_cgrp_id)) != target_cpu_cgroup_ino)
		return false;
	return true;
}

SEC("perf_event")
int cpu_profile_sample(struct bpf_perf_event_data *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct profile_key key = {};
	__u64 id = bpf_get_current_pid_tgid();
	__u64 one = 1, *n;

	if ((__u32)id == 0 && !include_idle)
		return 0;
	if (!profile_in_scope(task))
		return 0;

	key.tgid = id >> 32;
	key.kernel_stack_id = profile_stack(ctx, 0);
	key.user_stack_id = profile_stack(ctx, BPF_F_USER_STACK);
	if (key.kernel_stack_id == -2 || key.user_stack_id == -2) {
		profile_lose(PROFILE_LOST_STACKS);
		return 0;
	}
	BPF_CORE_READ_STR_INTO(&key.comm, task, group_leader, comm);

	n = bpf_map_lookup_elem(&profile_counts, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	/* Another CPU may create the key meanwhile: then add to its entry. */
	if (bpf_map_update_elem(&profile_counts, &key, &one, BPF_NOEXIST) == 0)
		return 0;
	n = bpf_map_lookup_elem(&profile_counts, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		profile_lose(PROFILE_LOST_COUNTS);
	return 0;
}
