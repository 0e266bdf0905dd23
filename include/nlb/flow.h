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

/* The fixed default seed of the bucket hash: the seed of a cluster without a key (and of every
 * cluster before per-cluster seeds), so that such clusters keep their mapping across versions.
 * A keyed cluster hashes with a seed of its own (docs/dataplane.md, "The hash seed"). */
#define NLB_FLOW_SEED 0x6e6c6231u /* "nlb1" */
#define NLB_GOLDEN 0x9e3779b1u

/* The packet hash has to cost a few cycles: it sits on the path of every packet every host
 * receives, and its multiplies form one dependency chain. A 32-bit "lowbias" mixer (two
 * multiplies, xor-shifts; avalanche close to MurmurHash3's finaliser) applied once to the
 * key folded into 32 bits: extra words enter through independent multiplies that overlap. */
NLB_INLINE __u32 nlb_mix32(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* Bucket of a packet from (saddr, sport) under a rule's affinity and the cluster's seed.
 * Addresses and the port are as on the wire (network byte order). A fragmented datagram is
 * hashed once, at its first fragment (which carries the port); the later fragments follow
 * that verdict (bpf/fragments.h). Every host of a cluster must compute the same function: the
 * golden vectors in tests/golden/hash_vectors.hpp pin it, since a changed mixer splits a
 * cluster of mixed versions. */
NLB_INLINE __u16 nlb_flow_bucket(__u8 family, const __u32 *saddr, __u16 sport, __u8 affinity,
				 __u32 seed)
{
	__u32 x;

	if (family == NLB_FAMILY_V4) {
		x = saddr[0];
		if (affinity == NLB_AFFINITY_NETWORK)
			x &= nlb_htonl(0xffffff00u);
	} else {
		x = saddr[0] ^ (saddr[1] * NLB_GOLDEN);
		if (affinity != NLB_AFFINITY_NETWORK)
			x ^= (saddr[2] * 0x85ebca6bu) ^ (saddr[3] * 0xc2b2ae35u);
	}
	if (affinity == NLB_AFFINITY_NONE)
		x ^= (sport | ((__u32)sport << 16)) * NLB_GOLDEN;
	return (__u16)(nlb_mix32(x ^ seed) & NLB_BUCKET_MASK);
}

/* The seed the dataplane hashes with. 0 is what a state pinned by a version before per-cluster
 * seeds holds until the restarted agent writes its seed: it reads as the fixed seed those
 * versions hashed with, so an upgrade in place moves nothing in between. The agent never
 * writes 0. */
NLB_INLINE __u32 nlb_config_flow_seed(const struct nlb_config *cfg)
{
	return cfg->flow_seed ? cfg->flow_seed : NLB_FLOW_SEED;
}

/* Slot of a VIP in the direct-mapped VIP table: one multiply (the top bits of the product),
 * the agent choosing an odd seed under which no two VIPs share a slot. */
NLB_INLINE __u32 nlb_vip_slot(__u8 family, const __u32 *addr, __u32 seed)
{
	__u32 x = addr[0];

	if (family == NLB_FAMILY_V6)
		x ^= addr[1] ^ addr[2] ^ addr[3];
	return ((x * (seed | 1)) >> 24) & NLB_VIP_SLOT_MASK;
}

/* Key of the port-table chunk that holds `port` (host byte order) for a VIP and protocol. */
NLB_INLINE __u32 nlb_port_chunk_key(__u32 vip_index, __u32 proto, __u16 port)
{
	return ((vip_index * 2 + proto) * NLB_PORT_CHUNKS_PER_PROTO) +
	       (port >> NLB_PORT_CHUNK_SHIFT);
}

#endif
