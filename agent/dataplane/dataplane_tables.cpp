#include "dataplane_tables.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <nlb/flow.h>

namespace nlb {

std::optional<IpAddress> IpAddress::parse(const std::string& text) {
    IpAddress a;
    if (inet_pton(AF_INET, text.c_str(), a.words.data()) == 1) {
        a.family = NLB_FAMILY_V4;
        return a;
    }
    if (inet_pton(AF_INET6, text.c_str(), a.words.data()) == 1) {
        a.family = NLB_FAMILY_V6;
        return a;
    }
    return std::nullopt;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == NLB_FAMILY_V4 ? AF_INET : AF_INET6, words.data(), buf, sizeof(buf));
    return buf;
}

std::vector<std::string> to_strings(const std::vector<IpAddress>& addresses) {
    std::vector<std::string> out;
    for (const auto& a : addresses)
        out.push_back(a.to_string());
    return out;
}

bool has_ipv6(const std::vector<IpAddress>& addresses) {
    return std::any_of(addresses.begin(), addresses.end(),
                       [](const IpAddress& a) { return a.family == NLB_FAMILY_V6; });
}

namespace {

bool covers(const RuleMatch& r, std::uint32_t proto, std::uint16_t port) {
    bool proto_ok = r.protocol == Protocol::both ||
                    (r.protocol == Protocol::tcp && proto == NLB_PROTO_TCP) ||
                    (r.protocol == Protocol::udp && proto == NLB_PROTO_UDP);
    return proto_ok && port >= r.first_port && port <= r.last_port;
}

bool overlap(const RuleMatch& a, const RuleMatch& b) {
    bool protos =
        a.protocol == Protocol::both || b.protocol == Protocol::both || a.protocol == b.protocol;
    return a.vip == b.vip && protos && a.first_port <= b.last_port && b.first_port <= a.last_port;
}

using SlotSet = std::array<bool, NLB_VIP_SLOTS>;

// Whether every VIP has a slot of its own under `seed`, none of them one already `used`.
bool fits(const std::vector<IpAddress>& vips, std::uint32_t seed, SlotSet used) {
    for (const auto& v : vips) {
        std::uint32_t slot = nlb_vip_slot(v.family, v.words.data(), seed);
        if (used[slot])
            return false;
        used[slot] = true;
    }
    return true;
}

// The first seed of a fixed pseudo-random sequence under which every VIP has a slot of its
// own, away from `taken`. With at most NLB_MAX_VIPS VIPs beside as many taken slots among
// NLB_VIP_SLOTS, one seed in a few hundred fits; the bound only guards the impossible.
std::uint32_t find_vip_seed(const std::vector<IpAddress>& vips, const SlotSet& taken) {
    for (std::uint32_t i = 1; i < 1'000'000; ++i) {
        std::uint32_t seed = nlb_mix32(i) | 1;
        if (fits(vips, seed, taken))
            return seed;
    }
    throw std::invalid_argument("vips: no collision-free VIP table seed");
}

} // namespace

VipLayout VipLayout::of_slots(std::span<const nlb_vip> slots, std::uint32_t seed) {
    VipLayout out;
    out.seed = seed;
    std::array<bool, NLB_MAX_VIPS> seen{};
    for (const nlb_vip& s : slots) {
        // What an earlier agent wrote is trusted no further than it must be: an index out of
        // range, or twice, is no layout to keep.
        if (s.family != NLB_FAMILY_V4 && s.family != NLB_FAMILY_V6)
            continue;
        if (s.index >= NLB_MAX_VIPS || seen[s.index])
            return {};
        seen[s.index] = true;
        IpAddress a;
        a.family = s.family;
        std::memcpy(a.words.data(), s.addr, sizeof(s.addr));
        out.vips.push_back(a);
        out.index.push_back(s.index);
    }
    return out;
}

DataplaneTables::DataplaneTables(std::vector<IpAddress> vips, std::vector<RuleMatch> rules,
                                 std::uint32_t flow_seed, const VipLayout* before)
    : vips_(std::move(vips)), rules_(std::move(rules)), flow_seed_(flow_seed),
      port_chunks_(NLB_PORT_TABLE_ENTRIES) {
    // The dataplane reads 0 as the fixed seed: a table built with it would disagree.
    if (flow_seed_ == 0)
        throw std::invalid_argument("cluster.hash_seed: 0 is not a seed");
    if (vips_.empty())
        throw std::invalid_argument("vips: at least the cluster IP is needed");
    if (vips_.size() > NLB_MAX_VIPS)
        throw std::invalid_argument("vips: more than " + std::to_string(NLB_MAX_VIPS));
    if (rules_.size() > NLB_MAX_RULES)
        throw std::invalid_argument("port_rules: more than " + std::to_string(NLB_MAX_RULES));
    for (std::size_t i = 0; i < vips_.size(); ++i) {
        if (vips_[i].family != NLB_FAMILY_V4 && vips_[i].family != NLB_FAMILY_V6)
            throw std::invalid_argument("vips[" + std::to_string(i) + "]: not an address");
        for (std::size_t j = 0; j < i; ++j)
            if (vips_[i] == vips_[j])
                throw std::invalid_argument("vips[" + std::to_string(i) + "]: duplicate of " +
                                            vips_[j].to_string());
    }
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        const auto& r = rules_[i];
        std::string name = "port_rules[" + std::to_string(i) + "]";
        if (r.vip && *r.vip >= vips_.size())
            throw std::invalid_argument(name + ".vip: unknown VIP");
        if (r.first_port > r.last_port)
            throw std::invalid_argument(name + ".ports: first port above last port");
        for (std::size_t j = 0; j < i; ++j)
            if (overlap(r, rules_[j]))
                throw std::invalid_argument(name + ": overlaps port_rules[" + std::to_string(j) +
                                            "]");
    }

    assign_indices(before);
    if (before && before->seed && fits(vips_, before->seed, SlotSet{})) {
        vip_seed_ = before->seed;
    } else {
        SlotSet taken{};
        if (before)
            for (const auto& v : before->vips)
                taken[nlb_vip_slot(v.family, v.words.data(), before->seed)] = true;
        vip_seed_ = find_vip_seed(vips_, taken);
    }
    for (std::size_t i = 0; i < vips_.size(); ++i) {
        nlb_vip& slot = vip_slots_[slot_of(i)];
        std::memcpy(slot.addr, vips_[i].words.data(), sizeof(slot.addr));
        slot.family = vips_[i].family;
        slot.index = static_cast<std::uint8_t>(index_[i]);
    }

    for (auto& chunk : port_chunks_)
        std::memset(chunk.rule, NLB_RULE_DEFAULT, sizeof(chunk.rule));
    for (std::size_t v = 0; v < vips_.size(); ++v) {
        for (std::uint32_t proto : {NLB_PROTO_TCP, NLB_PROTO_UDP}) {
            std::uint32_t first_rule = rule_for(v, proto, 0);
            bool uniform = true;
            for (std::uint32_t port = 0; port <= 65535; ++port) {
                std::uint32_t chosen = rule_for(v, proto, static_cast<std::uint16_t>(port));
                uniform = uniform && chosen == first_rule;
                std::uint32_t key =
                    nlb_port_chunk_key(index_[v], proto, static_cast<std::uint16_t>(port));
                port_chunks_[key].rule[port & (NLB_PORT_CHUNK - 1)] =
                    static_cast<std::uint8_t>(chosen);
            }
            nlb_vip& slot = vip_slots_[slot_of(v)];
            slot.port_rule[proto] =
                uniform ? static_cast<std::uint8_t>(first_rule) : NLB_PORT_RULE_VARIES;
        }
    }
}

void DataplaneTables::assign_indices(const VipLayout* before) {
    index_.assign(vips_.size(), NLB_MAX_VIPS);
    if (!before || before->index.size() != before->vips.size()) {
        for (std::size_t i = 0; i < vips_.size(); ++i)
            index_[i] = static_cast<std::uint32_t>(i);
        return;
    }
    // Kept VIPs keep their port tables; new ones take the indices nobody had, then those of
    // the VIPs that go (whose slots are emptied before their tables are rewritten). Index 0
    // is the cluster IP's whatever held it (the dataplane passes remote control to index 0
    // only): after a restart that changed cluster.ip and adopted the pinned dataplane, the
    // old cluster IP, if it stays as a VIP, takes another.
    std::array<int, NLB_MAX_VIPS> use{}; // 0 free, 1 a leaving VIP's, 2 taken
    for (std::uint32_t k : before->index)
        if (k < NLB_MAX_VIPS)
            use[k] = 1;
    index_[0] = 0;
    use[0] = 2;
    for (std::size_t i = 1; i < vips_.size(); ++i) {
        const auto& old = before->vips;
        const auto j = std::find(old.begin(), old.end(), vips_[i]);
        const std::uint32_t k = j == old.end()
                                    ? NLB_MAX_VIPS
                                    : before->index[static_cast<std::size_t>(j - old.begin())];
        if (k < NLB_MAX_VIPS && use[k] != 2) {
            index_[i] = k;
            use[k] = 2;
        }
    }
    for (int pass : {0, 1})
        for (std::size_t i = 0; i < vips_.size(); ++i)
            for (std::uint32_t k = 0; k < NLB_MAX_VIPS && index_[i] == NLB_MAX_VIPS; ++k)
                if (use[k] == pass) {
                    index_[i] = k;
                    use[k] = 2;
                }
}

std::uint32_t DataplaneTables::slot_of(std::size_t i) const {
    return nlb_vip_slot(vips_.at(i).family, vips_.at(i).words.data(), vip_seed_);
}

std::uint32_t DataplaneTables::rule_for(std::size_t vip, std::uint32_t proto,
                                        std::uint16_t port) const {
    std::uint32_t chosen = NLB_RULE_DEFAULT;
    // A rule for this VIP beats a rule for all VIPs.
    for (std::size_t r = 0; r < rules_.size(); ++r) {
        if (!covers(rules_[r], proto, port))
            continue;
        if (rules_[r].vip == vip)
            return static_cast<std::uint32_t>(r);
        if (!rules_[r].vip && chosen == NLB_RULE_DEFAULT)
            chosen = static_cast<std::uint32_t>(r);
    }
    return chosen;
}

std::uint32_t DataplaneTables::rule_of(std::size_t vip, std::uint32_t proto,
                                       std::uint16_t port) const {
    std::uint32_t key = nlb_port_chunk_key(index_.at(vip), proto, port);
    return port_chunks_.at(key).rule[port & (NLB_PORT_CHUNK - 1)];
}

std::uint8_t DataplaneTables::affinity_of(std::uint32_t rule) const {
    if (rule < rules_.size())
        return rules_[rule].affinity;
    return NLB_AFFINITY_SINGLE;
}

std::uint64_t changed_slots(const DataplaneTables& before, const DataplaneTables& after) {
    return changed_slots(
        [&](std::uint32_t s) {
            return s < before.rules().size() ? before.rules()[s].mode
                                             : std::uint8_t{NLB_MODE_MULTIPLE};
        },
        [&](std::uint32_t s) { return before.affinity_of(s); }, before.vips(),
        [&](std::size_t i, std::uint32_t proto, std::uint16_t port) {
            return before.rule_of(i, proto, port);
        },
        after);
}

std::optional<std::size_t>
DataplaneTables::vip_index(std::uint8_t family, const std::array<std::uint32_t, 4>& addr) const {
    const nlb_vip& slot = vip_slots_[nlb_vip_slot(family, addr.data(), vip_seed_)];
    if (slot.family != family || std::memcmp(slot.addr, addr.data(), sizeof(slot.addr)) != 0)
        return std::nullopt;
    const auto i = std::find(index_.begin(), index_.end(), std::uint32_t{slot.index});
    return static_cast<std::size_t>(i - index_.begin());
}

std::optional<Placement> DataplaneTables::place(const Tuple& t) const {
    auto vip = vip_index(t.family, t.daddr);
    if (!vip)
        return std::nullopt;
    std::uint32_t proto = t.proto == 17 ? NLB_PROTO_UDP : NLB_PROTO_TCP;
    Placement p;
    p.rule = rule_of(*vip, proto, ntohs(t.dport));
    p.bucket = nlb_flow_bucket(t.family, t.saddr.data(), t.sport, affinity_of(p.rule), flow_seed_);
    return p;
}

} // namespace nlb
