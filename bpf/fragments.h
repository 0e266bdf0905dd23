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

#include <nlb/flow.h>
#include <nlb/limits.h>
#include <nlb/maps.h>

#include "maps.bpf.h"
#include "parse.h"
#include "verdict.h"

/* The reassembly key (family, addresses, IP ID, protocol: RFC 791's; RFC 8200's has no
 * protocol, but every fragment of a datagram carries the same one) folded into three words.
 * The low half, the flow hash's mixer, picks the slot; the high half, the tag, is a plain
 * fold of the same words (bijective in each, so two keys that differ in one word never share
 * a tag, others but for a chance of 2^-32). A tag needs no avalanche, only to differ, so it
 * spares every fragment a second mixer. */
static __always_inline __u64 nlb_frag_hash(const struct nlb_packet *p)
{
	__u32 s = p->saddr[0], d = p->daddr[0];
	__u32 id = p->frag_id ^ ((__u32)p->proto << 24 | (__u32)p->family << 16);

	if (p->family == NLB_FAMILY_V6) {
		s ^= (p->saddr[1] * 0x85ebca6bu) ^ (p->saddr[2] * 0xc2b2ae35u) ^
		     (p->saddr[3] * 0x27d4eb2fu);
		d ^= (p->daddr[1] * 0x85ebca6bu) ^ (p->daddr[2] * 0xc2b2ae35u) ^
		     (p->daddr[3] * 0x27d4eb2fu);
	}
	return (__u64)((s * 0xc2b2ae35u) ^ d ^ (id * 0x27d4eb2fu)) << 32 |
	       nlb_mix32(s ^ (d * NLB_GOLDEN) ^ (id * 0x85ebca6bu) ^ NLB_FLOW_SEED);
}

/* The fragments' clock: the watchdog's deadline, which the agent moves on at every arm (at least
 * four times per watchdog timeout), so a record's age is known to that step, plenty against a 30 s
 * timeout, and no fragment reads a clock (2 of a later fragment's 16 ns). While the agent does
 * not arm, records do not age; the dataplane soon accepts nothing then anyway. */
static __always_inline __u64 nlb_frag_now(void)
{
	return nlb_state.config.watchdog_deadline_ns;
}

static __always_inline struct nlb_frag *nlb_frag_slot(__u64 hash)
{
	__u32 slot = (__u32)hash & (NLB_FRAG_SLOTS - 1);

	return bpf_map_lookup_elem(&nlb_frags, &slot);
}

/* Remembers the verdict of a first fragment (offset 0, more fragments), decided in rule slot
 * `rule_idx` with result `verdict`. A newer datagram in the slot replaces the record: under
 * the same key the ID was reused, and the newer first fragment is the one to follow. */
static __always_inline void nlb_frag_record(const struct nlb_packet *p, __u64 rule_idx, int verdict)
{
	__u64 hash = nlb_frag_hash(p);
	struct nlb_frag *f = nlb_frag_slot(hash);
	struct nlb_frag rec = {.ident = {.tag = hash >> 32, .rule = (__u8)rule_idx}};
	struct nlb_stats *st;

	if (!f || !nlb_rule_slot_ok(&rule_idx))
		return; /* rule_idx: nlb_decide found the table corrupt and counted it */
	if (nlb_state.rules[rule_idx].mode == NLB_MODE_DISABLED)
		rec.ident.verdict = NLB_FRAG_DISABLED;
	else if (verdict == XDP_PASS)
		rec.ident.verdict = NLB_FRAG_ACCEPT;
	else
		rec.ident.verdict = NLB_FRAG_DROP;
	/* The time first: a reader that sees the new tag with the old time (weakly ordered CPUs)
	 * at worst takes the record for expired and passes the fragment to every host. */
	f->stamp_ns = nlb_frag_now();
	*(volatile __u64 *)&f->ident_word = rec.ident_word;
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
	__u64 hash = nlb_frag_hash(p);
	struct nlb_frag *f = nlb_frag_slot(hash);
	struct nlb_frag rec;
	struct nlb_stats *st;

	if (!f)
		return XDP_DROP;
	rec.ident_word = *(volatile __u64 *)&f->ident_word;
	if (rec.ident.tag == (__u32)(hash >> 32) && rec.ident.verdict &&
	    nlb_frag_now() - f->stamp_ns <= NLB_FRAG_TIMEOUT_NS) {
		st = nlb_stats_slot(rec.ident.rule);
		if (!st)
			return XDP_DROP;
		if (rec.ident.verdict == NLB_FRAG_ACCEPT)
			return nlb_accept(eth, cfg, st);
		if (rec.ident.verdict == NLB_FRAG_DISABLED) {
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
