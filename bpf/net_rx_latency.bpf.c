// SPDX-License-Identifier: GPL-2.0
/*
 * net_rx_latency: receive-path latency of TCP packets, measured from the
 * skb's receive timestamp (skb->tstamp, CLOCK_REALTIME, set when the driver
 * hands the packet to the stack: netif_rx / netif_receive_skb / GRO) to three
 * later points:
 *   TO_NETIF_RCV  net:netif_receive_skb (__netif_receive_skb_core)
 *   TO_TCPV4_RCV  tcp:tcp_probe (top of tcp_rcv_established, IPv4 and IPv6;
 *                 there is no tracepoint at tcp_v4_rcv entry, so only
 *                 segments of established connections are seen here; a
 *                 segment queued to the socket backlog is seen when the
 *                 backlog is processed)
 *   TO_USER_COPY  skb:skb_copy_datagram_iovec (data copied to user space by
 *                 recvmsg/read; the reader is current)
 * Each stage compares its latency with its threshold. The kernel sets
 * skb->tstamp only while some socket asked for receive timestamps
 * (netstamp_needed_key): the agent holds one with SO_TIMESTAMPNS while this
 * tracer runs.
 *
 * Fast path (every packet, every stage): read skb->tstamp, one inlined array
 * lookup, bpf_ktime_get_ns(), compare (then the stamp's clock type). Everything
 * else only runs for a packet over its threshold.
 *
 * One event per skb: the FIRST stage whose latency exceeds its threshold.
 * All three latencies start at the same driver timestamp, so a packet late at
 * TO_NETIF_RCV is as late (or later) at every later stage; reporting it again
 * there would repeat the same delay and hide where it arose. An LRU map of
 * reported (skb address, tstamp) pairs suppresses the later stages, and the
 * repeated copies of one skb by partial reads. (Clones, e.g. for a packet
 * socket, are other skbs.) A packet suppressed by the rate limit is
 * remembered the same way, so it is counted once.
 *
 * Rate limit: at most events_per_sec events per second in total (a 2^30 ns
 * window, counter shared by all CPUs, overshoot bounded by the CPU count);
 * further events are counted in net_rx_rate.suppressed and carried in the
 * next record so the agent can say how many it missed.
 *
 * Clock: BPF has no CLOCK_REALTIME helper, so the agent keeps
 * net_rx_clock[0] = CLOCK_REALTIME - CLOCK_MONOTONIC (ns), refreshed every
 * second; now = bpf_ktime_get_ns() + offset. Until it is set (0) nothing is
 * reported. NTP slewing moves the offset by at most 0.5 ms/s.
 *
 * Two implementations (the agent loads the first the kernel accepts):
 *   tp_btf/netif_receive_skb, tp_btf/tcp_probe, tp_btf/skb_copy_datagram_iovec
 *     (net_rx_btf_*; kernel BTF): the fast path is plain BTF loads.
 *   raw_tp/... (net_rx_raw_*; kernel >= 4.17): fields via BPF_CORE_READ.
 *
 * Read-only config (set before load):
 *   thr_netif_ns, thr_tcp_ns, thr_user_ns  thresholds; 0 disables the stage
 *   exclude_host_netns  skip packets/sockets in the host net namespace
 *   host_netns_ino      its inode (the agent reads /proc/1/ns/net)
 *   events_per_sec      rate limit (0: unlimited)
 *
 * Maps (agent contract):
 *   net_rx_events       RINGBUF 64 KiB of struct net_rx_event, below
 *   net_rx_events_lost  PERCPU_ARRAY[1] __u64: records dropped on a full ring.
 *   net_rx_clock        ARRAY[1] __s64: CLOCK_REALTIME - CLOCK_MONOTONIC, written by the agent.
 *   net_rx_rate         ARRAY[1] struct net_rx_rate (the agent reads its suppressed).
 *   net_rx_reported     LRU_HASH[8192] (skb, tstamp) -> 1 (internal).
 */
#include "huatuo.h"
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1

#define WHERE_NETIF 0
#define WHERE_TCP 1
#define WHERE_USER 2

const volatile __u64 thr_netif_ns = 5 * NSEC_PER_MSEC;
const volatile __u64 thr_tcp_ns = 10 * NSEC_PER_MSEC;
const volatile __u64 thr_user_ns = 115 * NSEC_PER_MSEC;
const volatile bool exclude_host_netns = true;
const volatile __u32 events_per_sec = 100;

/*
 * Inode of the host's (initial) net namespace, from stat(/proc/1/ns/net) in
 * the agent: init_net is no kallsyms symbol without CONFIG_KALLSYMS_ALL.
 */
const volatile __u32 host_netns_ino = 0;

/* One late packet, decoded by src/features/net_rx_latency/net_rx_latency.ts. */
struct net_rx_event {
	__u64 latency_ns;
	__u64 tstamp_ns;  /* skb->tstamp, CLOCK_REALTIME */
	__u64 suppressed; /* packets the rate limit dropped so far, all CPUs; approximate */
	__u32 pid;        /* tgid of current */
	/* inode of the net namespace of the device (TO_NETIF_RCV) or socket */
	__u32 netns_ino;
	__u8 saddr[16]; /* packet source; IPv4 in the first 4 bytes */
	__u8 daddr[16]; /* packet destination */
	__u32 seq;      /* host order, as ack_seq, sport and dport */
	__u32 ack_seq;
	__u32 pkt_len; /* TCP payload bytes of the skb */
	__u16 sport;
	__u16 dport;
	__u16 family; /* AF_INET or AF_INET6 */
	__u8 where;   /* WHERE_* */
	__u8 state;   /* sk_state; 0: no socket yet */
	char comm[TASK_COMM_LEN]; /* current */
};
HUATUO_RECORD(struct net_rx_event, 104);


struct net_rx_rate {
	__u64 window;
	__u64 count;
	__u64 suppressed;
};

struct net_rx_key {
	__u64 skb;
	__u64 tstamp;
};

HUATUO_EVENT_RING(net_rx_events, 64 * 1024);
HUATUO_MAP(net_rx_clock, BPF_MAP_TYPE_ARRAY, __u32, __s64, 1);
HUATUO_MAP(net_rx_rate, BPF_MAP_TYPE_ARRAY, __u32, struct net_rx_rate, 1);
HUATUO_MAP(net_rx_reported, BPF_MAP_TYPE_LRU_HASH, struct net_rx_key, __u8, 8192);

/* 5.18-6.10: one bit saying skb->tstamp holds a monotonic delivery time. */
struct sk_buff___mono {
	__u8 mono_delivery_time : 1;
} __attribute__((preserve_access_index));

/*
 * Latency of a packet stamped at @tstamp if it is over @thr, else 0. Reads
 * only the clock offset (an inlined array lookup) and the monotonic clock.
 */
static __always_inline __u64 over_threshold(__u64 tstamp, __u64 thr)
{
	__u32 k = 0;
	__s64 *off;
	__u64 now;

	if (!tstamp || !thr)
		return 0;
	off = bpf_map_lookup_elem(&net_rx_clock, &k);
	if (!off || !*off)
		return 0;
	now = bpf_ktime_get_ns() + *off;
	if (now <= tstamp || now - tstamp < thr)
		return 0;
	return now - tstamp;
}

/*
 * skb->tstamp is a CLOCK_REALTIME receive stamp, not a monotonic (or TAI)
 * delivery time. A locally sent TCP segment carries its sender's EDT
 * departure time (CLOCK_MONOTONIC) across a veth into another namespace; it
 * becomes a realtime stamp only at ip_local_deliver(), so such packets are
 * measured from there at the TCP and copy stages and not at TO_NETIF_RCV.
 * Checked before the slow path, since on a node with pods talking over veths
 * most packets carry one. The _btf variant is plain loads (tp_btf only).
 */
static __always_inline bool tstamp_is_realtime_btf(struct sk_buff *skb)
{
	if (bpf_core_field_exists(skb->tstamp_type))
		return BPF_CORE_READ_BITFIELD(skb, tstamp_type) == 0;
	if (bpf_core_field_exists(((struct sk_buff___mono *)skb)->mono_delivery_time))
		return BPF_CORE_READ_BITFIELD((struct sk_buff___mono *)skb, mono_delivery_time) == 0;
	return true;
}

static __always_inline bool tstamp_is_realtime(struct sk_buff *skb)
{
	if (bpf_core_field_exists(skb->tstamp_type))
		return BPF_CORE_READ_BITFIELD_PROBED(skb, tstamp_type) == 0;
	if (bpf_core_field_exists(((struct sk_buff___mono *)skb)->mono_delivery_time))
		return BPF_CORE_READ_BITFIELD_PROBED((struct sk_buff___mono *)skb, mono_delivery_time) == 0;
	return true;
}

/*
 * Fills addresses, ports, seq/ack_seq and pkt_len from the headers.
 * @nh: network header; @th: TCP header or NULL (then found after the IP
 * header); @payload: TCP payload length if known (< 0: from the IP length).
 * Returns false for anything but TCP over IPv4/IPv6.
 */
static __always_inline bool fill_headers(struct net_rx_event *ev, __u16 proto, unsigned char *nh,
					 unsigned char *th, long payload)
{
	__u8 ip[40];
	__u8 tcp[20];
	__u32 iplen;
	__u32 hlen;

	if (proto == ETH_P_IP) {
		if (bpf_probe_read_kernel(ip, 20, nh))
			return false;
		if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_TCP)
			return false;
		hlen = (ip[0] & 0x0f) * 4;
		iplen = ((__u32)ip[2] << 8 | ip[3]);
		ev->family = AF_INET;
		__builtin_memcpy(ev->saddr, &ip[12], 4);
		__builtin_memcpy(ev->daddr, &ip[16], 4);
	} else if (proto == ETH_P_IPV6) {
		if (bpf_probe_read_kernel(ip, 40, nh))
			return false;
		if ((ip[0] >> 4) != 6 || ip[6] != IPPROTO_TCP)
			return false;
		hlen = 40;
		iplen = 40 + ((__u32)ip[4] << 8 | ip[5]);
		ev->family = AF_INET6;
		__builtin_memcpy(ev->saddr, &ip[8], 16);
		__builtin_memcpy(ev->daddr, &ip[24], 16);
	} else {
		return false;
	}
	if (!th)
		th = nh + hlen;
	if (bpf_probe_read_kernel(tcp, sizeof(tcp), th))
		return false;
	ev->sport = (__u16)tcp[0] << 8 | tcp[1];
	ev->dport = (__u16)tcp[2] << 8 | tcp[3];
	ev->seq = (__u32)tcp[4] << 24 | (__u32)tcp[5] << 16 | (__u32)tcp[6] << 8 | tcp[7];
	ev->ack_seq = (__u32)tcp[8] << 24 | (__u32)tcp[9] << 16 | (__u32)tcp[10] << 8 | tcp[11];
	if (payload < 0) {
		hlen += (tcp[12] >> 4) * 4;
		payload = iplen > hlen ? iplen - hlen : 0;
	}
	ev->pkt_len = payload;
	return true;
}

static __always_inline __u32 net_inum(struct net *net)
{
	return net ? BPF_CORE_READ(net, ns.inum) : 0;
}

/* Rate limit; true when the event may be emitted. */
static __always_inline bool rate_ok(struct net_rx_rate *rl, __u64 now)
{
	__u64 win = now >> 30;

	if (!events_per_sec)
		return true;
	if (rl->window != win) {
		rl->window = win; /* racy reset: a few extra events at worst */
		rl->count = 0;
	}
	if (rl->count >= events_per_sec) {
		__sync_fetch_and_add(&rl->suppressed, 1);
		return false;
	}
	__sync_fetch_and_add(&rl->count, 1);
	return true;
}

/*
 * The slow path, for a packet over its stage's threshold with a realtime
 * stamp: filter (TCP, net namespace, already reported, rate), then emit one
 * record.
 * @sk: the socket (NULL at TO_NETIF_RCV). Uses only probe reads, so both
 * implementations share it.
 */
static __noinline int report(struct sk_buff *skb, struct sock *sk, __u64 tstamp, __u64 latency, __u8 where)
{
	struct net_rx_key key = { .skb = (__u64)skb, .tstamp = tstamp };
	struct net_rx_event *ev;
	struct net_rx_rate *rl;
	unsigned char *head;
	struct net *net;
	__u32 netns;
	__u16 proto;
	__u8 one = 1;
	__u32 k = 0;
	bool ok;

	if (where == WHERE_NETIF) {
		net = BPF_CORE_READ(skb, dev, nd_net.net);
	} else {
		if (!sk)
			return 0;
		/* Only TCP stream sockets: not raw or packet sockets reading TCP packets. */
		if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP ||
		    BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type) != SOCK_STREAM)
			return 0;
		net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	}
	netns = net_inum(net);
	if (exclude_host_netns && netns == host_netns_ino)
		return 0;
	if (where != WHERE_NETIF && bpf_map_lookup_elem(&net_rx_reported, &key))
		return 0;
	rl = bpf_map_lookup_elem(&net_rx_rate, &k);
	if (!rl)
		return 0;
	if (!rate_ok(rl, bpf_ktime_get_ns())) {
		/* Remembered too: the later stages skip it, and suppressed counts packets. */
		bpf_map_update_elem(&net_rx_reported, &key, &one, BPF_ANY);
		return 0;
	}

	ev = huatuo_reserve(net_rx_events, ev);
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (where == WHERE_NETIF) {
		/* eth_type_trans() left skb->data at the network header; the header offsets are not set yet. */
		ok = fill_headers(ev, proto, BPF_CORE_READ(skb, data), NULL, -1);
	} else {
		head = BPF_CORE_READ(skb, head);
		__u32 len = BPF_CORE_READ(skb, len);
		unsigned char *th = head + BPF_CORE_READ(skb, transport_header);
		long payload;

		if (where == WHERE_USER) {
			payload = len; /* TCP pulled its header before queueing */
		} else {
			__u8 doff = 0;

			/* At tcp_rcv_established skb->data is the TCP header. */
			bpf_probe_read_kernel(&doff, 1, th + 12);
			payload = len - (doff >> 4) * 4;
			if (payload < 0)
				payload = 0;
		}
		ok = fill_headers(ev, proto, head + BPF_CORE_READ(skb, network_header), th, payload);
		ev->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	}
	if (!ok) {
		bpf_ringbuf_discard(ev, 0);
		return 0;
	}
	ev->latency_ns = latency;
	ev->tstamp_ns = tstamp;
	ev->suppressed = rl->suppressed;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->netns_ino = netns;
	ev->where = where;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_ringbuf_submit(ev, 0);
	bpf_map_update_elem(&net_rx_reported, &key, &one, BPF_ANY);
	return 0;
}

/* ---- tp_btf: plain loads on the fast path -------------------------------- */

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(net_rx_btf_netif, struct sk_buff *skb)
{
	__u64 ts = skb->tstamp;
	__u64 lat = over_threshold(ts, thr_netif_ns);

	if (lat && tstamp_is_realtime_btf(skb))
		report(skb, NULL, ts, lat, WHERE_NETIF);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(net_rx_btf_tcp, struct sock *sk, struct sk_buff *skb)
{
	__u64 ts = skb->tstamp;
	__u64 lat = over_threshold(ts, thr_tcp_ns);

	if (lat && tstamp_is_realtime_btf(skb))
		report(skb, sk, ts, lat, WHERE_TCP);
	return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(net_rx_btf_user, struct sk_buff *skb, int len)
{
	__u64 ts = skb->tstamp;
	__u64 lat = over_threshold(ts, thr_user_ns);

	if (lat && tstamp_is_realtime_btf(skb))
		report(skb, skb->sk, ts, lat, WHERE_USER);
	return 0;
}

/* ---- raw_tp: probe reads ------------------------------------------------- */

SEC("raw_tp/netif_receive_skb")
int BPF_PROG(net_rx_raw_netif, struct sk_buff *skb)
{
	__u64 ts = BPF_CORE_READ(skb, tstamp);
	__u64 lat = over_threshold(ts, thr_netif_ns);

	if (lat && tstamp_is_realtime(skb))
		report(skb, NULL, ts, lat, WHERE_NETIF);
	return 0;
}

SEC("raw_tp/tcp_probe")
int BPF_PROG(net_rx_raw_tcp, struct sock *sk, struct sk_buff *skb)
{
	__u64 ts = BPF_CORE_READ(skb, tstamp);
	__u64 lat = over_threshold(ts, thr_tcp_ns);

	if (lat && tstamp_is_realtime(skb))
		report(skb, sk, ts, lat, WHERE_TCP);
	return 0;
}

SEC("raw_tp/skb_copy_datagram_iovec")
int BPF_PROG(net_rx_raw_user, struct sk_buff *skb, int len)
{
	__u64 ts = BPF_CORE_READ(skb, tstamp);
	__u64 lat = over_threshold(ts, thr_user_ns);

	if (lat && tstamp_is_realtime(skb))
		report(skb, BPF_CORE_READ(skb, sk), ts, lat, WHERE_USER);
	return 0;
}
