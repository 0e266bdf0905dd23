/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* TCP decisions and connection tracking: what lets a bucket move without resetting the
 * connections in it. The owner records a connection when it accepts the SYN (nlb_conns*, an
 * LRU: unproven, evictable); once the host's own TCP stack has established it, the socket
 * program moves it to nlb_est* (never evicted) until the socket closes (bpf/sockops.h). After
 * the bucket moves, the old owner keeps serving what it recorded and the new owner leaves
 * those packets alone. The tables are consulted only when a bucket's flags say the answer can
 * differ from ownership (a SYN, a bucket in transition), so steady-state traffic never pays
 * for them; and there only when the connection filter (include/nlb/conn_filter.h) says they
 * may hold the key. FIN and RST change nothing here: anyone can send one with the 4-tuple,
 * and the socket knows better when the connection ended. */
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

/* TCP in steady state: ownership alone decides. NLB_SLOW_PATH when the packet opens a
 * connection or its bucket is in transition: then the tables decide. */
static __always_inline int nlb_tcp_steady(struct ethhdr *eth, const struct nlb_config *cfg,
					  struct nlb_stats *st, __u16 b, __u8 tcp_flags)
{
	if ((b & (NLB_BKT_MINE | NLB_BKT_DIRTY_OTHER | NLB_BKT_ADOPT)) == NLB_BKT_MINE &&
	    !nlb_tcp_syn(tcp_flags))
		return nlb_accept(eth, cfg, st);
	if (!(b & (NLB_BKT_MINE | NLB_BKT_TRACKED_HERE)))
		return nlb_drop(st);
	return NLB_SLOW_PATH;
}

/* An established record, unless its socket closed longer than the grace period ago. The
 * clock is read only for closed ones. */
static __always_inline struct nlb_conn *nlb_est_live(struct nlb_conn *c)
{
	if (c && c->closed_ns && bpf_ktime_get_coarse_ns() - c->closed_ns > NLB_CONN_CLOSE_GRACE_NS)
		return NULL;
	return c;
}

static __always_inline struct nlb_filter_block *nlb_filter_block(__u32 index)
{
	return bpf_map_lookup_elem(&nlb_conn_filter, &index);
}

/* Hash of a connection key of `family` (a constant at every call) under the filter's seed. */
static __always_inline __u32 nlb_filter_hash(__u8 family, const void *key, __u32 seed)
{
	if (family == NLB_FAMILY_V4)
		return nlb_filter_hash4(key, seed);
	return nlb_filter_hash6(key, seed);
}

_Static_assert(sizeof(struct nlb_filter_header) == sizeof(struct nlb_filter_block),
	       "the filter's header is its map's entry 0");

/* Sets a key's bits (its `hash` under the filter's seed) in both halves of the filter. */
static __always_inline void nlb_filter_set(__u8 family, __u32 hash, __u32 per_half)
{
	__u64 mask = nlb_filter_mask(hash);
	struct nlb_filter_block *blk;

#pragma unroll
	for (__u32 half = 0; half < 2; half++) {
		blk = nlb_filter_block(nlb_filter_index(hash, family, half, per_half));
		/* outside the map: never read either (nlb_filter_may_hold) */
		if (blk)
			__sync_fetch_and_or(&blk->word[nlb_filter_word(hash)], mask);
	}
}

/* Records key → entry in `table` (nlb_conns* or nlb_est* of `family`), the key in the
 * connection filter before the insert, so that no instant sees the key recorded and the
 * filter without it, and again after: the agent may have cleared the half it rebuilds in
 * between, and its copy of the tables may have passed the key's place already
 * (docs/dataplane.md). Every insert into the four tables goes through here. A filter without
 * blocks (0 per half) is never valid: nothing to add to it. */
static __always_inline long nlb_conn_insert(__u8 family, void *table, const void *key,
					    const struct nlb_conn *entry)
{
	struct nlb_filter_header *hdr = (void *)nlb_filter_block(0);
	__u32 per_half = hdr ? hdr->blocks_per_half : 0;
	__u32 hash = 0;
	long err;

	if (per_half) {
		hash = nlb_filter_hash(family, key, hdr->seed);
		nlb_filter_set(family, hash, per_half);
	}
	err = bpf_map_update_elem(table, key, entry, BPF_ANY);
	if (per_half)
		nlb_filter_set(family, hash, per_half);
	return err;
}

/* 0 only when the tables surely do not hold the key: the filter is valid and its active half
 * lacks one of the key's bits. */
static __always_inline int nlb_filter_may_hold(__u8 family, const void *key)
{
	struct nlb_filter_header *hdr = (void *)nlb_filter_block(0);
	struct nlb_filter_block *blk;
	__u32 hash;
	__u64 mask;

	/* valid before active, as the agent stores them the other way round (x86-64 keeps two
	 * loads, and two stores, in order; volatile keeps clang from swapping the loads) */
	if (!hdr || !*(volatile __u32 *)&hdr->valid || !hdr->blocks_per_half)
		return 1;
	hash = nlb_filter_hash(family, key, hdr->seed);
	blk = nlb_filter_block(nlb_filter_index(hash, family, *(volatile __u32 *)&hdr->active,
						hdr->blocks_per_half));
	if (!blk)
		return 1;
	mask = nlb_filter_mask(hash);
	return (blk->word[nlb_filter_word(hash)] & mask) == mask;
}

/* Records a connection this host accepts before its stack proved it (a SYN, whose sequence
 * number it keeps with flags NLB_CONN_SYN_SEQ, or mid-stream in a bucket it adopts, flags 0).
 * A dataplane the watchdog stopped drops the packet, so it must not record it: the entry
 * would make this host claim the connection once the bucket has moved. */
static __always_inline void nlb_record_opening(__u8 family, void *conns, const void *key,
					       const struct nlb_config *cfg, struct nlb_stats *st,
					       __u32 rule_idx, __u32 bucket, __u8 flags,
					       __u32 syn_seq)
{
	struct nlb_conn entry = {
	    .opened_ns = bpf_ktime_get_coarse_ns(),
	    .bucket = (__u16)bucket,
	    .rule = (__u8)rule_idx,
	    .flags = flags,
	    .syn_seq = syn_seq,
	};
	struct nlb_conn *c;

	if (!cfg->alive)
		return;
	/* A retransmitted SYN (or a flood repeating its tuples) finds its record: refreshed in
	 * place, since an LRU update takes a new node and the table's lock even for a key it
	 * holds. The lookup marks the entry used for the LRU, as an update would. A SYN with
	 * another sequence number opens the tuple anew: its number is the one to continue. */
	c = bpf_map_lookup_elem(conns, key);
	if (c && c->bucket == entry.bucket && c->rule == entry.rule) {
		c->opened_ns = entry.opened_ns;
		c->syn_seq = syn_seq;
		c->flags = flags;
		return;
	}
	if (nlb_conn_insert(family, conns, key, &entry) == 0)
		st->tracked++;
}

/* TCP where the tables decide. `conns`, `est` and `key`: nlb_conns4, nlb_est4 and a struct
 * nlb_conn_key4 (family NLB_FAMILY_V4), or the IPv6 ones (inlined, so the verifier sees the
 * maps themselves). */
static __always_inline int nlb_tcp_tracked(__u8 family, void *conns, void *est, const void *key,
					   struct ethhdr *eth, const struct nlb_config *cfg,
					   struct nlb_stats *st, __u32 rule_idx, __u32 bucket,
					   __u16 b, __u8 tcp_flags, __u32 seq, int mode)
{
	int syn = nlb_tcp_syn(tcp_flags);
	struct nlb_conn *c;

	if ((b & NLB_BKT_MINE) && syn && mode == NLB_TRACK_FULL) {
		/* A new connection is the owner's, whoever served that tuple before. */
		nlb_record_opening(family, conns, key, cfg, st, rule_idx, bucket, NLB_CONN_SYN_SEQ,
				   seq);
		return nlb_accept(eth, cfg, st);
	}
	if (!nlb_filter_may_hold(family, key))
		goto untracked;
	c = nlb_est_live(bpf_map_lookup_elem(est, key));
	if (c) {
		/* A SYN on a tuple whose socket here is open goes to that socket: a client's new
		 * connection makes the stack's challenge ACK end the old one (RFC 5961), a forged
		 * SYN changes nothing. Once the socket closed, the tuple is the new owner's. */
		if (syn && !(b & NLB_BKT_MINE) && c->closed_ns && mode == NLB_TRACK_FULL) {
			bpf_map_delete_elem(est, key);
			return nlb_drop(st);
		}
		return nlb_accept(eth, cfg, st);
	}
	c = bpf_map_lookup_elem(conns, key);
	if (c) {
		/* Unproven: a SYN in a bucket that moved away opens a new connection on this
		 * tuple, the new owner's. Forget the old one, or this host would take the new
		 * one's packets too. */
		if (syn && !(b & NLB_BKT_MINE) && mode == NLB_TRACK_FULL) {
			bpf_map_delete_elem(conns, key);
			return nlb_drop(st);
		}
		/* Opened by a SYN: only what continues that SYN is this connection. A SYN forged
		 * with the 4-tuple of another host's connection (its bucket moved here) makes this
		 * stack answer with a SYN-ACK, the client answers that from its own sequence space,
		 * and that ACK, taken here, would make this stack reset the client's connection
		 * (an unacceptable ACK in SYN-RECEIVED draws a reset whose sequence number is the
		 * client's own). It is the other host's packet: judged as if nothing were recorded.
		 * The window starts at the SYN's own number (a keepalive before any data repeats
		 * it) and holds only while the socket program runs (netns_cookie set), which moves
		 * an established connection out of this table: without it, or when the established
		 * table was full (the flag then cleared), this record is the connection's only one
		 * for its whole life, and its first 128 KB are not all of it. */
		if (!syn && mode == NLB_TRACK_FULL && (c->flags & NLB_CONN_SYN_SEQ) &&
		    cfg->netns_cookie && seq - c->syn_seq >= NLB_OPENING_SEQ_WINDOW)
			goto untracked;
		return nlb_accept(eth, cfg, st);
	}
untracked:
	if (!(b & NLB_BKT_MINE))
		return nlb_drop(st);
	if (b & NLB_BKT_DIRTY_OTHER) {
		/* Mid-stream and not tracked here: another host still serves it. */
		st->dropped_dirty++;
		return XDP_DROP;
	}
	if ((b & NLB_BKT_ADOPT) && !nlb_tcp_closing(tcp_flags) && mode == NLB_TRACK_FULL)
		nlb_record_opening(family, conns, key, cfg, st, rule_idx, bucket, 0, 0);
	return nlb_accept(eth, cfg, st);
}

#endif
