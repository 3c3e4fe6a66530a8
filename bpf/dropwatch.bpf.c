// SPDX-License-Identifier: GPL-2.0
/*
 * dropwatch: packets the kernel network stack dropped (skb:kfree_skb).
 * Since 5.17 the tracepoint carries an enum skb_drop_reason, and since
 * 6.12 the receiving socket (rx_sk) for drops where skb->sk is not set
 * (e.g. a listener whose accept queue is full). Consumed packets go to
 * skb:consume_skb and are not seen here.
 *
 * Programs, best first (the agent loads exactly one, see alternatives in
 * src/features/dropwatch/tracer.ts):
 *   tp_btf/kfree_skb      dropwatch_btf_rxsk (skb, location, reason, rx_sk)  6.12+
 *   tp_btf/kfree_skb      dropwatch_btf      (skb, location, reason)         5.17+
 *   tracepoint/skb/kfree_skb  dropwatch_tp   (trace record; reason/rx_sk when the
 *                                             kernel has them, CO-RE)
 *
 * Per drop, in order:
 *   1. count it by reason (all drops, whatever follows);
 *   2. skip skbs that are not IPv4/IPv6 (skb->protocol);
 *   3. skip drops located in [excl_start, excl_end) (neigh_invalidate, when
 *      the agent's ExcludedNeighInvalidate is on);
 *   4. per-CPU token bucket (time credit in ns: one event costs
 *      token_cost_ns, at most token_cap_ns is saved up); a drop over the
 *      budget is counted in dropwatch_suppressed and not reported (a host
 *      can drop 100k+ packets/s; the agent's default is 100 events/s per
 *      CPU, bursts of 20, so a storm on 128 CPUs still fits the ring);
 *   5. one fixed-size record into the ring buffer.
 *
 * Read-only constants (set by the agent before load):
 *   token_cost_ns   __u64  NSEC_PER_SEC / (events per second per CPU); 0: no limit
 *   token_cap_ns    __u64  bucket depth: token_cost_ns * burst (events at once)
 *   excl_start/end  __u64  kernel text range whose drops are not reported
 *
 * Maps (agent contract):
 *   dropwatch_drops        PERCPU_ARRAY[1024] __u64: drops by reason, for
 *                          reason < 1024 (the core enum skb_drop_reason)
 *   dropwatch_drops_subsys PERCPU_HASH __u32 reason -> __u64: reasons of
 *                          subsystems (reason >> 16 = enum
 *                          skb_drop_reason_subsys) and any reason >= 1024
 *   dropwatch_suppressed   PERCPU_ARRAY[1] __u64: drops over the rate limit
 *   dropwatch_events       RINGBUF 4 MiB here (the agent sizes it from
 *                          EventsPerSecond before load: dropwatchRingBytes)
 *                          of struct drop_event, below
 *   dropwatch_events_lost  PERCPU_ARRAY[1] __u64: records lost on a full ring
 */
#include "huatuo.h"
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IFF_UP 0x1
#define AF_INET 2
#define AF_INET6 10
#define TCP_TIME_WAIT 6
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12
#define IPPROTO_HOPOPTS 0
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_DSTOPTS 60
#define IPPROTO_SCTP 132
#define IPPROTO_UDPLITE 136
#define UNSET_HEADER 0xffff

/* flags */
#define DW_F_L3 0x01	   /* addresses from the packet's IP header */
#define DW_F_L4 0x02	   /* ports from its TCP/UDP/SCTP header */
#define DW_F_SK_TUPLE 0x04 /* addresses and ports from skb->sk (no usable header) */
#define DW_F_SK 0x08	   /* sk_state and backlogs are valid */
#define DW_F_DEV 0x10	   /* the ifname/ifindex device is known */
#define DW_F_ADMIN_UP 0x20 /* device IFF_UP */
#define DW_F_CARRIER 0x40  /* device has carrier */

#define STACK_DEPTH 32
#define REASON_SLOTS 1024

/*
 * One reported drop, decoded by src/features/dropwatch/tracer.ts. Ports, seq
 * and ack_seq in host order; addresses in network order, IPv4 in the first
 * 4 bytes.
 */
struct drop_event {
	__u64 ts;         /* CLOCK_MONOTONIC ns */
	__u64 location;   /* kernel address of the kfree_skb caller */
	__u64 net_cookie; /* netns cookie (5.14+), 0 if unknown */
	__u32 reason;     /* enum skb_drop_reason (0 before 5.17) */
	__u32 pid;        /* tgid of current */
	char comm[TASK_COMM_LEN]; /* comm of current */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 l3proto;  /* ETH_P_IP or ETH_P_IPV6 */
	__u8 l4proto;   /* IPPROTO_* (0 if unknown) */
	__u8 tcp_flags; /* byte 13 of the TCP header */
	__u32 seq;
	__u32 ack_seq;
	/* IP datagram length from its header (IPv6: payload length + 40), else skb->len */
	__u32 pkt_len;
	__u32 ifindex; /* skb->dev's, else skb->skb_iif */
	/*
	 * Inode of the netns (ls -l /proc/PID/ns/net): skb->dev's, else the
	 * socket's; the agent maps it to a container.
	 */
	__u32 netns_ino;
	__u16 queue_mapping; /* skb->queue_mapping */
	__u8 sk_state;       /* skc_state of skb->sk, else of rx_sk (0: none) */
	__u8 flags;          /* DW_F_* */
	char ifname[16];
	__u32 max_ack_backlog; /* sk_max_ack_backlog (full sockets only) */
	__u32 ack_backlog;     /* sk_ack_backlog: accept queue length */
	__u32 syn_qlen;        /* TCP listener's request sock (SYN) queue length */
	__s32 stack_bytes;     /* bpf_get_stack() result (bytes, or -errno) */
	/*
	 * cgroup2 id of the socket's owner (sk_cgrp_data: the cgroup of the
	 * task that created the socket), for full sockets only; 0 without one.
	 * Not the current task's: most drops run in softirq context, where
	 * current is whatever task the interrupt hit.
	 */
	__u64 cgroup_id;
	__u64 stack[STACK_DEPTH]; /* kernel stack, innermost first */
};
HUATUO_RECORD(struct drop_event, 408);

struct dw_bucket {
	__u64 credit_ns; /* time credit: one event costs token_cost_ns */
	__u64 last_ns;
};

const volatile __u64 token_cost_ns = NSEC_PER_SEC / 100;
const volatile __u64 token_cap_ns = NSEC_PER_SEC;
const volatile __u64 excl_start = 0;
const volatile __u64 excl_end = 0;

HUATUO_MAP(dropwatch_drops, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, REASON_SLOTS);
HUATUO_MAP(dropwatch_drops_subsys, BPF_MAP_TYPE_PERCPU_HASH, __u32, __u64, 256);
HUATUO_MAP(dropwatch_suppressed, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, 1);
HUATUO_MAP(dropwatch_bucket, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct dw_bucket, 1);
HUATUO_EVENT_RING(dropwatch_events, 4 * 1024 * 1024);

/* Kernels before 5.17 have no reason, before 6.12 no rx_sk, in the trace record. */
struct trace_event_raw_kfree_skb___compat {
	void *skbaddr;
	void *location;
	void *rx_sk;
	enum skb_drop_reason reason;
} __attribute__((preserve_access_index));

static __always_inline void count_reason(__u32 reason)
{
	__u64 *n;

	if (reason < REASON_SLOTS) {
		n = bpf_map_lookup_elem(&dropwatch_drops, &reason);
		if (n)
			*n += 1; /* per-CPU slot; a nested run on this CPU is skipped by the kernel */
		return;
	}
	n = bpf_map_lookup_elem(&dropwatch_drops_subsys, &reason);
	if (n) {
		*n += 1;
	} else {
		__u64 one = 1;

		bpf_map_update_elem(&dropwatch_drops_subsys, &reason, &one, BPF_NOEXIST);
	}
}

static __always_inline void count_one(void *map)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(map, &k);

	if (n)
		*n += 1;
}

/* Token bucket per CPU: true when this drop may be reported. */
static __always_inline bool take_token(void)
{
	__u64 cost = token_cost_ns, cap = token_cap_ns, t;
	struct dw_bucket *b;
	__u32 k = 0;

	if (cost == 0)
		return true;
	b = bpf_map_lookup_elem(&dropwatch_bucket, &k);
	if (!b)
		return false;
	t = bpf_ktime_get_ns();
	if (b->last_ns == 0 || t - b->last_ns >= cap) /* first drop on this CPU, or a long quiet period */
		b->credit_ns = cap;
	else if (b->credit_ns + (t - b->last_ns) < cap)
		b->credit_ns += t - b->last_ns;
	else
		b->credit_ns = cap;
	b->last_ns = t;
	if (b->credit_ns < cost)
		return false;
	b->credit_ns -= cost;
	return true;
}

static __always_inline void read_l4(struct drop_event *ev, unsigned char *l4)
{
	__u8 th[16];

	if (ev->l4proto != IPPROTO_TCP && ev->l4proto != IPPROTO_UDP && ev->l4proto != IPPROTO_UDPLITE &&
	    ev->l4proto != IPPROTO_SCTP)
		return;
	if (bpf_probe_read_kernel(th, ev->l4proto == IPPROTO_TCP ? 16 : 4, l4))
		return;
	ev->sport = ((__u16)th[0] << 8) | th[1];
	ev->dport = ((__u16)th[2] << 8) | th[3];
	ev->flags |= DW_F_L4;
	if (ev->l4proto == IPPROTO_TCP) {
		ev->seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
		ev->ack_seq = ((__u32)th[8] << 24) | ((__u32)th[9] << 16) | ((__u32)th[10] << 8) | th[11];
		ev->tcp_flags = th[13];
	}
}

/* IPv4/IPv6 header at skb->head + skb->network_header; L4 right after it (and IPv6 extension headers). */
static __always_inline void read_headers(struct drop_event *ev, struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	unsigned char *l3;
	__u8 hdr[40];
	int i;

	if (!head || nh == UNSET_HEADER)
		return;
	l3 = head + nh;
	if (ev->l3proto == ETH_P_IP) {
		__u32 ihl;

		if (bpf_probe_read_kernel(hdr, 20, l3) || (hdr[0] >> 4) != 4 || (hdr[0] & 0xf) < 5)
			return;
		ihl = (hdr[0] & 0xf) * 4;
		ev->pkt_len = ((__u32)hdr[2] << 8) | hdr[3];
		ev->l4proto = hdr[9];
		__builtin_memcpy(ev->saddr, &hdr[12], 4);
		__builtin_memcpy(ev->daddr, &hdr[16], 4);
		ev->flags |= DW_F_L3;
		if (((hdr[6] & 0x1f) | hdr[7]) != 0) /* not the first fragment: no L4 header */
			return;
		read_l4(ev, l3 + ihl);
		return;
	}
	if (bpf_probe_read_kernel(hdr, 40, l3) || (hdr[0] >> 4) != 6)
		return;
	__u32 plen = ((__u32)hdr[4] << 8) | hdr[5];
	__u8 next = hdr[6];
	__u32 off = 40;

	if (plen)
		ev->pkt_len = plen + 40;
	__builtin_memcpy(ev->saddr, &hdr[8], 16);
	__builtin_memcpy(ev->daddr, &hdr[24], 16);
	ev->flags |= DW_F_L3;
	/* A few extension headers (hop-by-hop, routing, destination options, fragment). */
	for (i = 0; i < 4; i++) {
		__u8 ext[4];

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
		    next != IPPROTO_FRAGMENT)
			break;
		if (bpf_probe_read_kernel(ext, sizeof(ext), l3 + off))
			return;
		if (next == IPPROTO_FRAGMENT) {
			if (((ext[2] << 8 | ext[3]) & 0xfff8) != 0) {
				ev->l4proto = ext[0]; /* a later fragment: no L4 header */
				return;
			}
			off += 8;
		} else {
			off += ((__u32)ext[1] + 1) * 8;
		}
		next = ext[0];
		off &= 0x3ff;
	}
	ev->l4proto = next;
	read_l4(ev, l3 + off);
}

/* The socket side: state and queues, and the tuple when the packet gave none. */
static __always_inline void read_sock(struct drop_event *ev, struct sock *sk, struct sock *rx_sk)
{
	struct sock *s = sk ? sk : rx_sk;
	__u8 state;

	if (!s)
		return;
	state = BPF_CORE_READ(s, __sk_common.skc_state);
	ev->sk_state = state;
	ev->flags |= DW_F_SK;
	if (state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV) { /* full sockets only */
		if (bpf_core_field_exists(s->sk_cgrp_data.cgroup)) {
			struct cgroup *cg = BPF_CORE_READ(s, sk_cgrp_data.cgroup);

			if (cg)
				ev->cgroup_id = BPF_CORE_READ(cg, kn, id);
		}
		ev->max_ack_backlog = BPF_CORE_READ(s, sk_max_ack_backlog);
		ev->ack_backlog = BPF_CORE_READ(s, sk_ack_backlog);
		if (state == TCP_LISTEN && ev->l4proto == IPPROTO_TCP) {
			struct inet_connection_sock *icsk = (void *)s;

			ev->syn_qlen = BPF_CORE_READ(icsk, icsk_accept_queue.qlen.counter);
		}
	}
	if ((ev->flags & DW_F_L3) || !sk)
		return;
	/* An IP skb without a usable header (e.g. purged from a socket's queue): take its owner's tuple. */
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family == AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 b = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(ev->saddr, &a, 4);
		__builtin_memcpy(ev->daddr, &b, 4);
	} else if (family == AF_INET6 && bpf_core_field_exists(sk->__sk_common.skc_v6_daddr)) {
		BPF_CORE_READ_INTO(&ev->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&ev->daddr, sk, __sk_common.skc_v6_daddr);
	} else {
		return;
	}
	ev->l3proto = family == AF_INET ? ETH_P_IP : ETH_P_IPV6;
	ev->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	ev->l4proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	ev->flags |= DW_F_SK_TUPLE;
}

static __always_inline void read_dev(struct drop_event *ev, struct sk_buff *skb, struct sock *sk)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct net *net = NULL;

	if (dev) {
		unsigned long state = BPF_CORE_READ(dev, state);
		__u32 nocarrier = bpf_core_enum_value(enum netdev_state_t, __LINK_STATE_NOCARRIER);

		ev->ifindex = BPF_CORE_READ(dev, ifindex);
		bpf_core_read_str(ev->ifname, sizeof(ev->ifname), &dev->name);
		ev->flags |= DW_F_DEV;
		if (BPF_CORE_READ(dev, flags) & IFF_UP)
			ev->flags |= DW_F_ADMIN_UP;
		if (nocarrier < 64 && !(state & (1UL << nocarrier)))
			ev->flags |= DW_F_CARRIER;
		net = BPF_CORE_READ(dev, nd_net.net);
	} else {
		ev->ifindex = BPF_CORE_READ(skb, skb_iif);
	}
	if (!net && sk)
		net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	if (!net)
		return;
	if (bpf_core_field_exists(net->net_cookie))
		ev->net_cookie = BPF_CORE_READ(net, net_cookie);
	ev->netns_ino = BPF_CORE_READ(net, ns.inum);
}

/*
 * @btf: @skb is a BTF pointer (tp_btf), read with plain loads on the hot path
 * (before the rate limit); otherwise with bpf_probe_read_kernel.
 */
static __always_inline int handle_drop(void *ctx, struct sk_buff *skb, __u64 location, __u32 reason,
				       struct sock *rx_sk, const bool btf)
{
	struct drop_event *ev;
	struct sock *sk;
	__u16 proto;

	count_reason(reason);
	if (!skb)
		return 0;
	proto = bpf_ntohs(btf ? skb->protocol : BPF_CORE_READ(skb, protocol));
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return 0;
	if (location >= excl_start && location < excl_end)
		return 0;
	if (!take_token()) {
		count_one(&dropwatch_suppressed);
		return 0;
	}
	ev = huatuo_reserve(dropwatch_events, ev);
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, offsetof(struct drop_event, stack));
	ev->ts = bpf_ktime_get_ns();
	ev->location = location;
	ev->reason = reason;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
	ev->l3proto = proto;
	ev->pkt_len = BPF_CORE_READ(skb, len);
	ev->queue_mapping = BPF_CORE_READ(skb, queue_mapping);
	read_headers(ev, skb);
	sk = BPF_CORE_READ(skb, sk);
	read_sock(ev, sk, rx_sk);
	read_dev(ev, skb, sk);
	ev->stack_bytes = bpf_get_stack(ctx, ev->stack, sizeof(ev->stack), 0);
	if (ev->stack_bytes < 0)
		ev->stack[0] = 0;
	else if (ev->stack_bytes < (int)sizeof(ev->stack))
		ev->stack[(ev->stack_bytes / 8) & (STACK_DEPTH - 1)] = 0; /* end marker; the rest is stale */
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP); /* the agent polls on a timer */
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(dropwatch_btf_rxsk, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	return handle_drop(ctx, skb, (__u64)location, reason, rx_sk, true);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(dropwatch_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return handle_drop(ctx, skb, (__u64)location, reason, NULL, true);
}

SEC("tracepoint/skb/kfree_skb")
int dropwatch_tp(struct trace_event_raw_kfree_skb *args)
{
	struct trace_event_raw_kfree_skb___compat *c = (void *)args;
	struct sock *rx_sk = NULL;
	__u32 reason = 0;

	/* Direct loads from the trace record, at the offsets of this kernel's layout (CO-RE). */
	if (bpf_core_field_exists(c->reason))
		reason = c->reason;
	if (bpf_core_field_exists(c->rx_sk))
		rx_sk = c->rx_sk;
	return handle_drop(args, c->skbaddr, (__u64)c->location, reason, rx_sk, false);
}
