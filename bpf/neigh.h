/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* ARP and IPv6 neighbour answers for VIPs, sent back out of the interface with XDP_TX. Every
 * host answers with the cluster MAC as the link-layer address and an Ethernet source of
 * 02-h-a-b-c-d, a MAC no host owns, so switches never learn the cluster MAC and keep flooding
 * it to every host. The kernel sees no ARP or ND about a VIP at all, answered here or not,
 * so it never answers for a VIP with its own MAC. */
#ifndef NLB_NEIGH_H
#define NLB_NEIGH_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include <nlb/flow.h>
#include <nlb/maps.h>

#include "maps.bpf.h"
#include "parse.h"
#include "verdict.h"

#define NLB_ARP_REQUEST 1
#define NLB_ARP_REPLY 2
#define NLB_ICMP6_NS 135
#define NLB_ICMP6_NA 136
#define NLB_ND_OPT_TARGET_LLADDR 2
#define NLB_NA_FLAG_SOLICITED 0x40
#define NLB_NA_FLAG_OVERRIDE 0x20

struct nlb_arp {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

/* Neighbour advertisement body: ICMPv6 header, flags, target, target link-layer option. */
struct nlb_na {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u8 flags;
	__u8 reserved[3];
	__u32 target[4];
	__u8 opt_type;
	__u8 opt_len;
	__u8 opt_mac[ETH_ALEN];
};

static __always_inline const struct nlb_vip *nlb_find_vip(const struct nlb_config *cfg,
							   __u8 family, const __u32 *addr)
{
	__u32 slot = nlb_vip_slot(family, addr, cfg->vip_seed);
	const struct nlb_vip *vip = &nlb_state.vips[slot & NLB_VIP_SLOT_MASK];

	if (vip->family != family || vip->addr[0] != addr[0])
		return NULL;
	if (family == NLB_FAMILY_V6 &&
	    (vip->addr[1] != addr[1] || vip->addr[2] != addr[2] || vip->addr[3] != addr[3]))
		return NULL;
	return vip;
}

static __always_inline void nlb_count_global_arp(void)
{
	__u32 slot = NLB_STATS_GLOBAL;
	struct nlb_stats *st = bpf_map_lookup_elem(&nlb_stats, &slot);

	if (st)
		st->arp_replied++;
}

/* `mac` claims the VIP `addr` as its own; not the cluster MAC, so another machine does
 * (struct nlb_claim). */
static __always_inline void nlb_note_claim(const struct nlb_config *cfg, const __u8 *mac,
					   __u8 family, const __u32 *addr)
{
	struct nlb_stats *st;

	if (mac[0] == cfg->cluster_mac[0] && mac[1] == cfg->cluster_mac[1] &&
	    mac[2] == cfg->cluster_mac[2] && mac[3] == cfg->cluster_mac[3] &&
	    mac[4] == cfg->cluster_mac[4] && mac[5] == cfg->cluster_mac[5])
		return;
	st = nlb_stats_slot(NLB_STATS_GLOBAL);
	if (st)
		st->vip_claims++;
	__builtin_memcpy(nlb_state.claim.addr, addr, 16);
	__builtin_memcpy(nlb_state.claim.mac, mac, ETH_ALEN);
	nlb_state.claim.family = family;
}

/* Returned by nlb_neigh6 for what is not neighbour discovery about a VIP. */
#define NLB_NOT_NEIGH (-2)

/* ARP or ND about a VIP that this host does not answer. It must not reach the kernel: with
 * the VIP configured on the interface, the kernel would answer with the host's own MAC and
 * every client that heard it would send the VIP's traffic to this one host. */
static __always_inline int nlb_neigh_dropped(void)
{
	struct nlb_stats *st = nlb_stats_slot(NLB_STATS_GLOBAL);

	if (st)
		st->neigh_dropped++;
	return XDP_DROP;
}

/* ARP whose target is a VIP is answered here or dropped; ARP about anything else (dedicated
 * IPs, other hosts) passes untouched, and a cut ARP body is malformed. The target is read
 * where Ethernet/IPv4 ARP has it, the only layout the kernel acts on (arp_rcv wants the
 * device's address length and 4, arp_process protocol IPv4), so nothing the kernel could
 * answer escapes the check. The kernel also answers hardware type 6 (IEEE 802), and takes
 * replies and gratuitous ARP for its neighbour table: all dropped here when about a VIP. */
static __always_inline int nlb_arp(const struct nlb_config *cfg, struct ethhdr *eth,
				   struct nlb_arp *arp, void *data_end)
{
	__u8 req_sha[ETH_ALEN];
	__u32 tpa[4] = {};
	__u32 sender[4] = {};
	__u32 spa;

	if ((void *)(arp + 1) > data_end)
		return nlb_malformed();
	__builtin_memcpy(&tpa[0], arp->tpa, 4);
	__builtin_memcpy(&sender[0], arp->spa, 4);
	/* A VIP as the sender's address: another machine answering for it, announcing it or
	 * asking with it (this cluster's own ARP carries the cluster MAC; arp_announce keeps the
	 * hosts' kernels from asking with a VIP). */
	if (arp->htype == bpf_htons(1) && arp->ptype == bpf_htons(ETH_P_IP) &&
	    nlb_find_vip(cfg, NLB_FAMILY_V4, sender))
		nlb_note_claim(cfg, arp->sha, NLB_FAMILY_V4, sender);
	if (!nlb_find_vip(cfg, NLB_FAMILY_V4, tpa))
		return XDP_PASS;
	if (!(cfg->flags & NLB_CFG_ANSWER_NEIGH) || arp->op != bpf_htons(NLB_ARP_REQUEST) ||
	    arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != ETH_ALEN || arp->plen != 4)
		return nlb_neigh_dropped();

	__builtin_memcpy(req_sha, arp->sha, ETH_ALEN);
	__builtin_memcpy(&spa, arp->spa, 4);
	arp->op = bpf_htons(NLB_ARP_REPLY);
	__builtin_memcpy(arp->tha, req_sha, ETH_ALEN);
	__builtin_memcpy(arp->tpa, &spa, 4);
	__builtin_memcpy(arp->sha, cfg->cluster_mac, ETH_ALEN);
	__builtin_memcpy(arp->spa, &tpa[0], 4);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->arp_src_mac, ETH_ALEN);
	nlb_count_global_arp();
	return XDP_TX;
}

static __always_inline __u16 nlb_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u32 nlb_csum_add(__u32 sum, const void *buf, int len)
{
	const __u16 *w = buf;

#pragma unroll
	for (int i = 0; i < len / 2; i++)
		sum += w[i];
	return sum;
}

/* Turns a neighbour solicitation for `target` (a VIP) into a solicited advertisement of the
 * cluster MAC. The reply always has the same size, so the frame is resized to it; l3_off is
 * the offset of the IPv6 header (14 or 18), and the ICMPv6 header follows it directly. */
static __always_inline int nlb_answer_ns(struct xdp_md *ctx, const struct nlb_config *cfg,
					 __u32 l3_off, const __u32 *target)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	__u8 req_mac[ETH_ALEN];
	__u32 req_src[4];
	struct nlb_na na = {};
	int unspecified, delta;
	__u32 sum;

	ip6 = data + (l3_off & 31);
	if ((void *)(ip6 + 1) > data_end)
		return nlb_malformed();
	__builtin_memcpy(req_src, &ip6->saddr, 16);
	__builtin_memcpy(req_mac, eth->h_source, ETH_ALEN);

	unspecified = !(req_src[0] | req_src[1] | req_src[2] | req_src[3]);
	if (unspecified) {
		/* duplicate address detection: the answer goes to all nodes (RFC 4861 §7.2.4) */
		req_src[0] = bpf_htonl(0xff020000);
		req_src[1] = 0;
		req_src[2] = 0;
		req_src[3] = bpf_htonl(1);
		req_mac[0] = 0x33;
		req_mac[1] = 0x33;
		req_mac[2] = 0;
		req_mac[3] = 0;
		req_mac[4] = 0;
		req_mac[5] = 1;
	}

	na.type = NLB_ICMP6_NA;
	na.flags = (unspecified ? 0 : NLB_NA_FLAG_SOLICITED) | NLB_NA_FLAG_OVERRIDE;
	__builtin_memcpy(na.target, target, 16);
	na.opt_type = NLB_ND_OPT_TARGET_LLADDR;
	na.opt_len = 1;
	__builtin_memcpy(na.opt_mac, cfg->cluster_mac, ETH_ALEN);
	sum = bpf_htons(sizeof(na)) + bpf_htons(IPPROTO_ICMPV6);
	sum = nlb_csum_add(sum, target, 16);
	sum = nlb_csum_add(sum, req_src, 16);
	sum = nlb_csum_add(sum, &na, sizeof(na));
	na.csum = nlb_csum_fold(sum);

	delta = (int)((l3_off & 31) + sizeof(struct ipv6hdr) + sizeof(na)) - (int)(data_end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return XDP_DROP;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip6 = data + (l3_off & 31);
	if ((void *)(ip6 + 1) + sizeof(na) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, req_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->arp_src_mac, ETH_ALEN);
	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(sizeof(na));
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = 255;
	__builtin_memcpy(&ip6->saddr, target, 16);
	__builtin_memcpy(&ip6->daddr, req_src, 16);
	__builtin_memcpy(ip6 + 1, &na, sizeof(na));

	{
		struct nlb_stats *st = nlb_stats_slot(NLB_STATS_GLOBAL);

		if (st)
			st->nd_replied++;
	}
	return XDP_TX;
}

/* Neighbour solicitations and advertisements whose target is a VIP, wherever they are
 * addressed (a solicitation goes to a solicited-node multicast address, an announcement to
 * all nodes): a solicitation this host can answer is answered, every other one is dropped,
 * so the kernel's ND never answers for a VIP (it would, with the host's MAC, where this does
 * not: behind extension headers, with answering off) and never hears another host advertise
 * one (it would log a conflict with its own address). A solicitation is answered when RFC
 * 4861 §7.1.1 holds (hop limit 255, code 0) and no extension header precedes the ICMPv6
 * header, the only layout the reply is built for. A message cut before the end of its target
 * is malformed. NLB_NOT_NEIGH for the rest, which goes on to the VIP lookup. */
static __always_inline int nlb_neigh6(struct xdp_md *ctx, const struct nlb_config *cfg,
				      const struct nlb_packet *p, __u32 l3_off, void *data_end)
{
	void *data = (void *)(long)ctx->data;
	struct ipv6hdr *ip6 = data + (l3_off & 31);
	__u8 *icmp = p->l4;
	__u32 target[4];

	/* An empty ICMPv6 message is the VIP lookup's business (malformed if it is addressed to
	 * a VIP, passed otherwise), not neighbour discovery. */
	if (!icmp || (void *)(icmp + 1) > data_end || (void *)(icmp + 1) > p->ip_end)
		return NLB_NOT_NEIGH;
	if (icmp[0] != NLB_ICMP6_NS && icmp[0] != NLB_ICMP6_NA)
		return NLB_NOT_NEIGH;
	if ((void *)(icmp + 24) > data_end || (void *)(icmp + 24) > p->ip_end ||
	    (void *)(ip6 + 1) > data_end)
		return nlb_malformed();
	__builtin_memcpy(target, icmp + 8, 16);
	if (!nlb_find_vip(cfg, NLB_FAMILY_V6, target))
		return NLB_NOT_NEIGH;
	if (icmp[0] == NLB_ICMP6_NS && (cfg->flags & NLB_CFG_ANSWER_NEIGH) &&
	    icmp == data + (l3_off & 31) + sizeof(struct ipv6hdr) && ip6->hop_limit == 255 &&
	    icmp[1] == 0)
		return nlb_answer_ns(ctx, cfg, l3_off, target);
	/* An advertisement whose first option is the target's link-layer address, as every
	 * advertisement of a VIP carries it (this cluster's with the cluster MAC). */
	if (icmp[0] == NLB_ICMP6_NA && (void *)(icmp + 32) <= data_end &&
	    (void *)(icmp + 32) <= p->ip_end && icmp[24] == NLB_ND_OPT_TARGET_LLADDR &&
	    icmp[25] == 1)
		nlb_note_claim(cfg, icmp + 26, NLB_FAMILY_V6, target);
	return nlb_neigh_dropped();
}

#endif
