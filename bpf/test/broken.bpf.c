// SPDX-License-Identifier: GPL-2.0
// Test object for ffi/libbpf_test.ts: compiles, but hb_broken_prog fails
// the verifier (map value dereferenced without a NULL check) so tests can
// see the verifier log; hb_ok_prog alone loads when the other is disabled.
// A hash map, not an array: since 6.14 the verifier knows that an array
// lookup with a constant in-range key cannot return NULL.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} broken_vals SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int hb_ok_prog(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&broken_vals, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int hb_broken_prog(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&broken_vals, &key);
	__u64 acc = 0;

	// Straight-line work first so the verifier log outgrows small format
	// buffers (tests check that it still arrives whole).
#pragma clang loop unroll(full)
	for (int i = 0; i < 150; i++)
		acc += bpf_get_prandom_u32() ^ i;
	// Deliberately missing `if (v)`: "invalid mem access 'map_value_or_null'".
	__sync_fetch_and_add(v, acc);
	return 0;
}
