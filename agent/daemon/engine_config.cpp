#include "engine_config.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

#include "cluster_key.hpp"
#include "digest.hpp"

#include <nlb/maps.h>

namespace nlb {

std::vector<std::uint8_t> read_key_file(const std::string& path, std::string_view key) {
    try {
        return remote::read_key_file(path);
    } catch (const std::runtime_error& e) {
        throw ConfigError(std::string(key) + ": " + e.what());
    }
}

std::vector<ContactAddress> contact_peers(const Config& config) {
    std::vector<ContactAddress> out;
    for (const auto& ip : config.cluster.peers) {
        ContactAddress a;
        a.family = ip.family;
        std::memcpy(a.address.data(), ip.words.data(), 16);
        a.port = NLB_CONTACT_PORT;
        out.push_back(a);
    }
    return out;
}

EngineConfig engine_config_of(const Config& config) {
    EngineConfig e;
    e.cluster.ip = ntohl(config.cluster.ip.words[0]);
    e.cluster.heartbeat_ms = config.cluster.heartbeat_ms;
    e.cluster.heartbeat_tolerance = config.cluster.heartbeat_tolerance;
    e.cluster.cleanup_delay_s = config.cluster.cleanup_delay_s;
    e.cluster.mode = static_cast<std::uint8_t>(config.cluster.mode);
    e.cluster.vlan = config.cluster.vlan;
    {
        // The VIP list as the dataplane numbers it (rules refer to VIPs by index).
        DigestBuilder d;
        d.u32(0x6e6c6269); // "nlbi"
        const auto vips = tables_of(config).vips();
        d.u8(static_cast<std::uint8_t>(vips.size()));
        for (const auto& v : vips) {
            d.u8(v.family);
            for (auto w : v.words)
                d.u32(w);
        }
        e.cluster.vips_digest = d.finish();
    }
    if (config.cluster.key_file)
        e.cluster.key = read_key_file(*config.cluster.key_file);
    if (config.cluster.rotation_key_file)
        e.cluster.rotation_key =
            read_key_file(*config.cluster.rotation_key_file, "cluster.rotation_key_file");
    // From the signing key only, never the rotation key: which of the two a host holds as
    // key_file is what decides its seed, so a rotation changes the seed as a configuration
    // change does, the hosts naming cluster.hash_seed, never in silence.
    if (config.cluster.hash_seed) {
        e.cluster.flow_seed = *config.cluster.hash_seed;
        e.cluster.flow_seed_source = SeedSource::config;
    } else if (!e.cluster.key.empty()) {
        e.cluster.flow_seed = flow_seed_from_key(e.cluster.key);
        e.cluster.flow_seed_source = SeedSource::key;
    }
    e.host.priority = config.host.priority;
    e.host.contact.family = config.host.dedicated_ip.family;
    std::memcpy(e.host.contact.address.data(), config.host.dedicated_ip.words.data(), 16);
    e.host.contact.port = NLB_CONTACT_PORT;
    e.host.peers = contact_peers(config);
    for (const auto& r : config.port_rules) {
        PortRule rule;
        if (r.vip) {
            rule.vip.family = r.vip->family;
            std::memcpy(rule.vip.address.data(), r.vip->words.data(), 16);
        }
        rule.first_port = r.first_port;
        rule.last_port = r.last_port;
        rule.protocol = r.protocol;
        rule.mode = static_cast<RuleMode>(r.mode);
        rule.affinity = static_cast<Affinity>(r.affinity);
        e.rules.push_back(rule);
    }
    e.host.rules = host_rule_params(config);
    e.host.panic_percent = config.health ? config.health->panic_percent : 0;
    return e;
}

std::vector<HostRuleParams> host_rule_params(const Config& config) {
    std::vector<HostRuleParams> out;
    for (const auto& r : config.port_rules) {
        HostRuleParams params;
        params.load_weight = r.load_weight ? *r.load_weight : kEqualWeight;
        params.handling_priority = r.handling_priority;
        out.push_back(params);
    }
    return out;
}

} // namespace nlb
