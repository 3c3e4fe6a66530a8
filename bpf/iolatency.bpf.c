// SPDX-License-Identifier: GPL-2.0
/*
 * iolatency: block request latency per disk and per (blkio/io cgroup, disk).
 *
 *   q2c  request queued/created -> completed (whole life of the request)
 *   d2c  request issued to the driver -> completed (device + driver time)
 *
 * Programs (raw tracepoints; in-flight requests are keyed by struct request *):
 *   raw_tp/block_io_start    (iolat_io_start) kernel >= 6.5 only: request
 *                            allocated for a bio (blk_account_io_start). The
 *                            loader must disable autoload of this program when
 *                            the tracepoint is missing (no
 *                            /sys/kernel/tracing/events/block/block_io_start,
 *                            no btf_trace_block_io_start in kernel BTF); the
 *                            other programs do not depend on it.
 *   raw_tp/block_rq_insert   (iolat_insert)   request inserted into the
 *                            scheduler / software queue
 *   raw_tp/block_rq_issue    (iolat_issue)    request handed to the driver
 *   raw_tp/block_rq_complete (iolat_complete) request (fully) completed
 *
 * q2c start, in order of preference:
 *   1. rq->start_time_ns (CO-RE, when the field exists): set at request
 *      allocation whenever the queue has iostats on, an I/O scheduler, or
 *      blk-stat users; used only
 *      when it is later than the previous completion of the same struct
 *      request (the kernel can leave a stale value from an earlier life);
 *   2. the first of block_io_start / block_rq_insert seen for the request;
 *   3. the issue time, for requests issued directly without an insert (e.g.
 *      blk_mq_try_issue_directly on queues without a scheduler).
 * d2c start: the last block_rq_issue (a requeued request is re-issued).
 * Partial completions (nr_bytes < remaining bytes) are ignored; the request is
 * measured when its last byte completes.
 *
 * Maps (agent contract):
 *   iolat_disk    HASH[4096]   key struct iolat_disk_key { __u32 dev; __u32 kind; }
 *                              value struct hist6
 *   iolat_cgroup  HASH[10240]  key struct iolat_cg_key { __u64 cgid; __u32 dev; __u32 kind; }
 *                              value struct hist6
 *   iolat_start   LRU_HASH[16384] key __u64 (struct request *), value struct
 *                              iolat_rq (internal; one entry per request
 *                              struct, kept across its lives)
 *   dev:  dev_t of the whole disk the request was queued to (rq->q->disk,
 *         or rq->rq_disk on older kernels, chosen by CO-RE), in the kernel's
 *         internal encoding MKDEV(major, minor) = (major << 20) | minor, built from
 *         gendisk->major / gendisk->first_minor: the same value the block
 *         tracepoints print as "major,minor". Partitions are reported as their
 *         whole disk (requests belong to the disk's queue).
 *   kind: 0 = q2c, 1 = d2c.
 *   cgid: the blkio (v1) / io (v2) cgroup the request's first bio is charged
 *         to (bio->bi_blkg->blkcg when CONFIG_BLK_CGROUP provides
 *         bio->bi_blkg, checked by CO-RE): the issuing
 *         task's io cgroup, or on cgroup v2 the page owner's cgroup for
 *         writeback. Without it (no bio, no blkcg): the io cgroup of the task
 *         current at block_io_start/insert time (or at issue when the request
 *         was issued directly). Kernfs id as in huatuo.h: v1 = inode of the
 *         cgroup dir under /sys/fs/cgroup/blkio, v2 = cgroup2 id.
 *
 * Zones: 0 [20,30ms) 1 [30,50ms) 2 [50,100ms) 3 [100,200ms) 4 [200,400ms)
 *        5 [400ms,inf); latencies below 20 ms are not counted.
 *
 * Disk freeze: there is no tracepoint for request queue freezing
 * (blk_freeze_queue_start / blk_mq_freeze_queue / blk_mq_unfreeze_queue have
 * none, nor does blk_mq_quiesce_queue; the block trace system only has bio/rq
 * events). The only freeze events are cgroup:cgroup_freeze/unfreeze (the
 * cgroup freezer, unrelated to disks). Counting disk freezes would need a
 * kprobe/fentry on blk_freeze_queue_start, which this agent does not use;
 * iolatency_blkdisk_freeze therefore cannot be produced from tracepoints.
 *
 * Kernel notes: block_rq_insert/issue took (struct request_queue *, struct
 * request *) before 5.11 and (struct request *) since; handled with
 * LINUX_KERNEL_VERSION (a .kconfig extern: libbpf fills it and the verifier
 * prunes the dead branch, so the ctx[1] access does not exceed the 1-argument
 * tracepoint on new kernels). block_rq_complete is (rq, error, nr_bytes) since 4.x.
 * Requests merged away after insert never complete; their queue stamp is
 * overwritten by the next life's block_io_start/insert, and only survives on
 * kernels without block_io_start when the recycled request is issued directly
 * without insert (no scheduler, so no merges: practically never).
 * Not covered: time a bio waits for a free tag before its request exists
 * (blktrace's Q->G); q2c starts at request allocation.
 */
#include "huatuo.h"

extern int LINUX_KERNEL_VERSION __kconfig;

#define IOLAT_Q2C 0
#define IOLAT_D2C 1

#define RQ_F_IO_START 1 /* q_ns comes from block_io_start of this request */

struct iolat_disk_key {
	__u32 dev;
	__u32 kind;
};

struct iolat_cg_key {
	__u64 cgid;
	__u32 dev;
	__u32 kind;
};

struct iolat_rq {
	__u64 q_ns;    /* queue/create time of the current life, 0 = none */
	__u64 d_ns;    /* issue time of the current life, 0 = not issued */
	__u64 cgid;    /* io cgroup of the current life */
	__u64 done_ns; /* completion time of the previous life, 0 = unknown */
	__u32 flags;   /* RQ_F_* */
	__u32 _pad;
};

HUATUO_MAP(iolat_start, BPF_MAP_TYPE_LRU_HASH, __u64, struct iolat_rq, 16384);
HUATUO_MAP(iolat_disk, BPF_MAP_TYPE_HASH, struct iolat_disk_key, struct hist6, 4096);
HUATUO_MAP(iolat_cgroup, BPF_MAP_TYPE_HASH, struct iolat_cg_key, struct hist6, 10240);

/* rq->rq_disk was removed in 5.17; since then the disk is rq->q->disk (5.15+). */
struct request_queue___x {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request___x {
	struct request_queue___x *q;
	struct gendisk *rq_disk;
	__u64 start_time_ns;
} __attribute__((preserve_access_index));

static __always_inline struct gendisk *rq_disk(struct request *rq)
{
	struct request___x *r = (void *)rq;

	if (bpf_core_field_exists(r->rq_disk))
		return BPF_CORE_READ(r, rq_disk);
	return BPF_CORE_READ(r, q, disk);
}

static __always_inline __u64 rq_alloc_ns(struct request *rq)
{
	struct request___x *r = (void *)rq;

	if (bpf_core_field_exists(r->start_time_ns))
		return BPF_CORE_READ(r, start_time_ns);
	return 0;
}

static __always_inline __u64 rq_cgroup_id(struct request *rq)
{
	struct task_struct *task;
	struct bio *bio;
	__u64 id;

	if (bpf_core_field_exists(struct bio, bi_blkg)) {
		bio = BPF_CORE_READ(rq, bio);
		if (bio) {
			struct blkcg_gq *blkg = BPF_CORE_READ(bio, bi_blkg);
			struct blkcg *blkcg = blkg ? BPF_CORE_READ(blkg, blkcg) : NULL;

			if (blkcg) {
				id = huatuo_css_cgroup_id(&blkcg->css);
				if (id)
					return id;
			}
		}
	}
	task = (struct task_struct *)bpf_get_current_task();
	return huatuo_task_cgroup_id(task, HUATUO_CGRP_ID(io_cgrp_id));
}

/*
 * Entries are kept per struct request (LRU-bounded) across its lives so that
 * done_ns, the completion time of the previous life, can validate
 * rq->start_time_ns: the kernel does not always reset that field when a
 * request is re-allocated without needing a time stamp (seen on 6.18 after
 * turning iostats off), so a value older than the previous completion is
 * stale.
 */
static __always_inline struct iolat_rq *rq_entry(__u64 *key)
{
	struct iolat_rq *e = bpf_map_lookup_elem(&iolat_start, key);
	struct iolat_rq zero = {};

	if (e)
		return e;
	bpf_map_update_elem(&iolat_start, key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&iolat_start, key);
}

/* block_io_start (from_io_start) or block_rq_insert */
static __always_inline int rq_queued(struct request *rq, bool from_io_start)
{
	__u64 key = (__u64)rq;
	struct iolat_rq *e;

	if (!rq)
		return 0;
	e = rq_entry(&key);
	if (!e)
		return 0;
	/* already stamped by block_io_start in this life (insert follows it) */
	if (!from_io_start && (e->flags & RQ_F_IO_START) && e->q_ns && !e->d_ns)
		return 0;
	e->q_ns = bpf_ktime_get_ns();
	e->d_ns = 0;
	e->cgid = rq_cgroup_id(rq);
	e->flags = from_io_start ? RQ_F_IO_START : 0;
	return 0;
}

static __always_inline int rq_issued(struct request *rq)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	struct iolat_rq *e;

	if (!rq)
		return 0;
	e = rq_entry(&key);
	if (!e)
		return 0;
	if (!e->q_ns) { /* issued directly, never inserted */
		e->q_ns = now;
		e->cgid = rq_cgroup_id(rq);
	}
	e->d_ns = now; /* the last issue counts (requeued requests) */
	return 0;
}

static __always_inline void account(__u32 dev, __u64 cgid, __u32 kind, __u64 delta)
{
	const __u64 bounds[5] = {
		30 * NSEC_PER_MSEC, 50 * NSEC_PER_MSEC, 100 * NSEC_PER_MSEC,
		200 * NSEC_PER_MSEC, 400 * NSEC_PER_MSEC,
	};
	struct iolat_disk_key dk = { .dev = dev, .kind = kind };
	struct iolat_cg_key ck = { .cgid = cgid, .dev = dev, .kind = kind };
	__u32 z;

	if (delta < 20 * NSEC_PER_MSEC || (__s64)delta < 0)
		return;
	z = huatuo_zone(delta, bounds, 5);
	HUATUO_HASH_HIST_INC(iolat_disk, &dk, struct hist6, z);
	if (cgid)
		HUATUO_HASH_HIST_INC(iolat_cgroup, &ck, struct hist6, z);
}

SEC("raw_tp/block_io_start")
int BPF_PROG(iolat_io_start, struct request *rq)
{
	return rq_queued(rq, true);
}

SEC("raw_tp/block_rq_insert")
int iolat_insert(__u64 *ctx)
{
	/* (q, rq) before 5.11, (rq) since */
	if (LINUX_KERNEL_VERSION < KERNEL_VERSION(5, 11, 0))
		return rq_queued((struct request *)ctx[1], false);
	return rq_queued((struct request *)ctx[0], false);
}

SEC("raw_tp/block_rq_issue")
int iolat_issue(__u64 *ctx)
{
	if (LINUX_KERNEL_VERSION < KERNEL_VERSION(5, 11, 0))
		return rq_issued((struct request *)ctx[1]);
	return rq_issued((struct request *)ctx[0]);
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(iolat_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq, now, q_ns, d_ns, cgid, prev_done, alloc_ns;
	struct gendisk *disk;
	struct iolat_rq *e;
	__u32 dev;

	if (!rq)
		return 0;
	if (nr_bytes < BPF_CORE_READ(rq, __data_len))
		return 0; /* partial completion, more to come */

	now = bpf_ktime_get_ns();
	e = rq_entry(&key);
	if (!e)
		return 0;
	q_ns = e->q_ns;
	d_ns = e->d_ns;
	cgid = e->cgid;
	prev_done = e->done_ns;
	/* this life is over */
	e->q_ns = 0;
	e->d_ns = 0;
	e->cgid = 0;
	e->flags = 0;
	e->done_ns = now;
	if (!d_ns || !q_ns) /* issued before we attached */
		return 0;

	disk = rq_disk(rq);
	if (!disk)
		return 0;
	dev = ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);

	/* start_time_ns belongs to this life only if set after the last one ended */
	alloc_ns = rq_alloc_ns(rq);
	if (alloc_ns && prev_done && alloc_ns > prev_done && alloc_ns <= q_ns)
		q_ns = alloc_ns;

	account(dev, cgid, IOLAT_Q2C, now - q_ns);
	account(dev, cgid, IOLAT_D2C, now - d_ns);
	return 0;
}
