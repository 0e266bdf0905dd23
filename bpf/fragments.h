/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Fragmented TCP and UDP datagrams to a VIP. Only the first fragment carries the ports that
 * choose the port rule and (affinity none) the bucket, so only it can be decided like the
 * whole datagram; every host records its verdict under the datagram's reassembly key and the
 * later fragments follow it. A later fragment that arrives before its first cannot be held
 * here: it goes to every host's stack, where only the host that takes the first fragment
 * completes the datagram (the others' reassembly queues time out). docs/dataplane.md. */
#ifndef NLB_FRAGMENTS_H
#define NLB_FRAGMENTS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include <nlb/limits.h>
#include <nlb/maps.h>

#include "maps.bpf.h"
#include "parse.h"
#include "verdict.h"

/* Remembers the verdict of a first fragment (offset 0, more fragments), decided in rule slot
 * `rule_idx` with result `verdict`. A newer datagram under the same key replaces the record:
 * the ID was reused, and the newer first fragment is the one the later fragments now follow. */
static __always_inline void nlb_frag_record(const struct nlb_packet *p, __u32 rule_idx,
					    int verdict)
{
	struct nlb_frag f = {.rule = (__u8)rule_idx, .verdict = NLB_FRAG_DROP};
	struct nlb_stats *st;

	if (rule_idx >= NLB_RULE_SLOTS)
		return; /* nlb_decide found the table corrupt and counted it */
	if (nlb_state.rules[rule_idx].mode == NLB_MODE_DISABLED)
		f.verdict = NLB_FRAG_DISABLED;
	else if (verdict == XDP_PASS)
		f.verdict = NLB_FRAG_ACCEPT;
	f.first_ns = bpf_ktime_get_coarse_ns();
	if (p->family == NLB_FAMILY_V4) {
		struct nlb_frag_key4 k4 = {
			.saddr = p->saddr[0],
			.daddr = p->daddr[0],
			.id = (__u16)p->frag_id,
			.proto = p->proto,
		};

		if (bpf_map_update_elem(&nlb_frags4, &k4, &f, BPF_ANY))
			return;
	} else {
		struct nlb_frag_key6 k6 = {.id = p->frag_id};

		__builtin_memcpy(k6.saddr, p->saddr, 16);
		__builtin_memcpy(k6.daddr, p->daddr, 16);
		if (bpf_map_update_elem(&nlb_frags6, &k6, &f, BPF_ANY))
			return;
	}
	st = nlb_stats_slot(NLB_STATS_GLOBAL);
	if (st)
		st->fragments_recorded++;
}

/* A later fragment (offset > 0): its first fragment's verdict, counted in that rule's slot as
 * the first was (a first dropped for a dirty bucket or by the watchdog counts its followers as
 * dropped_not_owner). Without a live record, every host's stack. */
static __always_inline int nlb_frag_follow(struct ethhdr *eth, const struct nlb_config *cfg,
					   const struct nlb_packet *p)
{
	struct nlb_frag *f;
	struct nlb_stats *st;

	if (p->family == NLB_FAMILY_V4) {
		struct nlb_frag_key4 k4 = {
			.saddr = p->saddr[0],
			.daddr = p->daddr[0],
			.id = (__u16)p->frag_id,
			.proto = p->proto,
		};

		f = bpf_map_lookup_elem(&nlb_frags4, &k4);
	} else {
		struct nlb_frag_key6 k6 = {.id = p->frag_id};

		__builtin_memcpy(k6.saddr, p->saddr, 16);
		__builtin_memcpy(k6.daddr, p->daddr, 16);
		f = bpf_map_lookup_elem(&nlb_frags6, &k6);
	}
	if (f && bpf_ktime_get_coarse_ns() - f->first_ns <= NLB_FRAG_TIMEOUT_NS) {
		st = nlb_stats_slot(f->rule);
		if (!st)
			return XDP_DROP;
		if (f->verdict == NLB_FRAG_ACCEPT)
			return nlb_accept(eth, cfg, st);
		if (f->verdict == NLB_FRAG_DISABLED) {
			st->dropped_disabled++;
			return XDP_DROP;
		}
		return nlb_drop(st);
	}
	/* Not accepted, only handed on, as other protocols to a VIP are: alone it reaches no
	 * socket, so the watchdog does not stop it. */
	st = nlb_stats_slot(NLB_STATS_GLOBAL);
	if (st)
		st->fragments_unmatched++;
	__builtin_memcpy(eth->h_dest, cfg->own_mac, ETH_ALEN);
	return XDP_PASS;
}

#endif
