// Config → the effective JSON (nlbadm params) and → the dataplane's tables; names of values.
#include <algorithm>

#include "config.hpp"
#include "config_health.hpp"
#include "config_load_feedback.hpp"

namespace nlb {

const char* to_string(InitialState state) {
    switch (state) {
    case InitialState::started:
        return "started";
    case InitialState::stopped:
        return "stopped";
    case InitialState::suspended:
        return "suspended";
    }
    return "?";
}

const char* to_string(RuleMode mode) {
    switch (mode) {
    case RuleMode::multiple:
        return "multiple";
    case RuleMode::single:
        return "single";
    case RuleMode::disabled:
        return "disabled";
    }
    return "?";
}

const char* to_string(Affinity affinity) {
    switch (affinity) {
    case Affinity::none:
        return "none";
    case Affinity::single:
        return "single";
    case Affinity::network:
        return "network";
    }
    return "?";
}

const char* to_string(Protocol protocol) {
    switch (protocol) {
    case Protocol::tcp:
        return "tcp";
    case Protocol::udp:
        return "udp";
    case Protocol::both:
        return "both";
    }
    return "?";
}

bool is_valid_interface_name(std::string_view name) {
    // IFNAMSIZ is 16 with the terminating NUL.
    if (name.empty() || name.size() > 15 || name == "." || name == "..")
        return false;
    return std::none_of(name.begin(), name.end(), [](char c) {
        return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
               c == '\v' || c == '\f';
    });
}

std::string MetricsConfig::listen() const {
    std::string host = address.to_string();
    if (address.family == NLB_FAMILY_V6)
        host = "[" + host + "]";
    return host + ":" + std::to_string(port);
}

namespace {

nlohmann::json rule_json(const PortRuleConfig& r) {
    nlohmann::json j = {
        {"vip", r.vip ? r.vip->to_string() : "all"},
        {"ports", {r.first_port, r.last_port}},
        {"protocol", to_string(r.protocol)},
        {"mode", to_string(r.mode)},
    };
    // Only the keys of the rule's mode: parse_config rejects the others.
    if (r.mode == RuleMode::multiple) {
        j["affinity"] = to_string(r.affinity);
        j["load_weight"] = r.load_weight ? nlohmann::json(*r.load_weight) : "equal";
        if (r.load_feedback)
            j["load_feedback"] = load_feedback_json(*r.load_feedback);
    } else if (r.mode == RuleMode::single) {
        j["handling_priority"] = r.handling_priority;
    }
    if (r.mode != RuleMode::disabled)
        j["enabled"] = r.enabled;
    return j;
}

} // namespace

nlohmann::json to_json(const Config& config) {
    const ClusterConfig& c = config.cluster;
    nlohmann::json cluster = {
        {"ip", c.ip.to_string()},
        {"vips", to_strings(c.vips)},
        {"mode", to_string(c.mode)},
        {"heartbeat_ms", c.heartbeat_ms},
        {"heartbeat_tolerance", c.heartbeat_tolerance},
        {"remote_control", c.remote_control},
        {"remote_config", c.remote_config},
        {"cleanup_delay_s", c.cleanup_delay_s},
        {"igmp_querier", c.igmp_querier},
    };
    if (c.igmp_querier) // parse_config refuses the interval without the querier
        cluster["igmp_query_interval_s"] = c.igmp_query_interval_s;
    if (c.key_file)
        cluster["key_file"] = *c.key_file;
    if (c.rotation_key_file)
        cluster["rotation_key_file"] = *c.rotation_key_file;
    // Only when set: a seed derived from the key stays as secret as the key file.
    if (c.hash_seed)
        cluster["hash_seed"] = *c.hash_seed;
    // Only when set: an untagged cluster's effective config reads as before the key existed.
    if (c.vlan)
        cluster["vlan"] = c.vlan;
    if (!c.peers.empty())
        cluster["peers"] = to_strings(c.peers);

    const HostConfig& h = config.host;
    nlohmann::json host = {
        {"priority", h.priority},
        {"dedicated_ip", h.dedicated_ip.to_string()},
        {"initial_state", to_string(h.initial_state)},
        {"opening_connections", h.opening_connections},
        {"established_connections", h.established_connections},
    };
    if (h.interface)
        host["interface"] = *h.interface;
    if (h.vlan_interface)
        host["vlan_interface"] = *h.vlan_interface;

    nlohmann::json rules = nlohmann::json::array();
    for (const auto& r : config.port_rules)
        rules.push_back(rule_json(r));

    nlohmann::json out = {{"cluster", cluster}, {"host", host}, {"port_rules", rules}};
    if (config.metrics)
        out["metrics"] = {{"listen", config.metrics->listen()}};
    if (config.health)
        out["health"] = health_json(*config.health);
    return out;
}

DataplaneTables tables_of(const Config& config, std::uint32_t flow_seed, const VipLayout* before) {
    std::vector<IpAddress> vips{config.cluster.ip};
    vips.insert(vips.end(), config.cluster.vips.begin(), config.cluster.vips.end());
    std::vector<RuleMatch> rules;
    for (const auto& r : config.port_rules) {
        RuleMatch m;
        if (r.vip)
            m.vip = static_cast<std::size_t>(std::find(vips.begin(), vips.end(), *r.vip) -
                                             vips.begin());
        m.first_port = r.first_port;
        m.last_port = r.last_port;
        m.protocol = r.protocol;
        m.mode = static_cast<std::uint8_t>(r.mode);
        m.affinity = static_cast<std::uint8_t>(r.affinity);
        rules.push_back(m);
    }
    try {
        return DataplaneTables(std::move(vips), std::move(rules), flow_seed, before);
    } catch (const std::invalid_argument& e) {
        // parse_config checks everything the tables do; only a hand-built Config gets here.
        throw ConfigError(e.what());
    }
}

} // namespace nlb
