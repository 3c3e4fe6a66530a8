// SPDX-License-Identifier: GPL-2.0
/*
 * ras: hardware errors the kernel's RAS subsystems report through
 * tracepoints. Each source is optional: a kernel built without it has no
 * tracepoint, the agent leaves that program unattached.
 *
 *   source  tracepoint                       kernel side (TP_PROTO)
 *   mce     mce:mce_record                   CONFIG_X86_MCE: (struct mce *m);
 *                                            6.13+: (struct mce_hw_err *err),
 *                                            whose first member is the struct mce
 *   edac    ras:mc_event                     CONFIG_RAS (fired by EDAC drivers,
 *                                            ghes_edac): (err_type, error_msg,
 *                                            label, error_count, mc_index,
 *                                            top_layer, mid_layer, low_layer,
 *                                            address, grain_bits, syndrome,
 *                                            driver_detail)
 *   acpi    ras:non_standard_event           CONFIG_RAS (fired by ACPI APEI
 *                                            GHES): (sec_type, fru_id,
 *                                            fru_text, sev, err, len)
 *   aer     ras:aer_event                    CONFIG_PCIEAER: (dev_name, status,
 *                                            severity, tlp_header_valid, tlp)
 *                                            (4.18+; before, only the first 3)
 *   thr     irq_vectors:threshold_apic_entry CONFIG_X86_MCE_THRESHOLD: (vector);
 *                                            the MCA threshold / CMCI interrupt
 *
 * Raw tracepoints read the TP_PROTO arguments, which (unlike the trace
 * event record layouts) need no BTF of the event: struct mce is read with
 * CO-RE (its uapi layout only ever grew), the rest are scalars, strings and
 * byte arrays.
 *
 * Maps (agent contract):
 *   ras_count   ARRAY[5] key __u32 source (0 acpi, 1 aer, 2 edac, 3 mce,
 *               4 thr), value __u64: every event, also when the ring is full.
 *   ras_events  RINGBUF 256 KiB of struct ras_event, below
 *   ras_events_lost  PERCPU_ARRAY[1] __u64: records the full ring dropped.
 */
#include "huatuo.h"

enum ras_source {
	RAS_ACPI = 0,
	RAS_AER = 1,
	RAS_EDAC = 2,
	RAS_MCE = 3,
	RAS_THR = 4,
	RAS_SOURCES = 5,
};

#define RAS_STR_LEN 128
#define RAS_FRU_TEXT_LEN 32
#define RAS_DATA_LEN 256
#define RAS_DEV_NAME_LEN 64

struct ras_mce {
	__u64 status, mcgstatus, addr, misc, synd, ipid, ip, tsc, time, mcgcap;
	__u32 cpuid, extcpu, socketid, apicid;
	__u8 cpuvendor, cs, bank, severity;
};

struct ras_edac {
	__u64 address;
	__u64 syndrome;
	__u32 err_type;
	__s32 error_count;
	__u8 mc_index;
	__s8 top_layer, mid_layer, low_layer;
	__u8 grain_bits;
	__u8 pad[3];
	char msg[RAS_STR_LEN];
	char label[RAS_STR_LEN];
	char driver[RAS_STR_LEN];
};

struct ras_acpi {
	__u8 sec_type[16];
	__u8 fru_id[16];
	__u32 len; /* of the error data */
	__u8 sev;
	__u8 pad[3];
	char fru_text[RAS_FRU_TEXT_LEN];
	__u8 data[RAS_DATA_LEN]; /* the first min(len, RAS_DATA_LEN) bytes of the error data */
};

struct ras_aer {
	__u32 status;
	__u8 severity;
	__u8 tlp_header_valid;
	__u8 pad[2];
	__u32 tlp[4];
	char dev_name[RAS_DEV_NAME_LEN];
};

struct ras_thr {
	__s32 vector;
};

/* One error report, decoded by src/features/ras/ras.ts: a header, then its source's payload. */
struct ras_event {
	__u32 source; /* enum ras_source */
	__u32 cpu;    /* CPU the tracepoint fired on */
	__u64 ts;     /* bpf_ktime_get_ns */
	union {
		struct ras_mce mce;
		struct ras_edac edac;
		struct ras_acpi acpi;
		struct ras_aer aer;
		struct ras_thr thr;
	};
};
HUATUO_RECORD(struct ras_event, 432);

/* The kernel's struct mce (arch/x86/include/uapi/asm/mce.h), read with CO-RE. */
struct mce___huatuo {
	__u64 status;
	__u64 misc;
	__u64 addr;
	__u64 mcgstatus;
	__u64 ip;
	__u64 tsc;
	__u64 time;
	__u8 cpuvendor;
	__u8 severity;
	__u32 cpuid;
	__u8 cs;
	__u8 bank;
	__u32 extcpu;
	__u32 socketid;
	__u32 apicid;
	__u64 mcgcap;
	__u64 synd;
	__u64 ipid;
} __attribute__((preserve_access_index));

HUATUO_MAP(ras_count, BPF_MAP_TYPE_ARRAY, __u32, __u64, RAS_SOURCES);
HUATUO_EVENT_RING(ras_events, 256 * 1024);

/* Counts the event and reserves its record (NULL when the ring is full). */
static __always_inline struct ras_event *ras_begin(__u32 source)
{
	struct ras_event *ev;
	__u32 key = source;
	__u64 *cnt;

	cnt = bpf_map_lookup_elem(&ras_count, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	ev = huatuo_reserve(ras_events, ev);
	if (!ev)
		return NULL;
	ev->source = source;
	ev->cpu = bpf_get_smp_processor_id();
	ev->ts = bpf_ktime_get_ns();
	return ev;
}

SEC("raw_tp/mce_record")
int BPF_PROG(ras_mce_record, void *arg)
{
	struct mce___huatuo *m = arg; /* struct mce, or struct mce_hw_err starting with one */
	struct ras_event *ev;

	/* Kernels without CONFIG_X86_MCE have no struct mce: the rest is dead code there. */
	if (!bpf_core_type_exists(struct mce___huatuo))
		return 0;
	ev = ras_begin(RAS_MCE);
	if (!ev)
		return 0;
	ev->mce.status = BPF_CORE_READ(m, status);
	ev->mce.mcgstatus = BPF_CORE_READ(m, mcgstatus);
	ev->mce.addr = BPF_CORE_READ(m, addr);
	ev->mce.misc = BPF_CORE_READ(m, misc);
	ev->mce.synd = bpf_core_field_exists(m->synd) ? BPF_CORE_READ(m, synd) : 0;
	ev->mce.ipid = bpf_core_field_exists(m->ipid) ? BPF_CORE_READ(m, ipid) : 0;
	ev->mce.ip = BPF_CORE_READ(m, ip);
	ev->mce.tsc = BPF_CORE_READ(m, tsc);
	ev->mce.time = BPF_CORE_READ(m, time);
	ev->mce.mcgcap = BPF_CORE_READ(m, mcgcap);
	ev->mce.cpuid = BPF_CORE_READ(m, cpuid);
	ev->mce.extcpu = BPF_CORE_READ(m, extcpu);
	ev->mce.socketid = BPF_CORE_READ(m, socketid);
	ev->mce.apicid = BPF_CORE_READ(m, apicid);
	ev->mce.cpuvendor = BPF_CORE_READ(m, cpuvendor);
	ev->mce.cs = BPF_CORE_READ(m, cs);
	ev->mce.bank = BPF_CORE_READ(m, bank);
	ev->mce.severity = BPF_CORE_READ(m, severity);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("raw_tp/mc_event")
int BPF_PROG(ras_mc_event, unsigned int err_type, const char *error_msg, const char *label,
	     int error_count, __u8 mc_index, __s8 top_layer, __s8 mid_layer, __s8 low_layer,
	     unsigned long address, __u8 grain_bits, unsigned long syndrome, const char *driver_detail)
{
	struct ras_event *ev = ras_begin(RAS_EDAC);

	if (!ev)
		return 0;
	ev->edac.address = address;
	ev->edac.syndrome = syndrome;
	ev->edac.err_type = err_type;
	ev->edac.error_count = error_count;
	ev->edac.mc_index = mc_index;
	ev->edac.top_layer = top_layer;
	ev->edac.mid_layer = mid_layer;
	ev->edac.low_layer = low_layer;
	ev->edac.grain_bits = grain_bits;
	bpf_probe_read_kernel_str(ev->edac.msg, sizeof(ev->edac.msg), error_msg);
	bpf_probe_read_kernel_str(ev->edac.label, sizeof(ev->edac.label), label);
	bpf_probe_read_kernel_str(ev->edac.driver, sizeof(ev->edac.driver), driver_detail);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("raw_tp/non_standard_event")
int BPF_PROG(ras_non_standard_event, const void *sec_type, const void *fru_id, const char *fru_text,
	     __u8 sev, const __u8 *err, __u32 len)
{
	struct ras_event *ev = ras_begin(RAS_ACPI);
	__u64 n;

	if (!ev)
		return 0;
	if (bpf_probe_read_kernel(ev->acpi.sec_type, 16, sec_type))
		__builtin_memset(ev->acpi.sec_type, 0, 16);
	if (bpf_probe_read_kernel(ev->acpi.fru_id, 16, fru_id))
		__builtin_memset(ev->acpi.fru_id, 0, 16);
	bpf_probe_read_kernel_str(ev->acpi.fru_text, sizeof(ev->acpi.fru_text), fru_text);
	ev->acpi.sev = sev;
	ev->acpi.len = len;
	/* The raw argument slot, bounded in one register (the u32 parameter lets clang compare a copy). */
	n = ctx[5] & 0xffffffff;
	barrier_var(n);
	if (n > RAS_DATA_LEN)
		n = RAS_DATA_LEN;
	if (bpf_probe_read_kernel(ev->acpi.data, n, err))
		ev->acpi.len = 0; /* unreadable: report no data rather than garbage */
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("raw_tp/aer_event")
int BPF_PROG(ras_aer_event, const char *dev_name, __u32 status, __u8 severity, __u8 tlp_header_valid,
	     const void *tlp)
{
	struct ras_event *ev = ras_begin(RAS_AER);

	if (!ev)
		return 0;
	ev->aer.status = status;
	ev->aer.severity = severity;
	ev->aer.tlp_header_valid = tlp_header_valid;
	/* struct aer_header_log_regs (dw0..dw3) or, 6.15+, struct pcie_tlp_log (dw[0..3] first). */
	if (!tlp_header_valid || !tlp || bpf_probe_read_kernel(ev->aer.tlp, sizeof(ev->aer.tlp), tlp)) {
		ev->aer.tlp_header_valid = 0;
		__builtin_memset(ev->aer.tlp, 0, sizeof(ev->aer.tlp));
	}
	bpf_probe_read_kernel_str(ev->aer.dev_name, sizeof(ev->aer.dev_name), dev_name);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("raw_tp/threshold_apic_entry")
int BPF_PROG(ras_threshold_apic_entry, int vector)
{
	struct ras_event *ev = ras_begin(RAS_THR);

	if (!ev)
		return 0;
	ev->thr.vector = vector;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}
