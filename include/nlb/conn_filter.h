/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The connection filter: which keys the four connection tables may hold, answered from one
 * cache line. A packet in a bucket this host may track connections in (one that moved away,
 * one in a hand-over) otherwise pays two hash-table lookups that miss, in tables far larger
 * than the caches. It is a blocked Bloom filter in two halves: the dataplane adds every key
 * to both before it records it, reads only the active half, and the agent rebuilds the other
 * from the tables and switches to it (docs/dataplane.md, "The connection filter"). A filter
 * never says "absent" of a key the tables hold; it may say "present" of one they do not
 * hold, which costs the lookups it was meant to save. Written once for the dataplane and the
 * agent, which must compute the same positions. */
#ifndef NLB_CONN_FILTER_H
#define NLB_CONN_FILTER_H

#include <linux/types.h>

#include "flow.h"
#include "maps.h"

#define NLB_FILTER_BLOCK_WORDS 8  /* 64 bytes: one cache line */
#define NLB_FILTER_BLOCK_BITS 512
/* Of table capacity. With four bits a key, about 0.5 % of answers are a false "present" when
 * every table is full (8 bits and three a key: 3.7 %). A false "present" costs two lookups
 * that miss in tables far larger than the caches; measured, the change took about 5 ns off a
 * packet in a moved bucket with the tables full (docs/dataplane.md, "Measured"). */
#define NLB_FILTER_BITS_PER_ENTRY 16

/* Entry 0 of the filter map. Blocks 1.. are the IPv4 halves, then the IPv6 halves, each
 * half blocks_per_half blocks: a family's keys touch only its own (an IPv4-only cluster's
 * working set is half the map). */
struct nlb_filter_header {
	__u32 valid;           /* 1: the active halves hold every key the tables hold */
	__u32 active;          /* 0 or 1 */
	__u32 blocks_per_half; /* a power of two, set once before the first key; 0: no filter */
	__u32 seed;            /* set once with blocks_per_half */
	__u64 rebuilds;        /* agent-side count, for `stats` */
	__u64 pad[5];
};

struct nlb_filter_block {
	__u64 word[NLB_FILTER_BLOCK_WORDS];
};

/* Blocks per half for one family's two tables of `entries` keys in all (a power of two, at
 * least 1). */
NLB_INLINE __u32 nlb_filter_blocks_per_half(__u64 entries)
{
	__u64 want = (entries * NLB_FILTER_BITS_PER_ENTRY + NLB_FILTER_BLOCK_BITS - 1) /
		     NLB_FILTER_BLOCK_BITS;
	__u32 blocks = 1;

	while (blocks < want && blocks < (1u << 29))
		blocks <<= 1;
	return blocks;
}

/* A key's hash: its words through independent multiplies (they overlap, as in
 * nlb_flow_bucket), then one mixer. Collisions a sender could craft cost only the lookups
 * the filter would have saved. */
NLB_INLINE __u32 nlb_filter_hash4(const struct nlb_conn_key4 *k, __u32 seed)
{
	__u32 ports = (__u32)k->sport | ((__u32)k->dport << 16);

	return nlb_mix32((k->saddr ^ seed) * NLB_GOLDEN + k->daddr * 0x85ebca6bu +
			 ports * 0xc2b2ae35u);
}

NLB_INLINE __u32 nlb_filter_hash6(const struct nlb_conn_key6 *k, __u32 seed)
{
	__u32 ports = (__u32)k->sport | ((__u32)k->dport << 16);
	__u32 s = (k->saddr[0] ^ seed) * NLB_GOLDEN + k->saddr[1] * 0x85ebca6bu +
		  k->saddr[2] * 0xc2b2ae35u + k->saddr[3] * 0x27d4eb2fu;
	__u32 d = k->daddr[0] * 0x165667b1u + k->daddr[1] * 0xd3a2646cu +
		  k->daddr[2] * 0xfd7046c5u + k->daddr[3] * 0xb55a4f09u;

	return nlb_mix32(s + (d ^ ports * 0x9e3779b9u));
}

/* A key's four bits lie in one 64-bit word (a register-blocked filter: one atomic OR to add
 * a key to a half, one load and compare to test it). Its word is the hash's low 3 bits within
 * the block the next ones choose; the map index of that block in `half` (0 or 1) of the key's
 * family: */
NLB_INLINE __u32 nlb_filter_index(__u32 hash, __u8 family, __u32 half, __u32 blocks_per_half)
{
	return 1 + (family == NLB_FAMILY_V6 ? 2 * blocks_per_half : 0) +
	       (half & 1) * blocks_per_half + ((hash >> 3) & (blocks_per_half - 1));
}

NLB_INLINE __u32 nlb_filter_word(__u32 hash)
{
	return hash & (NLB_FILTER_BLOCK_WORDS - 1);
}

/* The four bits, from the high half of a 64-bit product, to which every bit of the hash
 * contributes (its low bits chose the word). Some may coincide: then the key has fewer. */
NLB_INLINE __u64 nlb_filter_mask(__u32 hash)
{
	__u32 h = (__u32)(((__u64)hash * 0x9e3779b97f4a7c15ULL) >> 32);

	return (1ULL << (h >> 26)) | (1ULL << ((h >> 20) & 63)) | (1ULL << ((h >> 14) & 63)) |
	       (1ULL << ((h >> 8) & 63));
}

#endif
