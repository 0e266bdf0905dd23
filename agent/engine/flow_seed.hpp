// The seed of the packet hash (nlb_flow_bucket) of a cluster: where it comes from, and what
// heartbeats carry so that hosts can compare seeds without sending one derived from the key.
// docs/dataplane.md, "The hash seed", says what a seed of one's own protects against.
#pragma once

#include <cstdint>
#include <span>

#include <nlb/flow.h>

namespace nlb {

enum class SeedSource : std::uint8_t {
    fixed = 0,  // NLB_FLOW_SEED: no key and no cluster.hash_seed (and every earlier version)
    key = 1,    // derived from cluster.key_file's key
    config = 2, // cluster.hash_seed
};
inline constexpr std::uint8_t kMaxSeedSource = 2;

// "the fixed default", "derived from cluster.key_file", "set by cluster.hash_seed".
const char* describe(SeedSource source);

// The first 4 bytes (big-endian) of HMAC-SHA256(key, "nlb flow seed"): a key's own seed,
// which nobody without the key can compute. Never 0 (the dataplane reads 0 as NLB_FLOW_SEED):
// the one key in 2^32 that gives 0 gets 1.
std::uint32_t flow_seed_from_key(std::span<const std::uint8_t> key);

// What heartbeats carry instead of the seed: SHA-256 over the cluster IP and the seed, first
// 8 bytes. Equal seeds give equal digests on every host; the seed itself stays off the wire,
// though a 32-bit seed can be found from its digest by trying them all (docs/dataplane.md).
std::uint64_t flow_seed_digest(std::uint32_t cluster_ip, std::uint32_t seed);

} // namespace nlb
