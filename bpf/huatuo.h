/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared definitions for the huatuo-bamai BPF programs (bpf/<name>.bpf.c).
 *
 * Every object includes this header exactly once; it brings in vmlinux.h and
 * the libbpf helper headers, defines the GPL license section (define
 * HUATUO_NO_LICENSE before including it to provide your own), the histogram
 * value layouts shared with the TypeScript reader, zone helpers, map
 * declaration macros and the cgroup-id helpers.
 *
 * Contract with the agent: every histogram map value is
 * `struct { __u64 zone[N]; }`; per-CPU maps are summed by the reader.
 */
#ifndef __HUATUO_H
#define __HUATUO_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#ifndef HUATUO_NO_LICENSE
char LICENSE[] SEC("license") = "GPL";
#endif

#define NSEC_PER_USEC 1000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL

#define TASK_COMM_LEN 16
#define PF_KTHREAD 0x00200000 /* include/linux/sched.h */

/* ---- map declaration helpers ------------------------------------------ */

/* HUATUO_MAP(name, BPF_MAP_TYPE_HASH, key_type, value_type, max_entries); */
#define HUATUO_MAP(_name, _type, _key, _value, _max)                            \
	struct {                                                                \
		__uint(type, _type);                                            \
		__uint(max_entries, _max);                                      \
		__type(key, _key);                                              \
		__type(value, _value);                                          \
	} _name SEC(".maps")

/* HUATUO_RINGBUF(name, size_in_bytes); size: power of two, multiple of page */
#define HUATUO_RINGBUF(_name, _bytes)                                           \
	struct {                                                                \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                             \
		__uint(max_entries, _bytes);                                    \
	} _name SEC(".maps")

/* ---- event records: the ring-buffer contract with the agent ------------- */

/*
 * HUATUO_EVENT_RING(name, bytes) declares the ring @name the agent reads and
 * @name##_lost, a per-CPU count of the records dropped because it was full
 * (the agent finds it by that name and sums it).
 */
#define HUATUO_EVENT_RING(_name, _bytes)                                        \
	HUATUO_RINGBUF(_name, _bytes);                                          \
	HUATUO_MAP(_name##_lost, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, 1)

/*
 * HUATUO_RECORD(struct foo_event, size): the record a program emits is part
 * of the agent contract, declared once as a struct. Its size is asserted
 * here; its field offsets are checked against the TypeScript decoder by a
 * test that reads the compiled object's BTF (src/bpf/record_layout_test.ts).
 */
#define HUATUO_RECORD(_type, _size)                                             \
	_Static_assert(sizeof(_type) == (_size), #_type " is part of the agent contract (update its decoder)")

/*
 * ev = huatuo_reserve(ring, ev): room for one *ev in @ring, or NULL when the
 * ring is full, then counted in @ring##_lost. On that cold path it also keeps
 * the record's struct in the object's BTF (a local variable alone does not
 * put it there), for the layout test: one instruction, never on the hot path.
 */
#define huatuo_reserve(_ring, _ev)                                              \
	({                                                                      \
		typeof(_ev) __ev = bpf_ringbuf_reserve(&(_ring), sizeof(*(_ev)), 0); \
		if (!__ev) {                                                    \
			__u32 __k = 0;                                          \
			__u64 *__lost = bpf_map_lookup_elem(&_ring##_lost, &__k); \
                                                                                \
			if (__lost)                                             \
				*__lost += 1; /* per-CPU slot */                \
			asm volatile("" ::"r"(bpf_core_type_id_local(typeof(*(_ev))))); \
		}                                                               \
		__ev;                                                           \
	})

/* ---- histogram values (map value layouts, part of the agent contract) -- */

struct hist4 {
	__u64 zone[4];
};

struct hist6 {
	__u64 zone[6];
};

/*
 * Zone of value @v for ascending upper bounds @b[0..n-1]: zone i holds
 * [b[i-1], b[i]) and zone n holds [b[n-1], inf). @n must be a compile-time
 * constant so the loop is unrolled.
 */
static __always_inline __u32 huatuo_zone(__u64 v, const __u64 *b, const __u32 n)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < n; i++) {
		if (v < b[i])
			return i;
	}
	return n;
}

/* 4 zones split at t0 < t1 < t2: [0,t0) [t0,t1) [t1,t2) [t2,inf) */
static __always_inline __u32 huatuo_zone4(__u64 v, __u64 t0, __u64 t1, __u64 t2)
{
	if (v < t0)
		return 0;
	if (v < t1)
		return 1;
	if (v < t2)
		return 2;
	return 3;
}

/*
 * Add 1 to zone @z of the hist value stored under @key in the (non-per-CPU)
 * hash @map, creating a zeroed entry first. Returns 0, or -1 if the map is
 * full. @hist_type is struct hist4 or struct hist6.
 */
#define HUATUO_HASH_HIST_INC(_map, _key, _hist_type, _z)                        \
	({                                                                      \
		int __ret = -1;                                                 \
		_hist_type *__h = bpf_map_lookup_elem(&(_map), (_key));         \
		if (!__h) {                                                     \
			_hist_type __zero = {};                                 \
			bpf_map_update_elem(&(_map), (_key), &__zero,           \
					    BPF_NOEXIST);                       \
			__h = bpf_map_lookup_elem(&(_map), (_key));             \
		}                                                               \
		if (__h && (_z) < sizeof(__h->zone) / sizeof(__h->zone[0])) {   \
			__sync_fetch_and_add(&__h->zone[(_z)], 1);              \
			__ret = 0;                                              \
		}                                                               \
		__ret;                                                          \
	})

/* ---- cgroup ids --------------------------------------------------------- */

/*
 * Kernels before 5.5 had `union kernfs_node_id id` in struct kernfs_node
 * (ino in the low 32 bits, generation in the high 32 bits); since 5.5 the id
 * is a u64 equal to the inode number on 64-bit hosts. Either way we return the
 * inode number of the cgroup directory in its hierarchy (cgroup v1) or the
 * cgroup2 id (cgroup v2), which is what user space sees with stat(2) /
 * name_to_handle_at(2).
 */
union kernfs_node_id___old {
	struct {
		__u32 ino;
		__u32 generation;
	};
	__u64 id;
} __attribute__((preserve_access_index));

struct kernfs_node___old {
	union kernfs_node_id___old id;
} __attribute__((preserve_access_index));

static __always_inline __u64 huatuo_kn_id(struct kernfs_node *kn)
{
	if (!kn)
		return 0;
	if (bpf_core_type_exists(union kernfs_node_id___old)) {
		struct kernfs_node___old *old = (void *)kn;

		return BPF_CORE_READ(old, id.ino);
	}
	return BPF_CORE_READ(kn, id);
}

static __always_inline __u64 huatuo_cgroup_id(struct cgroup *cgrp)
{
	if (!cgrp)
		return 0;
	return huatuo_kn_id(BPF_CORE_READ(cgrp, kn));
}

static __always_inline __u64 huatuo_css_cgroup_id(struct cgroup_subsys_state *css)
{
	if (!css)
		return 0;
	return huatuo_cgroup_id(BPF_CORE_READ(css, cgroup));
}

/*
 * Cgroup id of @task in the hierarchy of controller @subsys_id (use
 * bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id) etc. so the index
 * is relocated for the running kernel). On cgroup v1 this is the inode number
 * of the task's cgroup directory under /sys/fs/cgroup/<controller>; on v2 the
 * cgroup2 id. Returns 0 if unknown.
 */
static __always_inline __u64 huatuo_task_cgroup_id(struct task_struct *task, __u32 subsys_id)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cset;

	if (subsys_id >= 64) /* enum cgroup_subsys_id is small; reject garbage */
		return 0;
	cset = BPF_CORE_READ(task, cgroups);
	if (!cset)
		return 0;
	if (bpf_core_read(&css, sizeof(css), &cset->subsys[subsys_id]))
		return 0;
	return huatuo_css_cgroup_id(css);
}

#define HUATUO_CGRP_ID(_name) bpf_core_enum_value(enum cgroup_subsys_id, _name)

#endif /* __HUATUO_H */
