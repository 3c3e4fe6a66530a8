// SPDX-License-Identifier: GPL-2.0
// Not a program: only its BTF is read, by percpuLayout's test
// (src/features/softirq_tracing_test.ts). Per-CPU variables laid out
// as x86 kernels 6.2..6.14 have them: the preempt count and the CPU number
// inside pcpu_hot, behind anonymous members. (Section offsets in an object
// file are all 0; libbpf assigns them only when it opens the object.)

struct pcpu_hot {
	union {
		struct {
			void *current_task;
			int preempt_count;
			int cpu_number;
		};
		unsigned char pad[64];
	};
};

struct kernel_stat {
	unsigned long irqs_sum;
	unsigned int softirqs[10];
};

struct rq {
	unsigned int nr_running;
};

#define PERCPU __attribute__((section(".data..percpu")))

PERCPU struct pcpu_hot pcpu_hot;
PERCPU struct kernel_stat kstat;
PERCPU struct rq runqueues;
