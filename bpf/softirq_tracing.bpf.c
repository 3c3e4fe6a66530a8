// SPDX-License-Identifier: GPL-2.0
/*
 * softirq_tracing: softirqs stayed disabled on a CPU longer than a threshold.
 *
 * There is no tracepoint on local_bh_disable()/local_bh_enable(), so the CPU
 * is sampled: a perf_event program on a per-CPU software cpu-clock event (an
 * hrtimer in hard interrupt context, which fires inside bh-disabled sections
 * because those keep hard interrupts on) reads the interrupted context's
 * preempt_count. Its SOFTIRQ_MASK bits (8..15) are non-zero while a softirq
 * handler runs (SOFTIRQ_OFFSET) or softirqs are disabled (local_bh_disable,
 * spin_lock_bh: SOFTIRQ_DISABLE_OFFSET multiples); either way no other softirq
 * can run on that CPU.
 *
 * A section is the run of consecutive samples that see softirqs off with the
 * same thread on the CPU, in the same state (handler running or not), with
 * no context switch of that thread in between (a softirq handler and a
 * bh-disabled region never sleep) and no softirq handler started on the CPU
 * in between: a handler can only start once softirqs are enabled, and a new
 * handler is a new section. The handler count is the per-CPU
 * kstat.softirqs[] the kernel increments before each handler, so no hook
 * on the softirq path is needed. A section starts at its first sample, so
 * offtime (last sample that saw softirqs off - first) is a lower bound,
 * short by at most one sampling period. A CPU with nothing to run takes no
 * cpu-clock samples (idle), and samples are missed while hard interrupts are
 * off; neither breaks a section by itself, the keys above do.
 *
 * When a section ends (first sample that sees softirqs on, another thread,
 * or another section) and lasted >= disabled_threshold, one event is written
 * with the kernel stack captured at the first sample past the threshold, and
 * the thread that was on the CPU. Sections of the idle task (swapper, pid 0)
 * and of ksoftirqd/N, which run softirqs by design, are not reported.
 *
 * preempt_count on x86 is a per-CPU variable (__preempt_count, or
 * pcpu_hot.preempt_count on 6.2..6.14). Typed __ksym + bpf_this_cpu_ptr()
 * needs the symbol in kallsyms, which kernels without CONFIG_KALLSYMS_ALL do
 * not have, so the address is derived instead: the current CPU's runqueue
 * (current->se.cfs_rq->rq, a per-CPU variable `runqueues`) plus the distance
 * between the two variables in the kernel BTF's .data..percpu section, which
 * the agent computes and sets as preempt_count_delta (kstat.softirqs the
 * same way). cpu_number_delta (same for the per-CPU cpu number) checks that
 * derivation against bpf_get_smp_processor_id() until it holds once on a
 * CPU; per-CPU areas never move, so the addresses are kept from then on. A
 * mismatch is counted and the sample ignored.
 *
 * Program:
 *   perf_event  softirq_tracing_sample (attached by the agent to one software
 *               cpu-clock event per CPU)
 *
 * Read-only constants (set by the agent before load):
 *   disabled_threshold   ns (EventTracing.Softirq.DisabledThreshold)
 *   preempt_count_delta  &preempt_count - &runqueues in the per-CPU area
 *   cpu_number_delta     &cpu_number - &runqueues in the per-CPU area
 *   softirq_count_delta  &kstat.softirqs - &runqueues in the per-CPU area
 *
 * Maps (agent contract):
 *   softirq_tracing_events  RINGBUF 256 KiB of struct softirq_tracing_event, below
 *   softirq_tracing_events_lost  PERCPU_ARRAY[1] __u64 (ring full)
 *   softirq_tracing_stats   PERCPU_ARRAY[4] __u64: 0 samples, 1 samples whose
 *                           per-CPU address check failed (the agent reports
 *                           the tracer unsupported when all of them fail),
 *                           2 samples with softirqs off, 3 sections reported
 */
#include "huatuo.h"

#define HUATUO_SOFTIRQ_MASK 0xff00U
#define HUATUO_SOFTIRQ_OFFSET 0x100U
#define STACK_DEPTH 62

#define STAT_SAMPLES 0
#define STAT_BAD_PERCPU 1
#define STAT_OFF 2
#define STAT_REPORTED 3

const volatile __u64 disabled_threshold = 10 * NSEC_PER_MSEC;
const volatile __s64 preempt_count_delta = 0;
const volatile __s64 cpu_number_delta = 0;
const volatile __s64 softirq_count_delta = 0;

#define NR_SOFTIRQS_MAX 10 /* enum softirq vectors, HI..RCU: unchanged since 2.6.37 */

/* One long section, decoded by src/features/softirq_tracing/softirq_tracing.ts. */
struct softirq_tracing_event {
	__u64 offtime;   /* ns */
	__u64 threshold; /* ns */
	__u64 now;       /* CLOCK_MONOTONIC ns */
	__u32 pid;       /* tgid */
	__u32 tid;
	__u32 cpu;
	__u32 stack_bytes; /* valid bytes of stack: bpf_get_stack's result */
	char comm[TASK_COMM_LEN];
	__u32 serving; /* 1: a softirq handler ran; 0: softirqs disabled in task context */
	__u32 pad;
	__u64 stack[STACK_DEPTH]; /* kernel addresses */
};
HUATUO_RECORD(struct softirq_tracing_event, 560);

/* The section being observed on one CPU (and where that CPU's counters are). */
struct section {
	__u64 pc_addr;       /* this CPU's preempt count; 0 = not located yet */
	__u64 softirqs_addr; /* this CPU's kstat.softirqs[] */
	__u64 start;         /* ns; 0 = none */
	__u64 last;          /* last sample that saw it */
	__u64 seq;           /* softirq handlers run on the CPU when it was seen */
	__u64 switches;      /* context switches of the thread when it was seen */
	__u32 tid;
	__u32 pid;
	__u32 serving;
	__u32 ignored; /* idle task or ksoftirqd */
	__u32 stack_bytes;
	__u32 have_stack;
	char comm[TASK_COMM_LEN];
	__u64 stack[STACK_DEPTH];
};

HUATUO_EVENT_RING(softirq_tracing_events, 256 * 1024);
HUATUO_MAP(softirq_tracing_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, 4);
HUATUO_MAP(softirq_tracing_sections, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct section, 1);

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&softirq_tracing_stats, &idx);

	if (v)
		*v += 1; /* per-CPU slot */
}

/* struct rq of this CPU: the running task's cfs_rq belongs to it. */
static __always_inline __u64 this_rq(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct cfs_rq *cfs;

	if (!bpf_core_field_exists(t->se.cfs_rq))
		return 0;
	cfs = BPF_CORE_READ(t, se.cfs_rq);
	if (!cfs)
		return 0;
	return (__u64)BPF_CORE_READ(cfs, rq);
}

/*
 * Finds this CPU's preempt count and kstat.softirqs addresses from its
 * runqueue, after checking the derivation against the CPU number; 0 if it
 * does not hold. Per-CPU areas never move, so the caller keeps the result.
 */
static __always_inline int locate_percpu(struct section *s)
{
	__u64 rq = this_rq();
	__u32 cpu = 0;

	if (!rq || !preempt_count_delta || !cpu_number_delta || !softirq_count_delta)
		return -1;
	if (bpf_probe_read_kernel(&cpu, sizeof(cpu), (void *)(rq + cpu_number_delta)) ||
	    cpu != bpf_get_smp_processor_id())
		return -1;
	s->pc_addr = rq + preempt_count_delta;
	s->softirqs_addr = rq + softirq_count_delta;
	return 0;
}

/* Softirq handlers run on this CPU so far: the sum of kstat.softirqs[]. */
static __always_inline __u64 softirq_handlers(__u64 addr)
{
	__u32 c[NR_SOFTIRQS_MAX] = {};
	__u64 sum = 0;
	int i;

	if (bpf_probe_read_kernel(c, sizeof(c), (void *)addr))
		return 0;
#pragma unroll
	for (i = 0; i < NR_SOFTIRQS_MAX; i++)
		sum += c[i];
	return sum;
}

static __always_inline int is_ksoftirqd(const char *comm)
{
	return comm[0] == 'k' && comm[1] == 's' && comm[2] == 'o' && comm[3] == 'f' && comm[4] == 't' &&
	       comm[5] == 'i' && comm[6] == 'r' && comm[7] == 'q' && comm[8] == 'd' && comm[9] == '/';
}

/* Ends the section on this CPU, reporting it if it lasted at least the threshold. */
static __always_inline void close_section(struct section *s, __u64 now)
{
	struct softirq_tracing_event *ev;
	__u64 off = s->last - s->start;

	if (!s->start)
		return;
	s->start = 0;
	if (s->ignored || off < disabled_threshold)
		return;
	ev = huatuo_reserve(softirq_tracing_events, ev);
	if (!ev)
		return;
	ev->offtime = off;
	ev->threshold = disabled_threshold;
	ev->now = now;
	ev->pid = s->pid;
	ev->tid = s->tid;
	ev->cpu = bpf_get_smp_processor_id();
	ev->serving = s->serving;
	ev->pad = 0;
	__builtin_memcpy(ev->comm, s->comm, sizeof(ev->comm));
	if (s->have_stack && s->stack_bytes <= sizeof(ev->stack)) {
		ev->stack_bytes = s->stack_bytes;
		__builtin_memcpy(ev->stack, s->stack, sizeof(ev->stack));
	} else {
		ev->stack_bytes = 0;
		__builtin_memset(ev->stack, 0, sizeof(ev->stack));
	}
	bpf_ringbuf_submit(ev, 0);
	stat_inc(STAT_REPORTED);
}

SEC("perf_event")
int softirq_tracing_sample(struct bpf_perf_event_data *ctx)
{
	struct task_struct *task;
	__u32 zero = 0, pc = 0, serving, tid;
	__u64 now, seq, switches, pid_tgid;
	struct section *s;
	long n;

	stat_inc(STAT_SAMPLES);
	s = bpf_map_lookup_elem(&softirq_tracing_sections, &zero);
	if (!s)
		return 0;
	if (!s->pc_addr && locate_percpu(s)) {
		stat_inc(STAT_BAD_PERCPU);
		return 0;
	}
	if (bpf_probe_read_kernel(&pc, sizeof(pc), (void *)s->pc_addr))
		return 0;
	now = bpf_ktime_get_ns();
	if (!(pc & HUATUO_SOFTIRQ_MASK)) {
		close_section(s, now);
		return 0;
	}
	stat_inc(STAT_OFF);

	serving = (pc & HUATUO_SOFTIRQ_OFFSET) ? 1 : 0;
	seq = softirq_handlers(s->softirqs_addr);
	task = (struct task_struct *)bpf_get_current_task();
	switches = BPF_CORE_READ(task, nvcsw) + BPF_CORE_READ(task, nivcsw);
	pid_tgid = bpf_get_current_pid_tgid();
	tid = (__u32)pid_tgid;
	if (s->start && s->tid == tid && s->serving == serving && s->seq == seq && s->switches == switches) {
		s->last = now;
	} else {
		close_section(s, now);
		s->start = now;
		s->last = now;
		s->seq = seq;
		s->switches = switches;
		s->tid = tid;
		s->pid = pid_tgid >> 32;
		s->serving = serving;
		s->have_stack = 0;
		s->stack_bytes = 0;
		bpf_get_current_comm(s->comm, sizeof(s->comm));
		s->ignored = tid == 0 || is_ksoftirqd(s->comm);
	}
	/* The stack of the first sample past the threshold: what keeps softirqs off that long. */
	if (!s->have_stack && !s->ignored && now - s->start >= disabled_threshold) {
		n = bpf_get_stack(ctx, s->stack, sizeof(s->stack), 0);
		s->stack_bytes = n > 0 ? n : 0;
		s->have_stack = 1;
	}
	return 0;
}
