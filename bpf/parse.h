/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Packet parsing: Ethernet (+ one VLAN tag), IPv4 (+ options), IPv6 (+ extension headers and
 * the fragment header), TCP and UDP ports. Every read is preceded by its bounds check against
 * data_end, in the one idiom `if ((void *)(p + 1) > end)`. */
#ifndef NLB_PARSE_H
#define NLB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include <nlb/maps.h>

/* IPv6 extension headers walked before giving up on a packet (NLB_PARSE_TOO_DEEP: a VIP or
 * multicast packet with more is treated as malformed, no legitimate client needs them; one to
 * any other address passes untouched, as IPv4 to a non-VIP does whatever it carries). */
#define NLB_MAX_EXT_HDRS 4

#define NLB_TCP_FIN 0x01
#define NLB_TCP_SYN 0x02
#define NLB_TCP_RST 0x04
#define NLB_TCP_ACK 0x10

#define NLB_IP_MF 0x2000
#define NLB_IP_OFFSET 0x1fff

/* The VLAN id in a tag's TCI; 0 is a priority tag, which carries no VLAN (IEEE 802.1Q). */
#define NLB_VLAN_VID_MASK 0x0fff

struct nlb_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct nlb_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3, bit 0 = more fragments */
	__be32 identification;
};

/* What the decision needs of an IP packet addressed to a VIP. */
struct nlb_packet {
	__u32 saddr[4];
	__u32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 fragment; /* any fragment of a fragmented datagram */
	__u32 tcp_seq; /* TCP: the sequence number, host order */
	__be32 frag_id; /* the datagram's IP ID (IPv4: 16 bits), when `fragment` */
	void *l4;       /* first byte after the IP headers; NULL for non-first fragments */
	void *ip_end;  /* end of the IP datagram (tot_len / payload_len), never past data_end */
};

enum nlb_parse_result {
	NLB_PARSE_OK = 0,
	NLB_PARSE_MALFORMED = -1,
	NLB_PARSE_TOO_DEEP = -2, /* IPv6: more extension headers than walked; addresses read */
};

/* Ports and TCP flags; l4 is bounded by ip_end, which is bounded by data_end. */
/* A 16-bit length field in host order, with bounds the verifier keeps. Before 6.19 (and its
 * stable backports) the verifier forgets a value's bounds at a byte swap, so the length a
 * packet pointer is moved by would be unbounded and the program refused (5.15, 6.1: see
 * scripts/bench/verifier-kernels.sh). The mask changes nothing but tells it 0..0xffff; the
 * barrier keeps clang from dropping the mask as redundant. */
static __always_inline __u32 nlb_ntohs_len(__be16 v)
{
	__u32 h = bpf_ntohs(v);

	barrier_var(h);
	return h & 0xffff;
}

static __always_inline int nlb_parse_l4(struct nlb_packet *p, void *data_end)
{
	void *l4 = p->l4;

	if (!l4)
		return NLB_PARSE_OK;
	if (p->proto == IPPROTO_TCP) {
		__u8 *tcp = l4;

		if ((void *)(tcp + 20) > data_end || (void *)(tcp + 20) > p->ip_end)
			return NLB_PARSE_MALFORMED;
		/* data offset below 5 words cannot hold a TCP header */
		if ((tcp[12] >> 4) < 5)
			return NLB_PARSE_MALFORMED;
		if ((void *)(tcp + (tcp[12] >> 4) * 4) > p->ip_end)
			return NLB_PARSE_MALFORMED;
		p->sport = *(__be16 *)tcp;
		p->dport = *(__be16 *)(tcp + 2);
		p->tcp_flags = tcp[13];
		p->tcp_seq = bpf_ntohl(*(__be32 *)(tcp + 4));
	} else if (p->proto == IPPROTO_UDP) {
		__be16 *udp = l4;

		if ((void *)(udp + 4) > data_end || (void *)(udp + 4) > p->ip_end)
			return NLB_PARSE_MALFORMED;
		/* A length past the datagram's end is one the stack discards as short: counted
		 * here as malformed, not accepted by one host. A first fragment's covers the
		 * fragments to come. */
		if (bpf_ntohs(udp[2]) < 8 ||
		    (!p->fragment && (void *)udp + bpf_ntohs(udp[2]) > p->ip_end))
			return NLB_PARSE_MALFORMED;
		p->sport = udp[0];
		p->dport = udp[1];
	}
	return NLB_PARSE_OK;
}

static __always_inline int nlb_parse_ipv4(struct nlb_packet *p, struct iphdr *ip, void *data_end)
{
	__u32 hlen, tot_len;
	__u16 frag;

	if ((void *)(ip + 1) > data_end)
		return NLB_PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return NLB_PARSE_MALFORMED;
	hlen = ip->ihl * 4;
	tot_len = nlb_ntohs_len(ip->tot_len);
	if (tot_len < hlen)
		return NLB_PARSE_MALFORMED;
	p->ip_end = (void *)ip + tot_len;
	if (p->ip_end > data_end)
		return NLB_PARSE_MALFORMED;

	p->family = NLB_FAMILY_V4;
	p->proto = ip->protocol;
	p->saddr[0] = ip->saddr;
	p->daddr[0] = ip->daddr;
	frag = bpf_ntohs(ip->frag_off);
	p->fragment = (frag & (NLB_IP_MF | NLB_IP_OFFSET)) != 0;
	p->frag_id = ip->id;
	p->l4 = (frag & NLB_IP_OFFSET) ? NULL : (void *)ip + hlen;
	return NLB_PARSE_OK;
}

static __always_inline int nlb_is_ipv6_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT || nexthdr == IPPROTO_AH;
}

static __always_inline int nlb_parse_ipv6(struct nlb_packet *p, struct ipv6hdr *ip6, void *data_end)
{
	__u8 nexthdr;
	void *cur;

	if ((void *)(ip6 + 1) > data_end)
		return NLB_PARSE_MALFORMED;
	if (ip6->version != 6)
		return NLB_PARSE_MALFORMED;
	p->ip_end = (void *)(ip6 + 1) + nlb_ntohs_len(ip6->payload_len);
	if (p->ip_end > data_end)
		return NLB_PARSE_MALFORMED;

	p->family = NLB_FAMILY_V6;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	nexthdr = ip6->nexthdr;
	cur = ip6 + 1;

#pragma unroll
	for (int i = 0; i < NLB_MAX_EXT_HDRS; i++) {
		if (!nlb_is_ipv6_ext(nexthdr))
			break;
		/* One register for this header's start, from which both its bounds check and its
		 * reads are computed: left alone, clang may check `start of the previous header +
		 * (its length + 8)` and read through `start + length`, two pointers the verifier
		 * cannot relate, depending on what code surrounds the walk. */
		barrier_var(cur);
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct nlb_ipv6_frag_hdr *fh = cur;

			if ((void *)(fh + 1) > data_end || (void *)(fh + 1) > p->ip_end)
				return NLB_PARSE_MALFORMED;
			/* offset 0 without more fragments (an atomic fragment, RFC 6946) is the
			 * whole datagram: the stack takes it as it is, so it is decided as one */
			p->fragment = (fh->frag_off & bpf_htons(0xfff9)) != 0;
			p->frag_id = fh->identification;
			if (fh->frag_off & bpf_htons(0xfff8)) {
				/* later fragment: the rest is payload, no transport header */
				p->proto = fh->nexthdr;
				p->l4 = NULL;
				return NLB_PARSE_OK;
			}
			nexthdr = fh->nexthdr;
			cur = fh + 1;
		} else {
			__u8 *h = cur;
			__u32 len;

			if ((void *)(h + 2) > data_end || (void *)(h + 2) > p->ip_end)
				return NLB_PARSE_MALFORMED;
			len = nexthdr == IPPROTO_AH ? ((__u32)h[1] + 2) * 4 : ((__u32)h[1] + 1) * 8;
			nexthdr = h[0];
			cur = h + len;
		}
	}
	if (nlb_is_ipv6_ext(nexthdr))
		return NLB_PARSE_TOO_DEEP;
	p->proto = nexthdr;
	p->l4 = cur;
	if (cur > p->ip_end)
		return NLB_PARSE_MALFORMED;
	return NLB_PARSE_OK;
}

#endif
