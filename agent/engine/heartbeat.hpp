// One heartbeat as the engine sees it (decoded), independent of the wire layout, which lives
// in heartbeat_codec.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <nlb/limits.h>

#include "allocation.hpp"
#include "rules.hpp"

namespace nlb {

enum class HostState : std::uint8_t {
    stopped = 0,
    converging = 1,
    converged = 2,
    draining = 3,
    suspended = 4,
    refused = 5,
};

const char* to_string(HostState state);

enum class RefuseReason : std::uint8_t { none = 0, rules_differ = 1, priority_taken = 2 };

const char* to_string(RefuseReason reason);

// Buckets of one rule slot this host still serves connections in after losing them. Decoding
// may widen the set (see heartbeat_codec): a superset is always safe.
struct DirtySlot {
    std::uint8_t slot = 0;
    BucketBits buckets;
    bool operator==(const DirtySlot&) const = default;
};

struct Heartbeat {
    static constexpr std::uint16_t kFlagAuthenticated = 0x0001; // HMAC trailer present
    static constexpr std::uint16_t kFlagScoreFrozen = 0x0002;   // partition score is frozen

    std::uint8_t version_major = 1;
    std::uint8_t version_minor = 1;
    std::uint16_t flags = 0;
    std::uint32_t cluster_ip = 0;
    std::uint8_t priority = 0;
    HostState state = HostState::stopped;
    RefuseReason reason = RefuseReason::none;
    std::uint8_t rule_count = 0;
    std::uint64_t nonce = 0;         // random per boot
    std::uint64_t sequence = 0;      // +1 per frame within a boot
    std::uint64_t fingerprint = 0;   // rules_fingerprint
    std::uint64_t view = 0;          // membership as this host sees it: bit p-1 = priority p
    std::uint64_t view_digest = 0;   // digest of (fingerprint, view, members' parameters)
    std::uint64_t claim = 0;         // epoch whose share bounds what this host owns; 0 = nothing
    std::uint64_t claim_members = 0; // membership of that epoch
    std::uint64_t map_digest = 0;    // ClusterMap digest of that epoch's maps
    std::uint64_t connections = 0;   // accepted since this host installed its epoch
    std::uint64_t score = 0;         // partition heuristic: its group's connections
    std::array<HostRuleParams, NLB_MAX_RULES> rules{};
    std::array<RuleControl, NLB_MAX_RULES> control{};
    std::vector<DirtySlot> dirty; // at most NLB_RULE_SLOTS entries, distinct slots
    // The map this host would compute the next one from (docs/convergence.md, "Movement"):
    // its digest (0 = none), how many installs led to it, and kBaseGiveUp when the host gave
    // up waiting for the cluster's map (everyone then falls back to the stateless allocation).
    static constexpr std::uint8_t kBaseGiveUp = 0x01;
    std::uint64_t base_digest = 0;
    std::uint32_t base_generation = 0;
    std::uint8_t base_flags = 0;

    bool operator==(const Heartbeat&) const = default;
};

// One piece of a host's base map, sent to hosts that lack it (a "map transfer": frames of
// their own, same EtherType, authentication and replay guard as heartbeats).
struct MapChunk {
    std::uint16_t flags = 0; // Heartbeat::kFlagAuthenticated
    std::uint32_t cluster_ip = 0;
    std::uint8_t priority = 0;
    std::uint64_t nonce = 0;
    std::uint64_t sequence = 0; // the sender's heartbeat sequence space
    std::uint64_t map_digest = 0;
    std::uint32_t generation = 0;
    std::uint32_t map_size = 0; // bytes of the whole encoded map
    std::uint16_t index = 0, count = 0;
    std::vector<std::uint8_t> data;
    bool operator==(const MapChunk&) const = default;
};

} // namespace nlb
