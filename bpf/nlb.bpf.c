// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* nlb's dataplane, one XDP program on the cluster interface of every host. It reads as the
 * packet's path: parse → is the destination a VIP? → port rule → bucket of the affinity key →
 * does this host own it (or track the connection)? → accept (rewrite the destination MAC to
 * our own so the stack takes the frame) or drop; a datagram's later fragments, which carry no
 * ports, follow its first fragment's verdict. ARP and neighbour solicitations for VIPs are
 * answered here; dedicated-IP and all other traffic pass untouched, heartbeats too unless
 * their source MAC is over its budget or, unauthenticated, over the shared one. Remote control (UDP 2504 to the cluster IP) goes to
 * every host's stack, or to none when it is off.
 *
 * Kernel floor: 5.15. Helpers used: map lookup/update/delete, ktime_get_ns,
 * ktime_get_coarse_ns (5.11), xdp_adjust_tail (growth: 5.8), bpf_timer (5.15). Atomics: add
 * without fetch (BPF_XADD, any kernel) and, for the connection filter, or (BPF_ATOMIC, 5.12).
 * No bpf_loop, no kfuncs; every loop has a constant bound. */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include <nlb/flow.h>
#include <nlb/limits.h>
#include <nlb/maps.h>

#include "conntrack.h"
#include "fragments.h"
#include "maps.bpf.h"
#include "neigh.h"
#include "parse.h"
#include "verdict.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ICMP types (linux/icmp.h drags in libc's socket headers, which a BPF build cannot use). */
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define NLB_ICMP6_ECHO_REQUEST 128
#define NLB_ICMP6_ECHO_REPLY 129

static __always_inline int nlb_decide(struct ethhdr *eth, const struct nlb_config *cfg,
				      const struct nlb_packet *p, __u64 rule_idx, int mode)
{
	const struct nlb_rule *rule;
	struct nlb_stats *st;
	__u32 bucket;
	__u16 b;

	if (!nlb_rule_slot_ok(&rule_idx))
		return nlb_malformed();
	rule = &nlb_state.rules[rule_idx];
	st = nlb_stats_slot(rule_idx);
	if (!st)
		return XDP_DROP;
	if (rule->mode == NLB_MODE_DISABLED) {
		st->dropped_disabled++;
		return XDP_DROP;
	}
	bucket = nlb_flow_bucket(p->family, p->saddr, p->sport, rule->affinity,
				 nlb_config_flow_seed(cfg));
	b = rule->bucket[bucket & NLB_BUCKET_MASK];
	if (p->proto == IPPROTO_TCP) {
		int verdict = nlb_tcp_steady(eth, cfg, st, b, p->tcp_flags);

		if (verdict != NLB_SLOW_PATH)
			return verdict;
		if (p->family == NLB_FAMILY_V4) {
			struct nlb_conn_key4 k4 = {
				.saddr = p->saddr[0],
				.daddr = p->daddr[0],
				.sport = p->sport,
				.dport = p->dport,
			};

			return nlb_tcp_tracked(NLB_FAMILY_V4, &nlb_conns4, &nlb_est4, &k4, eth, cfg,
					       st, rule_idx, bucket, b, p->tcp_flags, p->tcp_seq,
					       mode);
		} else {
			struct nlb_conn_key6 k6 = {.sport = p->sport, .dport = p->dport};

			__builtin_memcpy(k6.saddr, p->saddr, 16);
			__builtin_memcpy(k6.daddr, p->daddr, 16);
			return nlb_tcp_tracked(NLB_FAMILY_V6, &nlb_conns6, &nlb_est6, &k6, eth, cfg,
					       st, rule_idx, bucket, b, p->tcp_flags, p->tcp_seq,
					       mode);
		}
	}
	/* UDP and ICMP follow ownership alone: they move with their bucket at once. */
	if (b & NLB_BKT_MINE)
		return nlb_accept(eth, cfg, st);
	return nlb_drop(st);
}

/* Rule slot for a destination port (host byte order) of a VIP. */
static __always_inline __u32 nlb_port_rule(const struct nlb_vip *vip, __u32 proto, __u16 port)
{
	const struct nlb_port_chunk *chunk;
	__u32 key;

	if (vip->port_rule[proto & 1] != NLB_PORT_RULE_VARIES)
		return vip->port_rule[proto & 1];
	key = nlb_port_chunk_key(vip->index % NLB_MAX_VIPS, proto, port);
	chunk = bpf_map_lookup_elem(&nlb_ports, &key);
	if (!chunk)
		return NLB_RULE_DEFAULT;
	return chunk->rule[port & (NLB_PORT_CHUNK - 1)];
}

/* Rule slot of a TCP or UDP packet to `vip`, from its destination port. */
static __always_inline __u32 nlb_rule_of(const struct nlb_vip *vip, const struct nlb_packet *p)
{
	__u32 proto = p->proto == IPPROTO_UDP ? NLB_PROTO_UDP : NLB_PROTO_TCP;

	return nlb_port_rule(vip, proto, bpf_ntohs(p->dport));
}

/* An ICMP error quotes the header of a packet a cluster host sent (VIP → client): it belongs
 * to the host that accepts that client's packets, so decide it as one of them. */
static __always_inline int nlb_decide_quoted(struct ethhdr *eth, const struct nlb_config *cfg,
					     struct nlb_packet *q, __be16 *ports, void *data_end,
					     void *ip_end)
{
	const struct nlb_vip *vip;

	/* the quote ends with the error's datagram, not with the frame (which may be padded) */
	if ((void *)(ports + 2) > data_end || (void *)(ports + 2) > ip_end)
		return nlb_malformed();
	if (q->proto != IPPROTO_TCP && q->proto != IPPROTO_UDP)
		return nlb_decide(eth, cfg, q, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);
	q->sport = ports[1];
	q->dport = ports[0];
	q->tcp_flags = NLB_TCP_ACK;
	vip = nlb_find_vip(cfg, q->family, q->daddr);
	if (!vip)
		return nlb_decide(eth, cfg, q, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);
	return nlb_decide(eth, cfg, q, nlb_rule_of(vip, q), NLB_TRACK_QUOTED);
}

static __always_inline int nlb_icmp4(struct ethhdr *eth, const struct nlb_config *cfg,
				     struct nlb_packet *p, void *data_end)
{
	__u8 *icmp = p->l4;
	struct iphdr *in;
	struct nlb_packet q = {};
	__u8 type;

	if (!icmp)
		return nlb_decide(eth, cfg, p, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);
	if ((void *)(icmp + 8) > data_end || (void *)(icmp + 8) > p->ip_end)
		return nlb_malformed();
	type = icmp[0];
	if (type != ICMP_DEST_UNREACH && type != ICMP_SOURCE_QUENCH && type != ICMP_REDIRECT &&
	    type != ICMP_TIME_EXCEEDED && type != ICMP_PARAMETERPROB)
		return nlb_decide(eth, cfg, p, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);

	in = (struct iphdr *)(icmp + 8);
	if ((void *)(in + 1) > data_end || (void *)(in + 1) > p->ip_end || in->version != 4 ||
	    in->ihl < 5)
		return nlb_malformed();
	q.family = NLB_FAMILY_V4;
	q.proto = in->protocol;
	q.saddr[0] = in->daddr;
	q.daddr[0] = in->saddr;
	if (in->frag_off & bpf_htons(NLB_IP_OFFSET))
		return nlb_decide(eth, cfg, &q, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);
	return nlb_decide_quoted(eth, cfg, &q, (void *)in + in->ihl * 4, data_end, p->ip_end);
}

static __always_inline int nlb_icmp6(struct ethhdr *eth, const struct nlb_config *cfg,
				     struct nlb_packet *p, void *data_end)
{
	__u8 *icmp = p->l4;
	struct ipv6hdr *in;
	struct nlb_packet q = {};
	__u8 type;

	if (!icmp)
		return nlb_decide(eth, cfg, p, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);
	if ((void *)(icmp + 8) > data_end || (void *)(icmp + 8) > p->ip_end)
		return nlb_malformed();
	type = icmp[0];
	if (type == NLB_ICMP6_ECHO_REQUEST || type == NLB_ICMP6_ECHO_REPLY)
		return nlb_decide(eth, cfg, p, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);
	if (type >= 128) {
		/* Neighbour discovery and the rest of ICMPv6's own traffic: every host. */
		__builtin_memcpy(eth->h_dest, cfg->own_mac, ETH_ALEN);
		return XDP_PASS;
	}

	in = (struct ipv6hdr *)(icmp + 8);
	if ((void *)(in + 1) > data_end || (void *)(in + 1) > p->ip_end)
		return nlb_malformed();
	q.family = NLB_FAMILY_V6;
	q.proto = in->nexthdr;
	__builtin_memcpy(q.saddr, &in->daddr, 16);
	__builtin_memcpy(q.daddr, &in->saddr, 16);
	if (q.proto == IPPROTO_FRAGMENT) {
		/* A datagram its host fragmented (a UDP answer past the MTU: IPv6 routers do not
		 * fragment, so a Packet Too Big about it quotes the first fragment). Its ports
		 * follow the fragment header, as in the first fragment the client's host got: the
		 * serving host's error, which lowers that client's path MTU there. A later
		 * fragment has no ports: the default host's, as for IPv4. */
		struct nlb_ipv6_frag_hdr *fh = (void *)(in + 1);

		if ((void *)(fh + 1) > data_end || (void *)(fh + 1) > p->ip_end)
			return nlb_malformed();
		q.proto = fh->nexthdr;
		if (fh->frag_off & bpf_htons(0xfff8))
			return nlb_decide(eth, cfg, &q, NLB_RULE_DEFAULT, NLB_TRACK_QUOTED);
		return nlb_decide_quoted(eth, cfg, &q, (__be16 *)(fh + 1), data_end, p->ip_end);
	}
	return nlb_decide_quoted(eth, cfg, &q, (__be16 *)(in + 1), data_end, p->ip_end);
}

/* Whether a frame to a VIP is this cluster's to judge: sent to the cluster MAC, or to this
 * host's own. A segment that delivers every frame to every port (a bridge of veths, a
 * promiscuous vSwitch) also shows the dataplane frames for the same address sent to another
 * MAC: another cluster's that shares a VIP (a mistyped cluster IP: it answers ARP for the
 * VIP with its own cluster MAC), another host's. Judged by the bucket, they were accepted
 * here too, and a host alone under another cluster IP answered every request its cluster
 * answered (fault test other_cluster_ip). Passed untouched, the stack drops them as another
 * host's. Three 16-bit words each: both addresses are 2-byte aligned. */
static __always_inline int nlb_to_cluster(const struct ethhdr *eth, const struct nlb_config *cfg)
{
	const __u16 *d = (const __u16 *)eth->h_dest;
	const __u16 *c = (const __u16 *)cfg->cluster_mac;
	const __u16 *o = (const __u16 *)cfg->own_mac;

	return !((d[0] ^ c[0]) | (d[1] ^ c[1]) | (d[2] ^ c[2])) ||
	       !((d[0] ^ o[0]) | (d[1] ^ o[1]) | (d[2] ^ o[2]));
}

static __always_inline int nlb_ip(struct xdp_md *ctx, struct ethhdr *eth,
				  const struct nlb_config *cfg, struct nlb_packet *p,
				  void *data_end)
{
	const struct nlb_vip *vip = nlb_find_vip(cfg, p->family, p->daddr);

	if (!vip || !nlb_to_cluster(eth, cfg))
		return XDP_PASS; /* dedicated IP, not cluster traffic, or another MAC's */
	if (nlb_parse_l4(p, data_end))
		return nlb_malformed();

	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		__u32 rule_idx;
		int verdict;

		/* Only the first fragment of a datagram carries its ports (bpf/fragments.h). */
		if (!p->l4)
			return nlb_frag_follow(eth, cfg, p);
		/* VIP index 0 is the cluster IP. A fragmented datagram is never one of remote
		 * control's (they fit one frame): its fragments follow the rules. */
		if (p->proto == IPPROTO_UDP && p->dport == bpf_htons(NLB_REMOTE_CONTROL_PORT) &&
		    vip->index == 0 && !p->fragment)
			return nlb_remote_control(eth, cfg);
		rule_idx = nlb_rule_of(vip, p);
		/* A first fragment is the datagram's header: decided as the whole datagram would
		 * be, TCP tracking included (docs/dataplane.md). */
		verdict = nlb_decide(eth, cfg, p, rule_idx, NLB_TRACK_FULL);
		if (p->fragment)
			nlb_frag_record(p, rule_idx, verdict);
		return verdict;
	}
	switch (p->proto) {
	case IPPROTO_ICMP:
		if (p->family == NLB_FAMILY_V4)
			return nlb_icmp4(eth, cfg, p, data_end);
		break;
	case IPPROTO_ICMPV6:
		if (p->family == NLB_FAMILY_V6)
			return nlb_icmp6(eth, cfg, p, data_end);
		break;
	}
	/* Other protocols to a VIP go to every host, as in NLB. */
	{
		struct nlb_stats *st = nlb_stats_slot(NLB_STATS_GLOBAL);

		if (st)
			st->passed_other++;
	}
	__builtin_memcpy(eth->h_dest, cfg->own_mac, ETH_ALEN);
	return XDP_PASS;
}

/* 0x886F frames: each source's budget, and the one unknown sources share. */
#include "heartbeat.h"

/* The common case on its own path, values kept in registers: untagged IPv4 without options
 * or IPv6 without extension headers, not a fragment, TCP or UDP. It decides exactly as the
 * general path does (the tests run both); anything unusual falls through to the general
 * path. This is its second half, from the transport header on: `l4_len` bytes of the
 * datagram start at `l4`; `family` is a constant at each call, so each family's copy keeps
 * only its own key and tables. */
static __always_inline int nlb_l4_fast(struct ethhdr *eth, const struct nlb_config *cfg,
				       const struct nlb_vip *vip, __u8 family, const __u32 *saddr,
				       const __u32 *daddr, __u8 proto, __u8 *l4, __u32 l4_len,
				       void *data_end)
{
	__u32 l4_min = proto == IPPROTO_TCP ? 20 : 8;
	const struct nlb_rule *rule;
	struct nlb_stats *st;
	__u64 rule_idx;
	__u32 bucket;
	__be16 sport, dport;
	__u16 b;
	int verdict;

	if (l4_len < l4_min)
		return nlb_malformed();
	if ((void *)(l4 + 20) > data_end)
		return NLB_SLOW_PATH; /* a datagram this short: the general path checks it */
	if (proto == IPPROTO_TCP) {
		if ((l4[12] >> 4) < 5 || (__u32)(l4[12] >> 4) * 4 > l4_len)
			return nlb_malformed();
	} else if (bpf_ntohs(*(__be16 *)(l4 + 4)) < 8 || bpf_ntohs(*(__be16 *)(l4 + 4)) > l4_len) {
		return nlb_malformed();
	} else if (*(__be16 *)(l4 + 2) == bpf_htons(NLB_REMOTE_CONTROL_PORT) && vip->index == 0) {
		return nlb_remote_control(eth, cfg); /* UDP to the cluster IP (VIP index 0) */
	}
	sport = *(__be16 *)l4;
	dport = *(__be16 *)(l4 + 2);
	rule_idx = nlb_port_rule(vip, proto == IPPROTO_UDP ? NLB_PROTO_UDP : NLB_PROTO_TCP,
				 bpf_ntohs(dport));
	if (!nlb_rule_slot_ok(&rule_idx))
		return nlb_malformed();
	rule = &nlb_state.rules[rule_idx];
	if (rule->mode == NLB_MODE_DISABLED) {
		st = nlb_stats_slot(rule_idx);
		if (st)
			st->dropped_disabled++;
		return XDP_DROP;
	}
	bucket = nlb_flow_bucket(family, saddr, sport, rule->affinity, nlb_config_flow_seed(cfg));
	b = rule->bucket[bucket & NLB_BUCKET_MASK];
	/* The counters' lookup after the hash: clang takes it for a call, which would clobber
	 * r1-r5 and spill the hash's inputs to the stack had it come first (the kernel inlines
	 * it: a few loads). */
	st = nlb_stats_slot(rule_idx);
	if (!st)
		return XDP_DROP;
	if (proto == IPPROTO_UDP) {
		if (b & NLB_BKT_MINE)
			return nlb_accept(eth, cfg, st);
		return nlb_drop(st);
	}
	verdict = nlb_tcp_steady(eth, cfg, st, b, l4[13]);
	if (verdict != NLB_SLOW_PATH)
		return verdict;
	if (family == NLB_FAMILY_V4) {
		struct nlb_conn_key4 k4 = {
			.saddr = saddr[0],
			.daddr = daddr[0],
			.sport = sport,
			.dport = dport,
		};

		return nlb_tcp_tracked(NLB_FAMILY_V4, &nlb_conns4, &nlb_est4, &k4, eth, cfg, st,
				       rule_idx, bucket, b, l4[13], bpf_ntohl(*(__be32 *)(l4 + 4)),
				       NLB_TRACK_FULL);
	} else {
		struct nlb_conn_key6 k6 = {.sport = sport, .dport = dport};

		__builtin_memcpy(k6.saddr, saddr, 16);
		__builtin_memcpy(k6.daddr, daddr, 16);
		return nlb_tcp_tracked(NLB_FAMILY_V6, &nlb_conns6, &nlb_est6, &k6, eth, cfg, st,
				       rule_idx, bucket, b, l4[13], bpf_ntohl(*(__be32 *)(l4 + 4)),
				       NLB_TRACK_FULL);
	}
}

/* The common case's IPv4 half: the caller saw a 20-byte header (version 4, no options), not
 * a fragment, carrying TCP or UDP. */
static __always_inline int nlb_ipv4_fast(struct ethhdr *eth, struct iphdr *ip,
					 const struct nlb_config *cfg, void *data_end)
{
	__u32 tot_len = nlb_ntohs_len(ip->tot_len);
	const struct nlb_vip *vip = nlb_find_vip(cfg, NLB_FAMILY_V4, &ip->daddr);

	if (!vip || !nlb_to_cluster(eth, cfg))
		return XDP_PASS;
	if ((void *)ip + tot_len > data_end || tot_len < sizeof(*ip))
		return nlb_malformed();
	return nlb_l4_fast(eth, cfg, vip, NLB_FAMILY_V4, &ip->saddr, &ip->daddr, ip->protocol,
			   (__u8 *)(ip + 1), tot_len - sizeof(*ip), data_end);
}

/* A later fragment of untagged IPv4 TCP or UDP without options (the caller saw a 20-byte
 * header, version 4, with a fragment offset): the record its first fragment left decides
 * (bpf/fragments.h), as on the general path, which it skips with the call and all its
 * parsing (15 ns a fragment became 13). VPNs, DNS and video send datagrams past the MTU all
 * day. The general path's checks in its order: a length past the frame is malformed whatever
 * the address, then the VIP and the destination MAC. */
static __always_inline int nlb_ipv4_later_fragment(struct ethhdr *eth, struct iphdr *ip,
						   const struct nlb_config *cfg, void *data_end)
{
	__u32 tot_len = nlb_ntohs_len(ip->tot_len);
	struct nlb_packet p = {
	    .family = NLB_FAMILY_V4,
	    .proto = ip->protocol,
	    .frag_id = ip->id,
	};

	if (tot_len < sizeof(*ip) || (void *)ip + tot_len > data_end)
		return nlb_malformed();
	if (!nlb_find_vip(cfg, NLB_FAMILY_V4, &ip->daddr) || !nlb_to_cluster(eth, cfg))
		return XDP_PASS;
	p.saddr[0] = ip->saddr;
	p.daddr[0] = ip->daddr;
	return nlb_frag_follow(eth, cfg, &p);
}

/* The common case's IPv6 half: the caller saw a fixed header (version 6) whose next header is
 * TCP or UDP, so no extension header, no fragment and no neighbour discovery. */
static __always_inline int nlb_ipv6_fast(struct ethhdr *eth, struct ipv6hdr *ip6,
					 const struct nlb_config *cfg, void *data_end)
{
	__u32 payload_len = nlb_ntohs_len(ip6->payload_len);
	const struct nlb_vip *vip;

	/* past the frame: malformed whether or not it is for a VIP (as the general path says) */
	if ((void *)(ip6 + 1) + payload_len > data_end)
		return NLB_SLOW_PATH;
	vip = nlb_find_vip(cfg, NLB_FAMILY_V6, ip6->daddr.in6_u.u6_addr32);
	if (!vip || !nlb_to_cluster(eth, cfg))
		return XDP_PASS;
	return nlb_l4_fast(eth, cfg, vip, NLB_FAMILY_V6, ip6->saddr.in6_u.u6_addr32,
			   ip6->daddr.in6_u.u6_addr32, ip6->nexthdr, (__u8 *)(ip6 + 1), payload_len,
			   data_end);
}

/* Everything but the common case: VLAN tags, IPv4 options and fragments, IPv6, ICMP, ARP
 * and neighbour solicitations, connections opening, closing or in moving buckets. A
 * subprogram of its own, so that the common case's code stays small and straight.
 *
 * Tags (TPID 802.1Q or 802.1ad) are read as the kernel reads them: a priority tag (VLAN id 0)
 * is no VLAN, and the kernel strips any number of them, so they are skipped; the first tag
 * with a VLAN id says the frame's VLAN, which must be the cluster's (nlb_config.vlan; 0: no
 * VLAN id at all), or the frame is another VLAN's: it passes untouched, answered by nobody
 * and counted nowhere, whatever it carries (heartbeats and ARP included); so does one with a
 * second VLAN id inside (a VLAN in a VLAN). Until 2026-12-06 a second tag of any kind passed:
 * under two priority tags, heartbeats escaped their budget and IP to a VIP every rule, while
 * the kernel still took them. More than NLB_MAX_TAGS tags: malformed. Answers (ARP, ND) are
 * built in place and keep the request's tags. */
static __attribute__((noinline)) int nlb_general(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	const struct nlb_config *cfg;
	struct nlb_packet p = {};
	__u32 l3_off = sizeof(*eth);
	__u16 vid = 0;
	__be16 proto;
	int verdict;

	if ((void *)(eth + 1) > data_end)
		return nlb_malformed();
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < NLB_MAX_TAGS; i++) {
		struct nlb_vlan_hdr *vh = data + l3_off;
		__u16 id;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return nlb_malformed();
		id = bpf_ntohs(vh->tci) & NLB_VLAN_VID_MASK;
		if (id && vid)
			return XDP_PASS; /* a VLAN inside a VLAN: not the cluster's frame */
		if (id)
			vid = id;
		proto = vh->encapsulated_proto;
		l3_off += sizeof(*vh);
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return nlb_malformed();
	if (vid != nlb_state.config.vlan)
		return XDP_PASS;
	if (proto == bpf_htons(NLB_ETH_P_HEARTBEAT))
		return nlb_heartbeat(eth);
	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6) &&
	    proto != bpf_htons(ETH_P_ARP))
		return XDP_PASS; /* everything else that is not IP */

	cfg = &nlb_state.config;
	if (proto == bpf_htons(ETH_P_IP)) {
		if (nlb_parse_ipv4(&p, data + l3_off, data_end))
			return nlb_malformed();
		return nlb_ip(ctx, eth, cfg, &p, data_end);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		int parsed = nlb_parse_ipv6(&p, data + l3_off, data_end);

		/* Too deep to read to its end: none of ours unless it is to a VIP or to a
		 * multicast group (neighbour discovery for a VIP goes to one). */
		if (parsed == NLB_PARSE_TOO_DEEP &&
		    (p.daddr[0] & bpf_htonl(0xff000000)) != bpf_htonl(0xff000000) &&
		    !nlb_find_vip(cfg, NLB_FAMILY_V6, p.daddr))
			return XDP_PASS;
		if (parsed)
			return nlb_malformed();
		/* A solicitation for a VIP goes to a solicited-node multicast address, not to the
		 * VIP, so neighbour discovery is recognised by its target, before the VIP
		 * lookup. */
		if (p.proto == IPPROTO_ICMPV6) {
			verdict = nlb_neigh6(ctx, cfg, &p, l3_off, data_end);
			if (verdict != NLB_NOT_NEIGH)
				return verdict;
		}
		return nlb_ip(ctx, eth, cfg, &p, data_end);
	}
	return nlb_arp(cfg, eth, data + l3_off, data_end);
}

SEC("xdp")
int nlb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct ipv6hdr *ip6 = (void *)(eth + 1);

	/* A VLAN cluster's frames are tagged: the general path reads the tag. */
	if (nlb_state.config.vlan)
		return nlb_general(ctx);
	if ((void *)(ip + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP) &&
	    *(__u8 *)ip == 0x45 && (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)) {
		/* A first fragment (MF, offset 0) carries the ports: the general path records
		 * it for the later ones. */
		if (!(ip->frag_off & bpf_htons(NLB_IP_MF | NLB_IP_OFFSET))) {
			int verdict = nlb_ipv4_fast(eth, ip, &nlb_state.config, data_end);

			if (verdict != NLB_SLOW_PATH)
				return verdict;
		} else if (ip->frag_off & bpf_htons(NLB_IP_OFFSET)) {
			return nlb_ipv4_later_fragment(eth, ip, &nlb_state.config, data_end);
		}
	}
	if ((void *)(ip6 + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IPV6) &&
	    (*(__u8 *)ip6 >> 4) == 6 &&
	    (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP)) {
		int verdict = nlb_ipv6_fast(eth, ip6, &nlb_state.config, data_end);

		if (verdict != NLB_SLOW_PATH)
			return verdict;
	}
	/* Untagged ARP is answered here too: routers ask for VIPs all the time. */
	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_ARP))
		return nlb_arp(&nlb_state.config, eth, (void *)(eth + 1), data_end);
	return nlb_general(ctx);
}

/* The watchdog's timer and its arming program. */
#include "watchdog.h"

/* TC egress program for the host's own neighbour discovery from IPv6 VIPs. */
#include "nd_egress.h"

/* The socket program and the agent's seeding of established connections. */
#include "sockops.h"
