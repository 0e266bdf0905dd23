/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The packet hash, written once and compiled into both the dataplane and the agent, so that
 * the agent (and the tests) compute exactly the bucket the XDP program computes. */
#ifndef NLB_FLOW_H
#define NLB_FLOW_H

#include <linux/types.h>

#include "limits.h"
#include "maps.h"

#ifndef NLB_INLINE
#define NLB_INLINE static inline __attribute__((always_inline))
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define nlb_htonl(x) __builtin_bswap32(x)
#define nlb_htons(x) ((__u16)__builtin_bswap16(x))
#else
#define nlb_htonl(x) (x)
#define nlb_htons(x) ((__u16)(x))
#endif

/* Seed of the bucket hash. Fixed: every host of every version must agree on it. */
#define NLB_FLOW_SEED 0x6e6c6231u /* "nlb1" */

NLB_INLINE __u32 nlb_rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/* MurmurHash3 (x86_32) block step and finaliser: a handful of multiplies, well mixed in
 * the low bits that select the bucket, and no table that would cost a memory access. */
NLB_INLINE __u32 nlb_hash_step(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = nlb_rotl32(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = nlb_rotl32(h, 13);
	return h * 5 + 0xe6546b64u;
}

NLB_INLINE __u32 nlb_hash_final(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Bucket of a packet from (saddr, sport) under a rule's affinity. Addresses and the port are
 * as on the wire (network byte order). Fragments hash addresses only, so the first fragment,
 * which carries the port, and the later ones, which do not, land in the same bucket. */
NLB_INLINE __u16 nlb_flow_bucket(__u8 family, const __u32 *saddr, __u16 sport, __u8 affinity,
				 int fragment)
{
	__u32 h = NLB_FLOW_SEED;
	__u32 words;

	if (family == NLB_FAMILY_V4) {
		__u32 a = saddr[0];

		if (affinity == NLB_AFFINITY_NETWORK)
			a &= nlb_htonl(0xffffff00u);
		h = nlb_hash_step(h, a);
		words = 1;
	} else {
		h = nlb_hash_step(h, saddr[0]);
		h = nlb_hash_step(h, saddr[1]);
		words = 2;
		if (affinity != NLB_AFFINITY_NETWORK) {
			h = nlb_hash_step(h, saddr[2]);
			h = nlb_hash_step(h, saddr[3]);
			words = 4;
		}
	}
	if (affinity == NLB_AFFINITY_NONE && !fragment) {
		h = nlb_hash_step(h, sport);
		words++;
	}
	return (__u16)(nlb_hash_final(h, words * 4) & NLB_BUCKET_MASK);
}

/* Slot of a VIP in the direct-mapped VIP table. */
NLB_INLINE __u32 nlb_vip_slot(__u8 family, const __u32 *addr, __u32 seed)
{
	__u32 h = seed;

	h = nlb_hash_step(h, addr[0]);
	if (family == NLB_FAMILY_V6) {
		h = nlb_hash_step(h, addr[1]);
		h = nlb_hash_step(h, addr[2]);
		h = nlb_hash_step(h, addr[3]);
	}
	return nlb_hash_final(h, family) & NLB_VIP_SLOT_MASK;
}

/* Key of the port-table chunk that holds `port` (host byte order) for a VIP and protocol. */
NLB_INLINE __u32 nlb_port_chunk_key(__u32 vip_index, __u32 proto, __u16 port)
{
	return ((vip_index * 2 + proto) * NLB_PORT_CHUNKS_PER_PROTO) +
	       (port >> NLB_PORT_CHUNK_SHIFT);
}

#endif
