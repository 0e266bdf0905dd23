// One heartbeat as the engine sees it (decoded), independent of the wire layout, which lives
// in heartbeat_codec.
#pragma once

#include <algorithm>
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

// 0..2 are 1.1's and travel in the header; a 1.1 reader rejects higher values there, so the
// others travel in the config section (1.2) and the header says rules_differ.
enum class RefuseReason : std::uint8_t {
    none = 0,
    rules_differ = 1, // the configuration that must match differs (the larger group serves)
    priority_taken = 2,
    key_mismatch = 3, // frames of this cluster that fail authentication, no authenticated peer
    version = 4,      // frames of this cluster of a version this host cannot read, likewise
    no_contact = 5,   // no two-way contact on the segment with a larger group of live peers
    map_minority = 6, // this host's map digest is in the minority among its epoch's members
};
inline constexpr std::uint8_t kMaxRefuseReason = 6;

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
    static constexpr std::uint16_t kFlagTaking = 0x0004;        // has not taken its whole share yet
    static constexpr std::uint16_t kFlagYoung = 0x0008;         // started less than a tolerance ago
    // Its link is down as its agent sees it (on_link with a why: it receives nothing, its
    // frames still leave). Taken in by nothing but the count of frames heard: a peer whose
    // receive path works learns so, and one cut off one way stays out of every view.
    static constexpr std::uint16_t kFlagLinkDown = 0x0010;
    // It let go of the epoch it claimed last at a partition heal, and has installed none
    // since: the other members of that epoch that do not hear the other group (its frames
    // not proven fresh to them) let go too.
    static constexpr std::uint16_t kFlagYielded = 0x0020;

    std::uint8_t version_major = 1;
    std::uint8_t version_minor = 2;
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

    // Contact (1.2): where the sender's agent answers on the second path, and every peer it
    // heard within the tolerance with that peer's boot nonce and the paths it was heard on.
    // A frame that echoes a host's current nonce was made after that host started: the
    // proof of two-way contact and of freshness (docs/convergence.md, "Contact").
    struct Echo {
        std::uint8_t priority = 0;
        std::uint8_t paths = 0; // kPathSegment | kPathContact
        std::uint64_t nonce = 0;
        bool operator==(const Echo&) const = default;
    };
    static constexpr std::uint8_t kPathSegment = 0x01; // 0x886F frames on the cluster MAC
    static constexpr std::uint8_t kPathContact = 0x02; // unicast UDP between dedicated IPs
    static constexpr std::uint8_t kContactDeaf = 0x01; // hears no live peer on the segment
    bool has_contact = false;
    ContactAddress contact;
    std::uint8_t contact_flags = 0;
    std::vector<Echo> echoes; // at most NLB_MAX_HOSTS, distinct priorities but its own
    // Configuration (1.2): the keys besides the port rules that must match, the refusal
    // reason in full (`reason` above then holds it), and the sender's cohort (itself and the live
    // peers it has two-way contact with that share its configuration, whatever their state).
    bool has_config = false;
    std::uint8_t mode = 0;
    std::uint32_t heartbeat_ms = 0;
    std::uint32_t heartbeat_tolerance = 0;
    std::uint32_t cleanup_delay_s = 0;
    std::uint64_t vips_digest = 0;
    std::uint64_t cohort = 0;
    // Hash seed (section 6): flow_seed_digest of the sender's seed of the bucket hash, and
    // where that seed comes from. A frame without it is from a version that hashes with the
    // fixed seed.
    bool has_seed = false;
    std::uint64_t seed_digest = 0;
    SeedSource seed_source = SeedSource::fixed;
    // Health (section 7, docs/health.md): the rules the sender's probes hold down while its
    // operator's control is enabled (their control byte says draining, which older readers
    // take as a drain), and the sender's panic_percent. Every version that knows probes sends
    // it, probes or not: panic mode needs every member to.
    bool has_health = false;
    std::uint32_t probe_down = 0; // bit r = port rule r
    std::uint8_t panic_percent = 0;
    // Load feedback (section 8, docs/load-feedback.md): the sender's smoothed load of each
    // port rule with load feedback (bit r of load_rules: loads[r] is rule r's), in thousandths
    // of its metric's unit. Only informs the members' weights: a change reconverges nothing.
    std::uint32_t load_rules = 0;
    std::array<std::uint32_t, NLB_MAX_RULES> loads{};
    // Staged configuration (section 9, docs/staged-config.md): the config digest of the set
    // the sender holds staged (0: none), and of the one it ran before its last switch (0:
    // none since it started). A host that switched tells those still on the old set to follow.
    std::uint64_t staged = 0;
    std::uint64_t switched_from = 0;
    // Second path on request (section 10, docs/convergence.md "Contact"): the peers (bit p-1)
    // whose segment frames are late here, asked for every heartbeat by the second path too.
    // A sender of this section gets second-path copies from a settled peer only so; to one
    // without it, such a peer sends every other heartbeat there, as before.
    bool has_want = false;
    std::uint64_t want = 0;
    // Owners outside the view (section 11, docs/convergence.md "Hand-over"): live peers (bit
    // p-1) that are not members of the sender's view but claim an epoch, so may still own
    // buckets (a draining host, a group about to yield). Sent only when not empty.
    std::uint64_t outside_owners = 0;
    // Appended to section 11: peers the sender counts dead for less than a period that were
    // in its view or claimed an epoch (try_take's grace: they may own any bucket), and how
    // long after the frame the last of those graces ends. A host that never heard them
    // (restarted since) learns so that they may still serve. Readers that predate it skip it.
    std::uint64_t grace_owners = 0;
    std::uint32_t grace_left_ms = 0;
    // What the sender heard (section 12, docs/convergence.md "Confirmed heartbeats"): for
    // each live peer it echoes, the low 16 bits of the sequence number of the newest frame it
    // took in from it. The peer knows when it sent that frame: the sender counts it dead no
    // sooner than a tolerance after, so the peer's dataplane stops before then (the
    // watchdog's other bound). Frames that lack it (older versions) bound nothing.
    struct Ack {
        std::uint8_t priority = 0;
        std::uint16_t sequence = 0;
        bool operator==(const Ack&) const = default;
    };
    bool has_acks = false;
    std::vector<Ack> acks; // at most NLB_MAX_HOSTS, priorities strictly ascending
    // The MTU of the interface the sender's frames leave by, when below 1,500 (section 13,
    // docs/convergence.md "Frame size"); 0: not said (1,500 or more, or an older version).
    std::uint16_t mtu = 0;

    // This host's entry in the echo list (nullptr: not heard by the sender).
    const Echo* echo_of(std::uint8_t priority, std::uint64_t nonce) const {
        for (const auto& e : echoes)
            if (e.priority == priority && e.nonce == nonce)
                return &e;
        return nullptr;
    }

    // The sender's ack of `priority`'s stream (nullptr: none). A binary search: every frame
    // of a 64-host cluster carries 63.
    const Ack* ack_of(std::uint8_t priority) const {
        const auto it =
            std::lower_bound(acks.begin(), acks.end(), priority,
                             [](const Ack& a, std::uint8_t p) { return a.priority < p; });
        return it != acks.end() && it->priority == priority ? &*it : nullptr;
    }

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
