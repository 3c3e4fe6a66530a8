/* SPDX-License-Identifier: GPL-2.0 */
/*
 * All-CPU backtrace sampler, shared by hungtask.bpf.c and softlockup.bpf.c
 * (the seed's cpus_stack). The agent attaches <prefix>_cpu_stack to a
 * software cpu-clock perf event on every CPU only while it gathers a report,
 * bumps <prefix>_cpustack_req, and reads one struct cpu_stack_event per CPU
 * (the interrupted context's kernel stack) from <prefix>_cpu_stacks.
 *
 * HUATUO_CPU_STACK_SAMPLER(hungtask) defines the maps and the program.
 */
#ifndef __HUATUO_CPU_STACK_H
#define __HUATUO_CPU_STACK_H

#define CPU_STACK_DEPTH 48

/* One CPU's sample, decoded by src/events/kernel_stacks.ts. */
struct cpu_stack_event {
	__u64 req; /* the request number answered */
	__u32 cpu;
	__u32 pid; /* tid running on that CPU; 0: idle */
	__u32 tgid;
	__s32 len; /* bytes from bpf_get_stack, or -errno; 0: the CPU was in user mode */
	char comm[TASK_COMM_LEN];
	__u64 stack[CPU_STACK_DEPTH]; /* kernel return addresses */
};
HUATUO_RECORD(struct cpu_stack_event, 424);

#define HUATUO_CPU_STACK_SAMPLER(_p)                                              \
	HUATUO_MAP(_p##_cpustack_req, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1);        \
	HUATUO_MAP(_p##_cpustack_done, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, 1); \
	HUATUO_EVENT_RING(_p##_cpu_stacks, 256 * 1024);                            \
                                                                                   \
	SEC("perf_event")                                                          \
	int _p##_cpu_stack(struct bpf_perf_event_data *ctx)                        \
	{                                                                          \
		struct cpu_stack_event *ev;                                        \
		__u64 *req, *done, id;                                             \
		__u32 key = 0;                                                     \
                                                                                   \
		req = bpf_map_lookup_elem(&_p##_cpustack_req, &key);               \
		done = bpf_map_lookup_elem(&_p##_cpustack_done, &key);             \
		if (!req || !done || *req == 0 || *done == *req)                   \
			return 0;                                                  \
		*done = *req; /* one sample per CPU per request */                 \
                                                                                   \
		ev = huatuo_reserve(_p##_cpu_stacks, ev);                          \
		if (!ev)                                                           \
			return 0;                                                  \
		id = bpf_get_current_pid_tgid();                                   \
		ev->req = *req;                                                    \
		ev->cpu = bpf_get_smp_processor_id();                              \
		ev->pid = (__u32)id;                                               \
		ev->tgid = id >> 32;                                               \
		bpf_get_current_comm(ev->comm, sizeof(ev->comm));                  \
		/* The interrupted context's kernel stack (empty in user mode). */ \
		ev->len = bpf_get_stack(ctx, ev->stack, sizeof(ev->stack), 0);     \
		bpf_ringbuf_submit(ev, 0);                                         \
		return 0;                                                          \
	}

#endif /* __HUATUO_CPU_STACK_H */
