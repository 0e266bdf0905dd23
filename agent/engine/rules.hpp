// The rule and host parameters the convergence engine needs, as plain structs the config
// parser fills, and the fingerprint that proves two hosts run the same port rules.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlb/limits.h>
#include <nlb/maps.h>

#include "flow_seed.hpp"

namespace nlb {

enum class Protocol : std::uint8_t { tcp = 0, udp = 1, both = 2 };
enum class RuleMode : std::uint8_t {
    multiple = NLB_MODE_MULTIPLE,
    single = NLB_MODE_SINGLE,
    disabled = NLB_MODE_DISABLED,
};
enum class Affinity : std::uint8_t {
    none = NLB_AFFINITY_NONE,
    single = NLB_AFFINITY_SINGLE,
    network = NLB_AFFINITY_NETWORK,
};

// A rule's VIP: "all" (family 0) or one IPv4 / IPv6 address (network byte order; IPv4 in the
// first four bytes, the rest zero).
struct RuleVip {
    std::uint8_t family = 0; // 0 = all, 4, 6
    std::array<std::uint8_t, 16> address{};
    bool operator==(const RuleVip&) const = default;
};

// Everything here must be identical on every host of a cluster (it enters the fingerprint).
struct PortRule {
    RuleVip vip;
    std::uint16_t first_port = 0;
    std::uint16_t last_port = 65535;
    Protocol protocol = Protocol::both;
    RuleMode mode = RuleMode::multiple;
    Affinity affinity = Affinity::single;
    bool operator==(const PortRule&) const = default;
};

// `load_weight` 0..100, or kEqualWeight for "equal" (counts as 50 next to numeric weights, so
// a cluster where every host says "equal" splits evenly).
inline constexpr std::uint8_t kEqualWeight = 0xff;
inline constexpr std::uint8_t kEqualWeightValue = 50;

// Per host, per rule; may differ between hosts.
struct HostRuleParams {
    std::uint8_t load_weight = kEqualWeight;
    std::uint8_t handling_priority = 1; // `single` rules: lowest live wins
    bool operator==(const HostRuleParams&) const = default;
};

// Local per-rule control (nlbadm enable / disable / drain): also per host.
enum class RuleControl : std::uint8_t { enabled = 0, disabled = 1, draining = 2 };

// Where this host's agent answers on the second path (docs/convergence.md, "Contact"):
// unicast UDP to its dedicated IP. family 0: no second path.
struct ContactAddress {
    std::uint8_t family = 0; // 0, 4, 6
    std::array<std::uint8_t, 16> address{}; // network byte order, IPv4 in the first four
    std::uint16_t port = 0;
    bool operator==(const ContactAddress&) const = default;
};

struct HostParams {
    std::uint8_t priority = 1;         // 1..NLB_MAX_HOSTS, unique in the cluster
    std::vector<HostRuleParams> rules; // one per port rule (missing entries: defaults)
    ContactAddress contact;            // the second path's address (dedicated IP)
    // cluster.peers: where the other hosts' agents answer on the second path, known before
    // any of their frames came. A host learns these addresses from heartbeats; one that
    // restarts behind a port that neither hears nor reaches the segment would learn none,
    // and nobody would learn its own (docs/convergence.md, "Contact"). This host's own
    // address may be listed (one list for every host) and is skipped.
    std::vector<ContactAddress> peers;
    // health.panic_percent (docs/health.md): published in the heartbeat, the cluster uses the
    // largest any member publishes, so hosts need not agree on it to agree on the maps.
    std::uint8_t panic_percent = 0;
    // How long after its start this host waits, at least, before it serves alone or in a
    // group of hosts as young as itself: the longest tolerance of the cluster its previous
    // run was in (ConvergenceEngine::cluster_tolerance_ms, kept by the agent across a
    // restart). A peer paused just before the restart still serves until its watchdog, by
    // its own timing, which a restart with a shorter one (a staged change's new file) would
    // not wait out. Its own tolerance when less.
    std::int64_t start_wait_ms = 0;
};

struct ClusterParams {
    std::uint32_t ip = 0; // cluster IP, IPv4, host byte order (192.0.2.100 = 0xc0000264)
    std::uint32_t heartbeat_ms = 1000;
    std::uint32_t heartbeat_tolerance = 5;
    std::uint32_t cleanup_delay_s = 300;
    std::uint8_t mode = 0;         // ClusterMode (unicast, multicast, igmp): must match
    std::uint64_t vips_digest = 0; // the cluster's VIP list (cluster IP first): must match
    // The seed of the bucket hash (flow_seed.hpp) and where it came from: the seed must match.
    std::uint32_t flow_seed = NLB_FLOW_SEED;
    SeedSource flow_seed_source = SeedSource::fixed;
    std::uint16_t vlan = 0; // cluster.vlan, 0 untagged: must match (it is in the fingerprint)
    std::vector<std::uint8_t> key; // empty: unauthenticated cluster
    // A second key accepted (never used to sign) while the cluster's key is rotated.
    std::vector<std::uint8_t> rotation_key;
};

struct EngineConfig {
    ClusterParams cluster;
    std::vector<PortRule> rules; // at most NLB_MAX_RULES
    HostParams host;
};

// Empty when the config is usable by the engine, else why not ("host.priority: 0 not in 1..64").
std::string validate(const EngineConfig& config);

// 64-bit fingerprint of the port rules, the bucket hash's seed and the cluster's VLAN (SHA-256,
// first 8 bytes): order matters, weights and handling priorities do not. Every version
// compares it, so hosts that hash packets differently, or take frames of different VLANs,
// never agree on an epoch. The fixed seed (NLB_FLOW_SEED) and VLAN 0 add nothing: such hosts
// fingerprint as versions before per-cluster seeds and VLANs did, and agree with them.
std::uint64_t rules_fingerprint(std::span<const PortRule> rules, std::uint32_t flow_seed,
                                std::uint16_t vlan = 0);

// Effective weight of a host for a `multiple` rule under its local control.
inline std::uint32_t effective_weight(std::uint8_t load_weight, RuleControl control) {
    if (control != RuleControl::enabled)
        return 0;
    return load_weight == kEqualWeight ? kEqualWeightValue : load_weight;
}

} // namespace nlb
