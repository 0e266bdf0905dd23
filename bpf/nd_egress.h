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
/* Ethernet + IPv6 + ND header + a few options: all that is ever read. */
#define NLB_ND_LINEAR (sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + NLB_ND_OPTS_OFF + 24)

SEC("tc")
int nlb_nd_egress(struct __sk_buff *skb)
{
	const struct nlb_config *cfg = &nlb_state.config;
	__u32 opt_off = sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + NLB_ND_OPTS_OFF;
	__u32 csum_off = sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + 2;
	struct ethhdr *eth;
	struct ipv6hdr *ip6;
	__u8 *icmp, *opt;
	__u32 saddr[4];
	__u8 old[8], new[8];
	__s64 diff;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	if (bpf_skb_pull_data(skb, NLB_ND_LINEAR) && skb->len >= NLB_ND_LINEAR)
		return TC_ACT_OK;
	eth = (void *)(long)skb->data;
	ip6 = (void *)(eth + 1);
	icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + NLB_ND_OPTS_OFF + 8) > (void *)(long)skb->data_end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->nexthdr != IPPROTO_ICMPV6 ||
	    (icmp[0] != NLB_ICMP6_NS && icmp[0] != NLB_ICMP6_NA))
		return TC_ACT_OK;
	__builtin_memcpy(saddr, &ip6->saddr, 16);
	if (!nlb_find_vip(cfg, NLB_FAMILY_V6, saddr))
		return TC_ACT_OK;

	/* The link-layer option is the first (and only) option the kernel writes. */
	opt = icmp + NLB_ND_OPTS_OFF;
	if ((opt[0] != NLB_ND_OPT_SOURCE_LLADDR && opt[0] != NLB_ND_OPT_TARGET_LLADDR) ||
	    opt[1] != 1)
		return TC_ACT_OK;
	__builtin_memcpy(old, opt, 8);
	__builtin_memcpy(new, opt, 2);
	__builtin_memcpy(new + 2, cfg->cluster_mac, ETH_ALEN);
	diff = bpf_csum_diff((__be32 *)old, 8, (__be32 *)new, 8, 0);
	if (diff < 0 || bpf_skb_store_bytes(skb, opt_off, new, 8, 0) ||
	    bpf_l4_csum_replace(skb, csum_off, 0, (__u32)diff, 0))
		return TC_ACT_SHOT; /* never let the host's MAC out for a VIP */
	return TC_ACT_OK;
}

#endif
