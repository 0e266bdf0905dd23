/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* TC egress: a host's own neighbour discovery must not tell the segment that a VIP lives at
 * the host's MAC. When the kernel resolves a client for a reply sent from an IPv6 VIP, its
 * solicitation has the VIP as source and the host's MAC as source link-layer address, and the
 * client would then send everything for the VIP to this one host. IPv4 has arp_announce for
 * this; IPv6 has nothing, so the link-layer option of such solicitations and advertisements
 * is rewritten to the cluster MAC (checksum adjusted), which keeps every client sending to the
 * cluster MAC. Everything else leaves untouched. */
#ifndef NLB_ND_EGRESS_H
#define NLB_ND_EGRESS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.bpf.h"
#include "neigh.h"

#define NLB_ND_OPT_SOURCE_LLADDR 1
/* ICMPv6 header (4) + reserved/flags (4) + target (16): where NS/NA options start. */
#define NLB_ND_OPTS_OFF 24

/* The start of an outgoing frame as far as this program reads it: the EtherType, the IPv6
 * header, the ND message up to its options and the first option. */
struct nlb_nd_out {
	__be16 h_proto;
	struct ipv6hdr ip6;
	__u8 icmp[NLB_ND_OPTS_OFF];
	__u8 opt[8];
} __attribute__((packed));

/* Every IPv6 packet the host sends passes here, so everything but ND from a VIP must leave
 * at the cost of one or two bpf_skb_load_bytes and nothing else: no bpf_skb_pull_data (it
 * would copy the headers of every large send into the linear area) and no direct packet
 * access, whose bounds would need that pull. bpf_skb_store_bytes makes the 8 bytes it writes
 * writable itself, for the few solicitations and advertisements it rewrites. */
SEC("tc")
int nlb_nd_egress(struct __sk_buff *skb)
{
	const struct nlb_config *cfg = &nlb_state.config;
	const __u32 at = __builtin_offsetof(struct ethhdr, h_proto);
	const __u32 opt_off = at + __builtin_offsetof(struct nlb_nd_out, opt);
	const __u32 csum_off = at + __builtin_offsetof(struct nlb_nd_out, icmp) + 2;
	struct nlb_nd_out f;
	__u32 saddr[4];
	__u8 new[8];
	__s64 diff;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	/* The EtherType and the IPv6 header up to its next header: enough to let almost every
	 * packet go. A packet too short for an ND message with an option fails the second load
	 * and leaves too. */
	if (bpf_skb_load_bytes(skb, at, &f, __builtin_offsetof(struct nlb_nd_out, ip6.hop_limit)) ||
	    f.h_proto != bpf_htons(ETH_P_IPV6) || f.ip6.nexthdr != IPPROTO_ICMPV6)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, at, &f, sizeof(f)) ||
	    (f.icmp[0] != NLB_ICMP6_NS && f.icmp[0] != NLB_ICMP6_NA))
		return TC_ACT_OK;
	__builtin_memcpy(saddr, &f.ip6.saddr, 16);
	if (!nlb_find_vip(cfg, NLB_FAMILY_V6, saddr))
		return TC_ACT_OK;

	/* The link-layer option is the first (and only) option the kernel writes. */
	if ((f.opt[0] != NLB_ND_OPT_SOURCE_LLADDR && f.opt[0] != NLB_ND_OPT_TARGET_LLADDR) ||
	    f.opt[1] != 1)
		return TC_ACT_OK;
	__builtin_memcpy(new, f.opt, 2);
	__builtin_memcpy(new + 2, cfg->cluster_mac, ETH_ALEN);
	diff = bpf_csum_diff((__be32 *)f.opt, 8, (__be32 *)new, 8, 0);
	if (diff < 0 || bpf_skb_store_bytes(skb, opt_off, new, 8, 0) ||
	    bpf_l4_csum_replace(skb, csum_off, 0, (__u32)diff, 0))
		return TC_ACT_SHOT; /* never let the host's MAC out for a VIP */
	return TC_ACT_OK;
}

#endif
