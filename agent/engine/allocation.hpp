// Bucket allocation: per rule slot a bucket -> owner map, computed by every host from the same
// inputs (the map digest in the heartbeat proves they got the same), so the maps are part of
// the protocol. Two functions (measured in docs/convergence.md, "Allocation" and "Movement"):
//
//  - allocate(members): stateless, for a cold start (no host of the cluster holds a map).
//    Weighted rendezvous (HRW) preferences (-log2(u)/w, integer arithmetic only so every CPU
//    and compiler agrees), per-host quotas by largest remainder (within +-1 bucket of the
//    weighted share), buckets matched to hosts by deferred acceptance: the unique stable
//    matching. Pinned to v1.0's maps by the tests.
//  - reallocate(base, members) = g(M, members): the map after a join, leave or parameter
//    change, from the previous agreed map M. No stateless function can move only ~the
//    minimum with +-1 balance (a newcomer's rendezvous wins are Poisson-distributed per host,
//    +-1 balance needs exactly 1-2 from each; docs/convergence.md), so the new map depends on
//    the old one: per rule each host's target count is its current count clamped to its band
//    [floor, ceil] of the weighted share (the remaining +-1 steps to a total of NLB_BUCKETS
//    go by largest remainder); a host keeps its best (HRW) buckets up to its target; the
//    buckets of departed, weight-0 and disabled hosts and the excess of the others go, in
//    bucket order, to the best-scoring (HRW) host with room. Movement is exactly the freed
//    set, which is the minimum any +-1-balanced map must move.
// The engine keeps M in agreement on every member (a map transfer for a host that lacks it,
// convergence_engine.hpp) and falls back to allocate() when that is not possible.
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
    // Health probes (docs/health.md). `probe_down`: rules this member's probes hold down
    // while its operator's control is `enabled`; `control` says `draining` for them, which is
    // all an older version reads. resolve_panic (probe_panic.hpp) may turn them back on.
    // `health`: the member's heartbeat carries the health section (its version knows probes).
    std::uint32_t probe_down = 0;
    std::uint8_t panic_percent = 0;
    bool health = false;
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

// g(M, members): the same maps for disabled and single rules and the default slot; for
// `multiple` rules the owners of `base` kept as far as +-1 balance allows (see above). A null
// `base` is allocate().
std::unique_ptr<ClusterMap> reallocate(const ClusterMap* base, std::span<const RuleMode> modes,
                                       std::span<const MemberParams> members);

// Builds the table every allocation shares (2 MB, once per process) now rather than at the
// first allocation. That one comes at a convergence, and the table's build is 13-15 ms of CPU
// here (10 of them first touches of fresh pages), 50 times the allocation's own cost: on a busy
// machine that held a joining host's loop up past its watchdog (docs/convergence.md, §2a,
// "Stalls").
void prepare_allocation();

// Building blocks, exposed for the tests.

// Buckets per host: floor of the weighted share, plus one for the hosts with the largest
// remainders (ties: a fixed per-priority hash). Sum = NLB_BUCKETS unless every weight is 0.
std::vector<std::uint32_t> bucket_quotas(std::span<const std::uint32_t> weights,
                                         std::span<const std::uint8_t> priorities);

// One `multiple` rule: owner per bucket from the candidates' priorities and weights (0 =
// owns nothing).
OwnerMap assign_buckets(std::span<const std::uint8_t> priorities,
                        std::span<const std::uint32_t> weights);

// One `multiple` rule under g: owners of `base` kept within the +-1 bands.
OwnerMap reassign_buckets(const OwnerMap& base, std::span<const std::uint8_t> priorities,
                          std::span<const std::uint32_t> weights);

} // namespace nlb
