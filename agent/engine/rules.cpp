#include "rules.hpp"

#include "digest.hpp"

namespace nlb {

std::string validate(const EngineConfig& config) {
    if (config.host.priority < 1 || config.host.priority > NLB_MAX_HOSTS)
        return "host.priority: " + std::to_string(config.host.priority) + " not in 1..64";
    if (config.rules.size() > NLB_MAX_RULES)
        return "port_rules: " + std::to_string(config.rules.size()) + " rules, at most 32";
    if (config.host.rules.size() > config.rules.size())
        return "host rule parameters: more entries than port rules";
    for (std::size_t i = 0; i < config.host.rules.size(); ++i) {
        const auto w = config.host.rules[i].load_weight;
        if (w != kEqualWeight && w > 100)
            return "port_rules[" + std::to_string(i) + "].load_weight: " + std::to_string(w) +
                   " not in 0..100";
    }
    for (std::size_t i = 0; i < config.rules.size(); ++i)
        if (config.rules[i].first_port > config.rules[i].last_port)
            return "port_rules[" + std::to_string(i) + "].ports: first port above last";
    if (config.cluster.heartbeat_ms < 10 || config.cluster.heartbeat_ms > 60000)
        return "cluster.heartbeat_ms: " + std::to_string(config.cluster.heartbeat_ms) +
               " not in 10..60000";
    if (config.cluster.heartbeat_tolerance < 2 || config.cluster.heartbeat_tolerance > 100)
        return "cluster.heartbeat_tolerance: not in 2..100";
    if (config.host.peers.size() > NLB_MAX_HOSTS)
        return "cluster.peers: " + std::to_string(config.host.peers.size()) +
               " addresses, at most " + std::to_string(NLB_MAX_HOSTS);
    if (config.cluster.ip == 0)
        return "cluster.ip: missing";
    if (config.cluster.vlan > 4094)
        return "cluster.vlan: " + std::to_string(config.cluster.vlan) + " not in 0..4094";
    if (config.cluster.flow_seed == 0)
        return "cluster.hash_seed: 0 is not a seed";
    if (static_cast<std::uint8_t>(config.cluster.flow_seed_source) > kMaxSeedSource)
        return "cluster.hash_seed: unknown source";
    return {};
}

std::uint64_t rules_fingerprint(std::span<const PortRule> rules, std::uint32_t flow_seed,
                                std::uint16_t vlan) {
    DigestBuilder d;
    d.u32(0x6e6c6272); // "nlbr": domain separation
    d.u8(static_cast<std::uint8_t>(rules.size()));
    for (const auto& r : rules) {
        d.u8(r.vip.family);
        d.bytes(r.vip.address);
        d.u16(r.first_port).u16(r.last_port);
        d.u8(static_cast<std::uint8_t>(r.protocol));
        d.u8(static_cast<std::uint8_t>(r.mode));
        d.u8(static_cast<std::uint8_t>(r.affinity));
    }
    if (flow_seed != NLB_FLOW_SEED)
        d.u32(flow_seed);
    // 2 bytes after the rules, where a seed alone adds 4 and both 6: no two configurations
    // feed the digest the same bytes.
    if (vlan)
        d.u16(vlan);
    return d.finish();
}

} // namespace nlb
