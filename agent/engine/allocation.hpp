// Bucket allocation: (membership, per-host weights and handling priorities) -> per rule slot a
// bucket -> owner map. A pure, deterministic function: every host computes it from the
// converged membership and gets the same maps (the map digest in the heartbeat proves it), so
// the maps are part of the protocol (tests pin them to v1.0's).
//
// Choice (measured in docs/convergence.md, "Allocation"):
//  - Maglev fills a lookup table from per-backend permutations; it balances within a few
//    entries but its movement on a join or leave is only "small", not bounded, and it needs
//    a table much larger than the number of buckets to get there.
//  - Rendezvous (HRW) hashing moves the minimum (only the buckets of the joining or leaving
//    host) but balances only statistically: with 4096 buckets and 64 hosts a host's share
//    varies by about +-8 buckets, and weighted HRW has the same spread. Moving only the
//    minimum on every join and leave in fact forces a fixed per-bucket order of hosts, i.e.
//    rendezvous, so no +-1 allocation can do it.
//  - NLB itself recomputed a 60-bucket map with its own deterministic hand-over rules.
// We keep HRW's preferences and add capacities: each host gets a quota, its weighted share
// rounded by largest remainder (so it is within +-1 bucket of the share), and buckets are
// matched to hosts by deferred acceptance (bucket-proposing Gale-Shapley) on weighted HRW
// scores (-log2(u)/w, integer arithmetic only so every CPU and compiler agrees). The result is
// the unique stable matching, so it does not depend on processing order. A join or leave
// moves what the quota changes force plus displacement chains: 1.01-1.06x the minimum up to 8
// hosts, 1.4x on average over 2..64 hosts, 1.7x at ~64 hosts. That misses DESIGN.md's 1.15x
// beyond ~16 hosts; the alternatives measured (keep-top-quota with orphan placement, margin
// preferences, min-cost transport, structured orders) are no better, and any scheme where the
// newcomer takes its rendezvous wins is bounded below by ~1.22x on average (1.32x at 64 hosts)
// - docs/convergence.md has the figures and the ways forward.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <nlb/limits.h>

#include "rules.hpp"

namespace nlb {

using OwnerMap = std::array<std::uint8_t, NLB_BUCKETS>; // host priority, 0 = nobody
using BucketBits = std::bitset<NLB_BUCKETS>;

// One member's inputs to the allocation (from its heartbeat, or the local config).
struct MemberParams {
    std::uint8_t priority = 0;
    std::array<HostRuleParams, NLB_MAX_RULES> rules{};
    std::array<RuleControl, NLB_MAX_RULES> control{};
    bool operator==(const MemberParams&) const = default;
};

// Owner maps of every rule slot: [0, NLB_MAX_RULES) the port rules, NLB_RULE_DEFAULT the
// default host's slot.
struct ClusterMap {
    std::array<OwnerMap, NLB_RULE_SLOTS> slots{};
    std::uint64_t digest() const;
    bool operator==(const ClusterMap&) const = default;
};

// `modes[i]` for port rule i (at most NLB_MAX_RULES); `members` in any order, priorities
// unique, 1..NLB_MAX_HOSTS (another priority owns nothing). Slots beyond modes.size() are
// owned by nobody.
std::unique_ptr<ClusterMap> allocate(std::span<const RuleMode> modes,
                                     std::span<const MemberParams> members);

// Building blocks, exposed for the tests.

// Buckets per host: floor of the weighted share, plus one for the hosts with the largest
// remainders (ties: a fixed per-priority hash). Sum = NLB_BUCKETS unless every weight is 0.
std::vector<std::uint32_t> bucket_quotas(std::span<const std::uint32_t> weights,
                                         std::span<const std::uint8_t> priorities);

// One `multiple` rule: owner per bucket from the candidates' priorities and weights (0 =
// owns nothing).
OwnerMap assign_buckets(std::span<const std::uint8_t> priorities,
                        std::span<const std::uint32_t> weights);

} // namespace nlb
