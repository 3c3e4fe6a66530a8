// SPDX-License-Identifier: GPL-2.0
/*
 * softlockup: count and report soft lockup reports of the kernel watchdog.
 *
 * There is no softlockup tracepoint, and kprobes/fentry on watchdog_timer_fn
 * are not used by this agent. Every report goes through printk, whose
 * printk:console tracepoint carries the message text, so we count (and
 * pass to the agent) messages containing "watchdog: BUG: soft lockup": kernel/watchdog.c prints
 *   pr_emerg("BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]\n", ...)
 * with pr_fmt "watchdog: " (4.x: "NMI watchdog: ", which also contains it).
 * The needle may start anywhere in the first 64 bytes, because before 5.15
 * the traced text can carry a "[   12.345678] " time stamp (and a caller id)
 * prefix. User space can forge such a line through /dev/kmsg; so can anyone
 * with printk access.
 *
 * Tracepoint printk:console: TP_PROTO(const char *text, size_t len); the
 * trace event format is a single `__data_loc char[] msg` at offset 8 (u32:
 * offset in the low 16 bits, length in the high 16). We use the raw
 * tracepoint and read text/len directly. Since 5.15 (printk_sprint) it fires
 * for every stored message regardless of console_loglevel; before, from
 * call_console_drivers, only for messages printed to a console (a soft lockup
 * is KERN_EMERG, so always).
 *
 * Programs:
 *   raw_tp/console: count + report the message text.
 *   perf_event softlockup_cpu_stack: the agent's all-CPU backtrace sampler
 *     (src/events/kernel_stacks.ts; same contract as in hungtask.bpf.c).
 *
 * Maps (agent contract):
 *   softlockup_count  ARRAY[1] key __u32 0, value __u64 (cumulative)
 *   softlockup_buf    PERCPU_ARRAY[1] 256-byte scratch buffer (internal; a
 *                     map value because the verifier allows unaligned loads
 *                     there but not on the stack)
 *   softlockup_events RINGBUF 64 KiB of struct softlockup_event, below
 *   softlockup_events_lost  PERCPU_ARRAY[1] __u64: records lost on a full ring
 *   softlockup_cpustack_req / _cpustack_done / softlockup_cpu_stacks: the
 *     sampler's request, per-CPU answered request and records (struct
 *     cpu_stack_event, cpu_stack.h).
 */
#include "huatuo.h"
#include "cpu_stack.h"

#define SL_BUF_LEN 256
#define SL_READ_MAX 192 /* bytes of message inspected and reported */
#define SL_MAX_POS 64   /* the needle must start before this offset */
#define SL_NEEDLE_LEN 26 /* strlen("watchdog: BUG: soft lockup") */

/* "watchdog: BUG: soft lockup" as little-endian words */
#define SL_W0 0x676f646863746177ULL /* "watchdog" */
#define SL_W1 0x73203a475542203aULL /* ": BUG: s" */
#define SL_W2 0x6b636f6c2074666fULL /* "oft lock" */
#define SL_W3 0x7075                /* "up" */

struct sl_buf {
	char data[SL_BUF_LEN];
};

/*
 * One report line, decoded by src/features/softlockup/softlockup.ts, which
 * parses the CPU, comm and pid from the text.
 */
struct softlockup_event {
	__u32 cpu; /* CPU that printed the line: the watchdog runs on the stuck CPU */
	__u32 len; /* valid bytes of text */
	char text[SL_READ_MAX]; /* the message, not NUL-terminated */
};
HUATUO_RECORD(struct softlockup_event, 200);

HUATUO_MAP(softlockup_count, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1);
HUATUO_MAP(softlockup_buf, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct sl_buf, 1);
HUATUO_EVENT_RING(softlockup_events, 64 * 1024);

static __always_inline bool needle_at(const char *p)
{
	/* unaligned loads from a map value: allowed on archs with efficient
	 * unaligned access (x86, arm64) */
	return *(const __u64 *)(p) == SL_W0 && *(const __u64 *)(p + 8) == SL_W1 &&
	       *(const __u64 *)(p + 16) == SL_W2 && *(const __u16 *)(p + 24) == SL_W3;
}

SEC("raw_tp/console")
int BPF_PROG(softlockup_console, const char *text, size_t len)
{
	struct softlockup_event *ev;
	struct sl_buf *buf;
	__u32 key = 0, n, i;
	bool found = false;
	__u64 *cnt;

	if (len < SL_NEEDLE_LEN)
		return 0;
	n = len > SL_READ_MAX ? SL_READ_MAX : len;
	buf = bpf_map_lookup_elem(&softlockup_buf, &key);
	if (!buf)
		return 0;
	if (bpf_probe_read_kernel(buf->data, n & (SL_BUF_LEN - 1), text))
		return 0;

#pragma unroll
	for (i = 0; i < SL_MAX_POS; i++) {
		if (!found && i + SL_NEEDLE_LEN <= n && needle_at(&buf->data[i]))
			found = true;
	}
	if (!found)
		return 0;
	cnt = bpf_map_lookup_elem(&softlockup_count, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);

	ev = huatuo_reserve(softlockup_events, ev);
	if (!ev)
		return 0;
	ev->cpu = bpf_get_smp_processor_id();
	ev->len = n;
	/* Whole buffer: only ev->len bytes are this message's. */
	bpf_probe_read_kernel(ev->text, sizeof(ev->text), buf->data);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

/* ---- all-CPU backtrace sampler (bpf/cpu_stack.h) -------------------- */

HUATUO_CPU_STACK_SAMPLER(softlockup)
