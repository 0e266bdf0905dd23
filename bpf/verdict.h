/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The ends of the packet path: accept (rewrite the destination MAC, count), drop (count),
 * malformed (count, drop), remote control (every host's stack, or nobody's). */
#ifndef NLB_VERDICT_H
#define NLB_VERDICT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include <nlb/maps.h>

#include "maps.bpf.h"

static __always_inline struct nlb_stats *nlb_stats_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&nlb_stats, &slot);
}

static __always_inline int nlb_malformed(void)
{
	struct nlb_stats *st = nlb_stats_slot(NLB_STATS_GLOBAL);

	if (st)
		st->malformed++;
	return XDP_DROP;
}

/* Accepting is what the watchdog guards: a host whose agent stopped refreshing it may no
 * longer own the buckets it believes it owns. Dropping is always safe. The destination MAC
 * becomes this host's own, so the stack takes the frame as addressed to it. */
static __always_inline int nlb_accept(struct ethhdr *eth, const struct nlb_config *cfg,
				      struct nlb_stats *st)
{
	if (!cfg->alive) {
		st->dropped_watchdog++;
		return XDP_DROP;
	}
	__builtin_memcpy(eth->h_dest, cfg->own_mac, ETH_ALEN);
	st->accepted++;
	return XDP_PASS;
}

static __always_inline int nlb_drop(struct nlb_stats *st)
{
	st->dropped_not_owner++;
	return XDP_DROP;
}

/* A remote-control datagram is for every host's agent, not a load-balanced packet: no rule,
 * no bucket and no watchdog decide it. With remote control off it never reaches the stack. */
static __always_inline int nlb_remote_control(struct ethhdr *eth, const struct nlb_config *cfg)
{
	struct nlb_stats *st = nlb_stats_slot(NLB_STATS_GLOBAL);

	if (!(cfg->flags & NLB_CFG_REMOTE_CONTROL)) {
		if (st)
			st->remote_dropped++;
		return XDP_DROP;
	}
	if (st)
		st->remote_passed++;
	__builtin_memcpy(eth->h_dest, cfg->own_mac, ETH_ALEN);
	return XDP_PASS;
}

#endif
