// SPDX-License-Identifier: GPL-2.0
// Synthetic high-rate event producer for ffi/ringbuf_test.ts,
// ffi/perfbuf_test.ts and bench/buffers.ts. Every getppid() made by
// target_tgid emits events_per_call fixed-size records (struct flood_event,
// via bpf_loop) either into the ring buffer flood_rb (program flood_ringbuf;
// flood_rb_small with small_ring) or into the perf event array flood_pb
// (program flood_perfbuf); the test or benchmark picks one with setAutoload.
//
// seq is taken from one global counter (flood_seq, in .bss), so the records
// of a run carry every value 0..produced-1 exactly once and, per CPU, in
// increasing order: a consumer can check for loss, duplication and order.
// A record that cannot be written (ring full; for the perf buffer also no fd
// for this CPU in flood_pb) is counted in the per-CPU flood_lost[0], so
// consumed + lost (+ discarded) == produced (== flood_seq) at the end.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;
// When non-zero, only this thread of target_tgid counts: `deno test
// --parallel` runs test modules as threads of one process, and another
// module's getppid() calls must not feed this one's records.
const volatile __u32 target_tid = 0;
const volatile __u32 events_per_call = 1;
// Write into flood_rb_small (one page) instead of flood_rb: overflow tests.
const volatile bool small_ring = false;
// Ring buffer only: discard (bpf_ringbuf_discard) every record whose seq is a
// multiple of discard_every (0: none); readers must skip them.
const volatile __u32 discard_every = 0;
// payload = seq ^ payload_xor, so a consumer can check every record's body.
const volatile __u64 payload_xor = 0x5eed5eed5eed5eedULL;

// 32 bytes; the layout is read by the tests and the benchmark.
struct flood_event {
	__u64 seq;
	__u64 ts;
	__u32 cpu;
	__u32 pid;
	__u64 payload;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} flood_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} flood_rb_small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} flood_pb SEC(".maps");

// Records that could not be written, per CPU (slot 0).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flood_lost SEC(".maps");

// The same count for flood_rb_small under the `<ring map>_lost` name that
// RingBufferReader finds on its own (ffi/ringbuf.ts).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flood_rb_small_lost SEC(".maps");

__u64 flood_seq = 0;

static __always_inline void fill(struct flood_event *e, __u32 tgid)
{
	__u64 seq = __sync_fetch_and_add(&flood_seq, 1);

	e->seq = seq;
	e->ts = bpf_ktime_get_ns();
	e->cpu = bpf_get_smp_processor_id();
	e->pid = tgid;
	e->payload = seq ^ payload_xor;
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&flood_lost, &zero);

	if (v)
		*v += 1; // per-CPU slot: no concurrent writer
	if (small_ring) {
		v = bpf_map_lookup_elem(&flood_rb_small_lost, &zero);
		if (v)
			*v += 1;
	}
}

struct loop_ctx {
	void *ctx;
	__u32 tgid;
};

static long emit_ringbuf(__u32 index, void *data)
{
	struct loop_ctx *lc = data;
	struct flood_event *e;

	if (small_ring)
		e = bpf_ringbuf_reserve(&flood_rb_small, sizeof(*e), 0);
	else
		e = bpf_ringbuf_reserve(&flood_rb, sizeof(*e), 0);
	if (!e) {
		// The seq is still taken, so produced == flood_seq counts it.
		__sync_fetch_and_add(&flood_seq, 1);
		count_lost();
		return 0;
	}
	fill(e, lc->tgid);
	// Readers poll on a timer: never wake anyone.
	if (discard_every && e->seq % discard_every == 0)
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
	else
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

static long emit_perfbuf(__u32 index, void *data)
{
	struct loop_ctx *lc = data;
	struct flood_event e;

	fill(&e, lc->tgid);
	if (bpf_perf_event_output(lc->ctx, &flood_pb, BPF_F_CURRENT_CPU, &e, sizeof(e)) < 0)
		count_lost();
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int flood_ringbuf(void *ctx)
{
	struct loop_ctx lc = { .ctx = ctx };
	__u64 id = bpf_get_current_pid_tgid();

	lc.tgid = id >> 32;
	if (lc.tgid != target_tgid || (target_tid && (__u32)id != target_tid))
		return 0;
	bpf_loop(events_per_call, emit_ringbuf, &lc, 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int flood_perfbuf(void *ctx)
{
	struct loop_ctx lc = { .ctx = ctx };
	__u64 id = bpf_get_current_pid_tgid();

	lc.tgid = id >> 32;
	if (lc.tgid != target_tgid || (target_tid && (__u32)id != target_tid))
		return 0;
	bpf_loop(events_per_call, emit_perfbuf, &lc, 0);
	return 0;
}
