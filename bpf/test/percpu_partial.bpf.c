// SPDX-License-Identifier: GPL-2.0
// Not a program: only its BTF is read, by percpuLayout's test
// (src/features/softirq_tracing_test.ts). A .data..percpu section
// with the preempt count alone: the CPU number, the runqueues and kstat are
// missing.

__attribute__((section(".data..percpu"))) int __preempt_count;
