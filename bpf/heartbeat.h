/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The budgets that keep a flood of 0x886F frames (heartbeats, map chunks) from the agent: one
 * per source MAC, and one that sources the agent has not authenticated share. Included by
 * nlb.bpf.c where its general path needs it. */
#ifndef NLB_HEARTBEAT_H
#define NLB_HEARTBEAT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include <nlb/limits.h>
#include <nlb/maps.h>

#include "verdict.h"

/* Budget of 0x886F frames per source MAC (struct nlb_hb_rate). One map shared by every CPU,
 * not per-CPU: a per-CPU bucket would give a source one budget per CPU its frames are spread
 * over (RSS, several flooding threads), and only 0x886F frames ever touch this cache line. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NLB_HB_RATE_ENTRIES);
	__type(key, struct nlb_hb_rate_key);
	__type(value, struct nlb_hb_rate);
} nlb_hb_rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NLB_HB_TRUSTED_ENTRIES);
	__type(key, struct nlb_hb_rate_key);
	__type(value, __u64); /* unused: membership is the key */
} nlb_hb_trusted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nlb_hb_rate);
} nlb_hb_untrusted SEC(".maps");

/* One GCRA step on bucket `r` (struct nlb_hb_rate): 1 when the frame fits. Two CPUs on one
 * bucket race on full_at_ns without harm: the increment is atomic, so no admitted frame goes
 * uncharged under a flood; only the reset of a full bucket is a plain store, and a bucket
 * that is full is one whose source is within budget. */
static __always_inline int nlb_budget_admit(struct nlb_hb_rate *r, __u64 now, __u64 interval,
					     __u64 window)
{
	__u64 start = r->full_at_ns;

	if ((__s64)(start - now) < 0) {
		/* idle long enough to be full: the credit of the idle time is capped here */
		start = now;
		r->full_at_ns = now;
	}
	if (start + interval - now > window) {
		__sync_fetch_and_add(&r->dropped, 1);
		return 0;
	}
	__sync_fetch_and_add(&r->full_at_ns, interval);
	return 1;
}

/* A heartbeat or map chunk goes to the agent unless its source is over its own budget or,
 * for a source the agent has not authenticated (nlb_hb_trusted), unknown sources together are
 * over theirs. Forged frames under random MACs each start a fresh per-source bucket, so only
 * the shared budget holds them; the members' frames never compete with them there. */
static __always_inline int nlb_heartbeat(struct ethhdr *eth)
{
	struct nlb_hb_rate_key key = {};
	struct nlb_hb_rate *r;
	struct nlb_stats *st;
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;
	int trusted;

	__builtin_memcpy(key.mac, eth->h_source, ETH_ALEN);
	trusted = bpf_map_lookup_elem(&nlb_hb_trusted, &key) != NULL;
	r = bpf_map_lookup_elem(&nlb_hb_rate, &key);
	if (!r) {
		struct nlb_hb_rate fresh = {.full_at_ns = now + NLB_HB_INTERVAL_NS};

		/* Fails only when another CPU inserted it first or the LRU has no free entry:
		 * either way this one frame passes its own budget. */
		bpf_map_update_elem(&nlb_hb_rate, &key, &fresh, BPF_NOEXIST);
	} else if (!nlb_budget_admit(r, now, NLB_HB_INTERVAL_NS, NLB_HB_WINDOW_NS)) {
		st = nlb_stats_slot(NLB_STATS_GLOBAL);
		if (st)
			st->heartbeat_rate_dropped++;
		return XDP_DROP;
	}
	if (trusted)
		return XDP_PASS;
	r = bpf_map_lookup_elem(&nlb_hb_untrusted, &zero);
	/* Over it: counted in the entry's own `dropped` (nlb_stats keeps its layout, so that a
	 * dataplane pinned by an earlier version can still be adopted). */
	if (r && !nlb_budget_admit(r, now, NLB_HB_UNTRUSTED_INTERVAL_NS,
				   NLB_HB_UNTRUSTED_WINDOW_NS))
		return XDP_DROP;
	return XDP_PASS;
}

#endif
