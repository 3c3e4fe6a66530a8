// SPDX-License-Identifier: GPL-2.0
// Test object for ffi/libbpf_test.ts: one program per attach type this
// build host supports (tracepoint, raw_tp, tp_btf), .rodata tunables set
// from JS before load, and array / per-CPU / hash maps read back from JS;
// hb_min_perf is attached by hand to perf events (attachPerfEvent).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;
const volatile __u64 magic = 0;

// Slots of `counters`.
#define C_GETPPID 0 // sys_enter_getppid hits from target_tgid
#define C_RAW_ENTER 1 // raw sys_enter hits from target_tgid
#define C_SWITCH 2 // any sched_switch
#define C_PERF 3 // perf_event samples
#define C_MAX 4

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// __u32 values on purpose: per-CPU slots are still 8 bytes apart.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} percpu_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} magic_by_tgid SEC(".maps");

// Filled from user space only, to exercise batch lookup.
struct bulk_value {
	__u64 a;
	__u64 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct bulk_value);
} bulk SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tp/syscalls/sys_enter_getppid")
int hb_min_getppid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 zero = 0;
	__u64 m = magic;
	__u32 *pc;

	if (tgid != target_tgid)
		return 0;
	// CO-RE read: the counter only moves if relocations were applied.
	if ((__u32)BPF_CORE_READ(task, tgid) != tgid)
		return 0;
	count(C_GETPPID);
	pc = bpf_map_lookup_elem(&percpu_hits, &zero);
	if (pc)
		*pc += 1; // per-CPU slot: no other writer
	bpf_map_update_elem(&magic_by_tgid, &tgid, &m, BPF_ANY);
	return 0;
}

SEC("raw_tp/sys_enter")
int hb_min_raw_ent(struct bpf_raw_tracepoint_args *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		count(C_RAW_ENTER);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(hb_min_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	count(C_SWITCH);
	return 0;
}

SEC("perf_event")
int hb_min_perf(struct bpf_perf_event_data *ctx)
{
	count(C_PERF);
	return 0;
}
