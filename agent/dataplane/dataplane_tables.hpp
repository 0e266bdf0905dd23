// The dataplane's lookup tables (VIP slots, port table, rule slots) computed from the VIPs and
// port rules, and the dataplane's own decision of which rule and bucket a packet falls in.
// Pure: no BPF calls. The loader copies these tables into the maps; tests use place() to know
// what the XDP program must do with any packet.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlb/flow.h>
#include <nlb/limits.h>
#include <nlb/maps.h>

#include "rules.hpp" // Protocol: one definition for the engine, the config and the tables

namespace nlb {

// An IPv4 or IPv6 address as the dataplane sees it: 32-bit words in network byte order.
struct IpAddress {
    std::uint8_t family = NLB_FAMILY_NONE;
    std::array<std::uint32_t, 4> words{};

    static std::optional<IpAddress> parse(const std::string& text);
    std::string to_string() const;
    bool operator==(const IpAddress&) const = default;
};

// Each address as text, in order (logs, query, the configuration's JSON).
std::vector<std::string> to_strings(const std::vector<IpAddress>& addresses);
// Whether any of them is IPv6 (the ND egress program is attached only then).
bool has_ipv6(const std::vector<IpAddress>& addresses);

// What the dataplane needs of a port rule. `vip` indexes the VIP list; nullopt means "all".
struct RuleMatch {
    std::optional<std::size_t> vip;
    std::uint16_t first_port = 0;
    std::uint16_t last_port = 65535;
    Protocol protocol = Protocol::both;
    std::uint8_t mode = NLB_MODE_MULTIPLE;
    std::uint8_t affinity = NLB_AFFINITY_SINGLE;
};

// A packet's identity as the dataplane reads it. Ports in network byte order. A fragmented
// datagram is placed by its first fragment (the one with ports); its later fragments follow
// the first's verdict in the dataplane (bpf/fragments.h).
struct Tuple {
    std::uint8_t family = NLB_FAMILY_V4;
    std::uint8_t proto = 6; // IPPROTO_TCP
    std::array<std::uint32_t, 4> saddr{};
    std::array<std::uint32_t, 4> daddr{};
    std::uint16_t sport = 0;
    std::uint16_t dport = 0;
};

// Where a packet to a VIP lands: rule slot (NLB_RULE_DEFAULT for uncovered) and bucket.
struct Placement {
    std::uint32_t rule = NLB_RULE_DEFAULT;
    std::uint16_t bucket = 0;
};

// Where the VIPs sit in the dataplane: each VIP's index (its port table) and the seed of
// the slot hash. Tables built to replace others keep what they can of it.
struct VipLayout {
    std::vector<IpAddress> vips;
    std::vector<std::uint32_t> index; // index[i]: vips[i]'s
    std::uint32_t seed = 0;

    // The layout a dataplane's VIP slots hold (an adopted one's, written by an earlier agent).
    static VipLayout of_slots(std::span<const nlb_vip> slots, std::uint32_t seed);
};

class DataplaneTables {
  public:
    // Throws std::invalid_argument naming the offending VIP or rule. `flow_seed`: the
    // cluster's seed of the bucket hash (engine_config_of chooses it; never 0). `before`: the
    // layout the dataplane runs now, when these tables are to replace it live (a VIP change,
    // an adopted dataplane; docs/staged-config.md): a VIP both have keeps its index, a new one
    // takes an index `before` leaves free, and the VIP seed stays, or else is one under which
    // no VIP's slot is one `before` occupies (so both layouts can sit in the table at once).
    DataplaneTables(std::vector<IpAddress> vips, std::vector<RuleMatch> rules,
                    std::uint32_t flow_seed = NLB_FLOW_SEED, const VipLayout* before = nullptr);

    std::uint32_t vip_seed() const { return vip_seed_; }
    std::uint32_t flow_seed() const { return flow_seed_; }
    const std::array<nlb_vip, NLB_VIP_SLOTS>& vip_slots() const { return vip_slots_; }
    // NLB_PORT_TABLE_ENTRIES chunks; those of unused VIP indices are all NLB_RULE_DEFAULT.
    const std::vector<nlb_port_chunk>& port_chunks() const { return port_chunks_; }
    // In the configuration's order (cluster IP first): rules and rule_of() number them so.
    const std::vector<IpAddress>& vips() const { return vips_; }
    // The dataplane index (its port table, nlb_vip.index) of vips()[i]: i, unless built to
    // replace other tables.
    std::uint32_t dataplane_index(std::size_t i) const { return index_.at(i); }
    // The VIP slot of vips()[i] under vip_seed().
    std::uint32_t slot_of(std::size_t i) const;
    VipLayout layout() const { return {vips_, index_, vip_seed_}; }
    const std::vector<RuleMatch>& rules() const { return rules_; }

    // Rule slot for (VIP, as numbered in vips(); protocol index NLB_PROTO_*; port in host
    // byte order).
    std::uint32_t rule_of(std::size_t vip, std::uint32_t proto, std::uint16_t port) const;
    // Affinity the bucket hash uses for a rule slot (the default slot hashes on the source).
    std::uint8_t affinity_of(std::uint32_t rule) const;
    // The rule slot and bucket the XDP program computes for a TCP/UDP tuple, or nullopt when
    // the destination is no VIP.
    std::optional<Placement> place(const Tuple& t) const;

  private:
    // The rule that covers a port: first rule for this VIP, else first rule for all VIPs.
    std::uint32_t rule_for(std::size_t vip, std::uint32_t proto, std::uint16_t port) const;
    void assign_indices(const VipLayout* before);
    std::optional<std::size_t> vip_index(std::uint8_t family,
                                         const std::array<std::uint32_t, 4>& addr) const;

    std::vector<IpAddress> vips_;
    std::vector<std::uint32_t> index_; // dataplane index of each VIP
    std::vector<RuleMatch> rules_;
    std::uint32_t vip_seed_ = 0;
    std::uint32_t flow_seed_ = NLB_FLOW_SEED;
    std::array<nlb_vip, NLB_VIP_SLOTS> vip_slots_{};
    std::vector<nlb_port_chunk> port_chunks_;
};

// Rule slots (bit s: slot s) a switch from `before` to `after` changes for some packet to a
// VIP both serve: the packet lands in another slot, or the slot hashes or owns it otherwise
// (affinity, mode). A VIP only one of them has is nobody's packet under the other, so it
// changes no slot. Staged configuration (docs/staged-config.md) holds these back.
std::uint64_t changed_slots(const DataplaneTables& before, const DataplaneTables& after);

// The same, with the earlier tables given by what they decide: each slot's `mode(s)` and
// `affinity(s)`, their VIPs, and `rule_of(i, proto, port)` for vips[i] (the maps an earlier
// agent left: DataplaneMaps::slots_changed_by).
template <typename Mode, typename Affinity, typename RuleOf>
std::uint64_t changed_slots(Mode mode, Affinity affinity, const std::vector<IpAddress>& vips,
                            RuleOf rule_of, const DataplaneTables& after) {
    std::uint64_t changed = 0;
    for (std::uint32_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        const std::uint8_t now =
            s < after.rules().size() ? after.rules()[s].mode : std::uint8_t{NLB_MODE_MULTIPLE};
        if (mode(s) != now || affinity(s) != after.affinity_of(s))
            changed |= std::uint64_t{1} << s;
    }
    for (std::size_t i = 0; i < vips.size(); ++i) {
        const auto j = std::find(after.vips().begin(), after.vips().end(), vips[i]);
        if (j == after.vips().end())
            continue;
        const auto k = static_cast<std::size_t>(j - after.vips().begin());
        for (std::uint32_t proto : {NLB_PROTO_TCP, NLB_PROTO_UDP})
            for (std::uint32_t port = 0; port <= 65535; ++port) {
                const std::uint32_t was = rule_of(i, proto, static_cast<std::uint16_t>(port));
                const std::uint32_t now = after.rule_of(k, proto, static_cast<std::uint16_t>(port));
                if (was == now)
                    continue;
                changed |= std::uint64_t{1} << now;
                if (was < NLB_RULE_SLOTS) // what maps hold is not trusted to be in range
                    changed |= std::uint64_t{1} << was;
            }
    }
    return changed;
}

} // namespace nlb
