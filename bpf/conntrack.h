/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* TCP decisions and connection tracking: what lets a bucket move without resetting the
 * connections in it. The owner records a connection when it accepts the SYN; after the
 * bucket moves, the old owner keeps serving what it recorded and the new owner leaves those
 * packets alone. The table is only consulted when a bucket's flags say the answer can differ
 * from ownership (a SYN, a FIN/RST, a bucket in transition), so steady-state traffic never
 * pays for it. */
#ifndef NLB_CONNTRACK_H
#define NLB_CONNTRACK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <nlb/maps.h>

#include "maps.bpf.h"
#include "parse.h"
#include "verdict.h"

/* Returned by a fast decision that cannot decide: the general path takes the packet over. */
#define NLB_SLOW_PATH (-1)

/* How a TCP packet may use the connection table. */
enum nlb_track_mode {
	NLB_TRACK_FULL,   /* a packet of the connection itself: may create and close entries */
	NLB_TRACK_QUOTED, /* a connection quoted by an ICMP error: look up only */
};

static __always_inline int nlb_tcp_syn(__u8 tcp_flags)
{
	return (tcp_flags & (NLB_TCP_SYN | NLB_TCP_ACK)) == NLB_TCP_SYN;
}

static __always_inline int nlb_tcp_closing(__u8 tcp_flags)
{
	return (tcp_flags & (NLB_TCP_FIN | NLB_TCP_RST)) != 0;
}

/* TCP in steady state: ownership alone decides. NLB_SLOW_PATH when the packet opens or
 * closes a connection or its bucket is in transition: then the table decides. */
static __always_inline int nlb_tcp_steady(struct ethhdr *eth, const struct nlb_config *cfg,
					  struct nlb_stats *st, __u16 b, __u8 tcp_flags)
{
	if ((b & (NLB_BKT_MINE | NLB_BKT_DIRTY_OTHER | NLB_BKT_ADOPT)) == NLB_BKT_MINE &&
	    !nlb_tcp_syn(tcp_flags) && !nlb_tcp_closing(tcp_flags))
		return nlb_accept(eth, cfg, st);
	if (!(b & (NLB_BKT_MINE | NLB_BKT_TRACKED_HERE)))
		return nlb_drop(st);
	return NLB_SLOW_PATH;
}

/* A tracked connection, unless it closed (FIN/RST) longer than the grace period ago. The
 * clock is read only for closed connections. */
static __always_inline struct nlb_conn *nlb_conn_live(struct nlb_conn *c)
{
	if (c && c->closed_ns && bpf_ktime_get_coarse_ns() - c->closed_ns > NLB_CONN_CLOSE_GRACE_NS)
		return NULL;
	return c;
}

/* TCP where the table decides. `conns` and `key`: nlb_conns4 with a struct nlb_conn_key4, or
 * nlb_conns6 with a struct nlb_conn_key6 (inlined, so the verifier sees the map itself). */
static __always_inline int nlb_tcp_tracked(void *conns, const void *key, struct ethhdr *eth,
					   const struct nlb_config *cfg, struct nlb_stats *st,
					   __u32 rule_idx, __u32 bucket, __u16 b, __u8 tcp_flags,
					   int mode)
{
	int syn = nlb_tcp_syn(tcp_flags);
	int closing = nlb_tcp_closing(tcp_flags);
	struct nlb_conn entry = {.bucket = (__u16)bucket, .rule = (__u8)rule_idx};
	struct nlb_conn *c;

	if ((b & NLB_BKT_MINE) && syn && mode == NLB_TRACK_FULL) {
		/* A new connection is the owner's, whoever served that tuple before. A dataplane
		 * the watchdog stopped drops it, so it must not record it: the entry would make
		 * this host claim the connection once the bucket has moved (TRACKED_HERE). */
		if (cfg->alive && bpf_map_update_elem(conns, key, &entry, BPF_ANY) == 0)
			st->tracked++;
		return nlb_accept(eth, cfg, st);
	}
	c = nlb_conn_live(bpf_map_lookup_elem(conns, key));
	if (c && syn && !(b & NLB_BKT_MINE)) {
		/* A SYN in a bucket that moved away opens a new connection on this tuple: the new
		 * owner's. Forget the old one, or this host would take the new one's packets too. */
		bpf_map_delete_elem(conns, key);
		return nlb_drop(st);
	}
	if (c) {
		if (closing && !c->closed_ns && mode == NLB_TRACK_FULL)
			c->closed_ns = bpf_ktime_get_coarse_ns();
		return nlb_accept(eth, cfg, st);
	}
	if (!(b & NLB_BKT_MINE))
		return nlb_drop(st);
	if (b & NLB_BKT_DIRTY_OTHER) {
		/* Mid-stream and not tracked here: another host still serves it. */
		st->dropped_dirty++;
		return XDP_DROP;
	}
	if ((b & NLB_BKT_ADOPT) && !closing && mode == NLB_TRACK_FULL && cfg->alive &&
	    bpf_map_update_elem(conns, key, &entry, BPF_ANY) == 0)
		st->tracked++;
	return nlb_accept(eth, cfg, st);
}

#endif
