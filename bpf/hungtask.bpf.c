// SPDX-License-Identifier: GPL-2.0
/*
 * hungtask: the hung task detector (khungtaskd, CONFIG_DETECT_HUNG_TASK)
 * found a task in D state that has not been scheduled for
 * kernel.hung_task_timeout_secs. sched:sched_process_hang fires once per
 * detection, i.e. again at every check interval while the task stays hung
 * (regardless of kernel.hung_task_warnings, which only limits the log).
 *
 * Programs:
 *   raw_tp/sched_process_hang (struct task_struct *): count + report.
 *   perf_event hungtask_cpu_stack: the agent's all-CPU backtrace sampler
 *     (src/events/kernel_stacks.ts). The agent attaches it to one software
 *     cpu-clock perf event per online CPU for a moment when it builds a
 *     report; it records one kernel stack per CPU per request.
 *
 * Maps (agent contract):
 *   hungtask_count   ARRAY[1] key __u32 0, value __u64 (cumulative detections)
 *   hungtask_events  RINGBUF 256 KiB of struct hungtask_event, below.
 *                    Events are dropped when the ring is full; the counter
 *                    still counts them. BPF_MAP_TYPE_RINGBUF needs kernel >= 5.8.
 *   hungtask_events_lost    PERCPU_ARRAY[1] __u64: records lost on a full ring
 *   hungtask_cpustack_req   ARRAY[1] __u64: the current request number (0: none)
 *   hungtask_cpustack_done  PERCPU_ARRAY[1] __u64: request last answered per CPU
 *   hungtask_cpu_stacks     RINGBUF 256 KiB of struct cpu_stack_event (cpu_stack.h)
 */
#include "huatuo.h"
#include "cpu_stack.h"

/* One detection, decoded by src/features/hungtask/hungtask.ts. */
struct hungtask_event {
	__u32 pid; /* kernel tid of the hung task */
	char comm[TASK_COMM_LEN];
	__u64 ts; /* CLOCK_MONOTONIC ns (bpf_ktime_get_ns) */
};
HUATUO_RECORD(struct hungtask_event, 32);

HUATUO_MAP(hungtask_count, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1);
HUATUO_EVENT_RING(hungtask_events, 256 * 1024);

SEC("raw_tp/sched_process_hang")
int BPF_PROG(hungtask_hang, struct task_struct *task)
{
	struct hungtask_event *ev;
	__u32 key = 0;
	__u64 *cnt;

	cnt = bpf_map_lookup_elem(&hungtask_count, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);

	ev = huatuo_reserve(hungtask_events, ev);
	if (!ev)
		return 0;
	ev->pid = BPF_CORE_READ(task, pid);
	BPF_CORE_READ_STR_INTO(&ev->comm, task, comm);
	ev->ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

/* ---- all-CPU backtrace sampler (bpf/cpu_stack.h) -------------------- */

HUATUO_CPU_STACK_SAMPLER(hungtask)
