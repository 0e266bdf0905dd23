// parse_config / load_config: JSON → Config, every rule of docs/config.md checked here.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config.hpp"
#include "config_health.hpp"
#include "config_load_feedback.hpp"
#include "json_reader.hpp"

namespace nlb {

namespace {

// "unicast, multicast or igmp" style choice among fixed words.
template <class Enum, std::size_t N>
Enum choice(const JsonField& field, const std::pair<const char*, Enum> (&options)[N]) {
    std::string text = field.string();
    std::string list;
    for (std::size_t i = 0; i < N; ++i) {
        if (text == options[i].first)
            return options[i].second;
        list += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(options[i].first);
    }
    field.fail("\"" + text + "\" is not " + list);
}

IpAddress address(const JsonField& field, bool ipv4_only) {
    std::string text = field.string();
    auto parsed = IpAddress::parse(text);
    if (!parsed || (ipv4_only && parsed->family != NLB_FAMILY_V4))
        field.fail("\"" + text + "\" is not an " +
                   std::string(ipv4_only ? "IPv4" : "IPv4 or IPv6") + " address");
    return *parsed;
}

// Why `vip` cannot be a VIP, or nullptr. A VIP goes on the interface and is answered for on
// the segment: the kernel refuses an IPv6 multicast, unspecified or loopback address there
// (which a reload would only find at the switch, after the dataplane's tables took the new
// list), and the IPv4 ones of those kinds, though accepted, are never a destination that
// clients reach (127/8 is martian on the wire).
const char* not_a_vip(const IpAddress& vip) {
    if (vip.family == NLB_FAMILY_V4) {
        const std::uint32_t a = ntohl(vip.words[0]);
        if (a >> 24 == 0)
            return "an unspecified (0.0.0.0/8) address";
        if (a >> 24 == 127)
            return "a loopback address";
        if (a >> 28 == 0xe)
            return "a multicast address";
        if (a == 0xffffffff)
            return "the broadcast address";
        return nullptr;
    }
    const auto* b = reinterpret_cast<const std::uint8_t*>(vip.words.data());
    if (b[0] == 0xff)
        return "a multicast address";
    bool zero = true;
    for (int i = 0; i < 15; ++i)
        zero = zero && b[i] == 0;
    if (zero && b[15] == 0)
        return "the unspecified address";
    if (zero && b[15] == 1)
        return "the loopback address";
    // ::ffff:a.b.c.d stands for an IPv4 peer inside one host's socket API; no packet on the
    // wire carries it, so the stack would hold it and no client ever reach it.
    bool mapped = b[10] == 0xff && b[11] == 0xff;
    for (int i = 0; i < 10; ++i)
        mapped = mapped && b[i] == 0;
    if (mapped)
        return "an IPv4-mapped address (the IPv4 address itself is the VIP)";
    return nullptr;
}

IpAddress vip_address(const JsonField& field, bool ipv4_only) {
    const IpAddress vip = address(field, ipv4_only);
    if (const char* why = not_a_vip(vip))
        field.fail(vip.to_string() + " is " + why + ", not one clients can reach");
    return vip;
}

ClusterConfig parse_cluster(const JsonField& field) {
    ObjectReader object(field);
    ClusterConfig c;
    c.ip = vip_address(object.required("ip"), true);
    if (auto vips = object.optional("vips")) {
        std::size_t n = vips->array_size();
        if (n > NLB_MAX_VIPS - 1)
            vips->fail(std::to_string(n) + " VIPs, at most " + std::to_string(NLB_MAX_VIPS - 1) +
                       " besides the cluster IP");
        for (std::size_t i = 0; i < n; ++i) {
            JsonField element = vips->element(i);
            IpAddress vip = vip_address(element, false);
            if (vip == c.ip)
                element.fail(vip.to_string() + " is the cluster IP, a VIP already");
            for (const auto& other : c.vips)
                if (other == vip)
                    element.fail(vip.to_string() + " listed twice");
            c.vips.push_back(vip);
        }
    }
    if (auto mode = object.optional("mode"))
        c.mode = choice(*mode, {std::pair{"unicast", ClusterMode::unicast},
                                {"multicast", ClusterMode::multicast},
                                {"igmp", ClusterMode::igmp}});
    if (auto ms = object.optional("heartbeat_ms"))
        c.heartbeat_ms = static_cast<std::uint32_t>(ms->integer(kMinHeartbeatMs, kMaxHeartbeatMs));
    if (auto tolerance = object.optional("heartbeat_tolerance"))
        c.heartbeat_tolerance = static_cast<std::uint32_t>(
            tolerance->integer(kMinHeartbeatTolerance, kMaxHeartbeatTolerance));
    if (auto key_file = object.optional("key_file")) {
        c.key_file = key_file->string();
        if (c.key_file->empty())
            key_file->fail("empty path (leave the key out for an unauthenticated cluster)");
    }
    if (auto rotation = object.optional("rotation_key_file")) {
        c.rotation_key_file = rotation->string();
        if (c.rotation_key_file->empty())
            rotation->fail("empty path (leave the key out when no key is being rotated)");
        // Accepting a second key only makes sense beside a first one: an unauthenticated
        // cluster has no key to rotate.
        if (!c.key_file)
            rotation->fail("needs cluster.key_file (the key it is accepted beside)");
        if (*c.rotation_key_file == *c.key_file)
            rotation->fail("\"" + *c.rotation_key_file +
                           "\" is cluster.key_file already (name the other key of the rotation)");
    }
    if (auto remote = object.optional("remote_control")) {
        c.remote_control = remote->boolean();
        // Remote commands are authenticated with the cluster key: without one, anyone on
        // the segment could drain the cluster.
        if (c.remote_control && !c.key_file)
            remote->fail("true needs cluster.key_file (remote control is authenticated with "
                         "the cluster key)");
    }
    if (auto pushed = object.optional("remote_config")) {
        c.remote_config = pushed->boolean();
        if (c.remote_config && !c.remote_control)
            pushed->fail("true needs cluster.remote_control (a push comes by remote control)");
    }
    if (auto delay = object.optional("cleanup_delay_s"))
        c.cleanup_delay_s = static_cast<std::uint32_t>(delay->integer(0, kMaxCleanupDelayS));
    // 0 is no seed: the dataplane reads it as the fixed default (a state pinned by a version
    // before per-cluster seeds).
    if (auto seed = object.optional("hash_seed"))
        c.hash_seed = static_cast<std::uint32_t>(seed->integer(1, 0xffffffff));
    if (auto querier = object.optional("igmp_querier")) {
        c.igmp_querier = querier->boolean();
        // Only igmp mode joins a group; a querier elsewhere would only add traffic.
        if (c.igmp_querier && c.mode != ClusterMode::igmp)
            querier->fail("true needs cluster.mode igmp, this cluster is " +
                          std::string(to_string(c.mode)));
    }
    if (auto interval = object.optional("igmp_query_interval_s")) {
        if (!c.igmp_querier)
            interval->fail("only with cluster.igmp_querier true");
        c.igmp_query_interval_s =
            static_cast<std::uint32_t>(interval->integer(kMinQueryIntervalS, kMaxQueryIntervalS));
    }
    // 0 is the untagged cluster, as when the key is absent (a priority tag carries no VLAN).
    if (auto vlan = object.optional("vlan"))
        c.vlan = static_cast<std::uint16_t>(vlan->integer(0, kMaxVlan));
    if (auto peers = object.optional("peers")) {
        const std::size_t n = peers->array_size();
        if (n > NLB_MAX_HOSTS)
            peers->fail(std::to_string(n) + " addresses, at most " + std::to_string(NLB_MAX_HOSTS) +
                        " (one per host)");
        for (std::size_t i = 0; i < n; ++i) {
            JsonField element = peers->element(i);
            IpAddress peer = address(element, false);
            for (const auto& other : c.peers)
                if (other == peer)
                    element.fail(peer.to_string() + " listed twice");
            c.peers.push_back(peer);
        }
    }
    object.finish();
    return c;
}

HostConfig parse_host(const JsonField& field) {
    ObjectReader object(field);
    HostConfig h;
    h.priority = static_cast<std::uint8_t>(object.required("priority").integer(1, NLB_MAX_HOSTS));
    h.dedicated_ip = address(object.required("dedicated_ip"), false);
    if (auto state = object.optional("initial_state"))
        h.initial_state = choice(*state, {std::pair{"started", InitialState::started},
                                          {"stopped", InitialState::stopped},
                                          {"suspended", InitialState::suspended}});
    if (auto interface = object.optional("interface")) {
        h.interface = interface->string();
        if (!is_valid_interface_name(*h.interface))
            interface->fail("\"" + *h.interface + "\" is not an interface name");
    }
    if (auto n = object.optional("opening_connections"))
        h.opening_connections =
            static_cast<std::uint32_t>(n->integer(kMinConnectionTable, kMaxConnectionTable));
    if (auto n = object.optional("established_connections"))
        h.established_connections =
            static_cast<std::uint32_t>(n->integer(kMinConnectionTable, kMaxConnectionTable));
    if (auto vlan_interface = object.optional("vlan_interface")) {
        h.vlan_interface = vlan_interface->string();
        if (!is_valid_interface_name(*h.vlan_interface))
            vlan_interface->fail("\"" + *h.vlan_interface + "\" is not an interface name");
        if (h.interface && *h.interface == *h.vlan_interface)
            vlan_interface->fail("\"" + *h.vlan_interface +
                                 "\" is host.interface (the trunk the dataplane sits on)");
    }
    object.finish();
    return h;
}

std::uint16_t port(const JsonField& field) {
    return static_cast<std::uint16_t>(field.integer(0, 65535));
}

PortRuleConfig parse_rule(const JsonField& field, const ClusterConfig& cluster,
                          const HostConfig& host) {
    ObjectReader object(field);
    PortRuleConfig r;
    if (auto vip = object.optional("vip"); vip && vip->value() != "all") {
        r.vip = address(*vip, false);
        bool known = *r.vip == cluster.ip;
        for (const auto& v : cluster.vips)
            known = known || *r.vip == v;
        if (!known)
            vip->fail(r.vip->to_string() + " is neither the cluster IP nor in cluster.vips");
    }
    if (auto ports = object.optional("ports")) {
        if (ports->array_size() != 2)
            ports->fail("expected [first, last], got " + std::to_string(ports->value().size()) +
                        " elements");
        r.first_port = port(ports->element(0));
        r.last_port = port(ports->element(1));
        if (r.first_port > r.last_port)
            ports->fail("first port " + std::to_string(r.first_port) + " above last port " +
                        std::to_string(r.last_port));
    }
    if (auto protocol = object.optional("protocol"))
        r.protocol = choice(
            *protocol,
            {std::pair{"tcp", Protocol::tcp}, {"udp", Protocol::udp}, {"both", Protocol::both}});
    if (auto mode = object.optional("mode"))
        r.mode = choice(*mode, {std::pair{"multiple", RuleMode::multiple},
                                {"single", RuleMode::single},
                                {"disabled", RuleMode::disabled}});
    std::string mode_name = to_string(r.mode);
    // A parameter of another mode is a mistake the operator should hear about: it would be
    // ignored, and the rule would not do what they think.
    auto only_for = [&](const JsonField& f, RuleMode wanted) {
        if (r.mode != wanted)
            f.fail(std::string("only for mode ") + to_string(wanted) + ", this rule is " +
                   mode_name);
    };
    if (auto affinity = object.optional("affinity")) {
        only_for(*affinity, RuleMode::multiple);
        r.affinity = choice(*affinity, {std::pair{"none", Affinity::none},
                                        {"single", Affinity::single},
                                        {"network", Affinity::network}});
    }
    if (auto weight = object.optional("load_weight")) {
        only_for(*weight, RuleMode::multiple);
        if (weight->value() != "equal") {
            if (weight->value().is_string())
                weight->fail("\"" + weight->string() + "\" is neither 0..100 nor \"equal\"");
            r.load_weight = static_cast<std::uint8_t>(weight->integer(0, kMaxLoadWeight));
        }
    }
    r.handling_priority = host.priority;
    if (auto handling = object.optional("handling_priority")) {
        only_for(*handling, RuleMode::single);
        r.handling_priority = static_cast<std::uint8_t>(handling->integer(1, NLB_MAX_HOSTS));
    }
    if (auto enabled = object.optional("enabled")) {
        if (r.mode == RuleMode::disabled)
            enabled->fail("a rule of mode disabled is off on every host");
        r.enabled = enabled->boolean();
    }
    if (auto feedback = object.optional("load_feedback")) {
        only_for(*feedback, RuleMode::multiple);
        r.load_feedback = parse_load_feedback(*feedback);
    }
    object.finish();
    return r;
}

std::string describe(const PortRuleConfig& r) {
    return std::string("vip ") + (r.vip ? r.vip->to_string() : "all") + ", ports " +
           std::to_string(r.first_port) + "-" + std::to_string(r.last_port) + ", " +
           to_string(r.protocol);
}

// Rules overlap when they name the same VIP (or both "all"), share a port and a protocol. A
// VIP's own rule beside an "all" rule is no overlap: the VIP's rule wins for that VIP.
bool overlap(const PortRuleConfig& a, const PortRuleConfig& b) {
    bool protocols =
        a.protocol == Protocol::both || b.protocol == Protocol::both || a.protocol == b.protocol;
    return a.vip == b.vip && protocols && a.first_port <= b.last_port &&
           b.first_port <= a.last_port;
}

std::vector<PortRuleConfig> parse_rules(const JsonField& field, const ClusterConfig& cluster,
                                        const HostConfig& host) {
    std::size_t n = field.array_size();
    if (n > NLB_MAX_RULES)
        field.fail(std::to_string(n) + " rules, at most " + std::to_string(NLB_MAX_RULES));
    std::vector<PortRuleConfig> rules;
    for (std::size_t i = 0; i < n; ++i) {
        JsonField element = field.element(i);
        PortRuleConfig rule = parse_rule(element, cluster, host);
        for (std::size_t j = 0; j < rules.size(); ++j)
            if (overlap(rule, rules[j]))
                element.fail("overlaps port_rules[" + std::to_string(j) + "] (" +
                             describe(rules[j]) + ")");
        rules.push_back(rule);
    }
    return rules;
}

MetricsConfig parse_metrics(const JsonField& field) {
    ObjectReader object(field);
    MetricsConfig m;
    m.address = *IpAddress::parse("127.0.0.1");
    if (auto listen = object.optional("listen")) {
        std::string text = listen->string();
        // "ADDRESS:PORT", IPv6 in brackets: "[::1]:9650".
        auto colon = text.rfind(':');
        std::string host = colon == std::string::npos ? text : text.substr(0, colon);
        std::string port_text = colon == std::string::npos ? "" : text.substr(colon + 1);
        bool v6 = host.size() > 2 && host.front() == '[' && host.back() == ']';
        auto addr = IpAddress::parse(v6 ? host.substr(1, host.size() - 2) : host);
        bool port_ok = !port_text.empty() && port_text.size() <= 5 &&
                       port_text.find_first_not_of("0123456789") == std::string::npos &&
                       std::stoul(port_text) >= 1 && std::stoul(port_text) <= 65535;
        if (!addr || (addr->family == NLB_FAMILY_V6) != v6 || !port_ok)
            listen->fail("\"" + text +
                         "\" is not ADDRESS:PORT (\"127.0.0.1:9650\", \"[::1]:9650\")");
        m.address = *addr;
        m.port = static_cast<std::uint16_t>(std::stoul(port_text));
    }
    object.finish();
    return m;
}

// NLB's default when no port_rules key is given: all ports, both protocols, load-balanced
// over every host with single affinity and equal load.
PortRuleConfig default_rule(const HostConfig& host) {
    PortRuleConfig r;
    r.handling_priority = host.priority;
    return r;
}

} // namespace

Config parse_config(std::string_view json_text, std::string_view source) {
    nlohmann::json document = parse_json_strict(json_text, source);
    JsonField root(document, "");
    ObjectReader object(root);
    Config config;
    // Cluster and host first: rules refer to the VIPs and default to the host's priority.
    config.cluster = parse_cluster(object.required("cluster"));
    config.host = parse_host(object.required("host"));
    if (auto rules = object.optional("port_rules"))
        config.port_rules = parse_rules(*rules, config.cluster, config.host);
    else
        config.port_rules = {default_rule(config.host)};
    if (auto metrics = object.optional("metrics"))
        config.metrics = parse_metrics(*metrics);
    if (auto health = object.optional("health"))
        config.health = parse_health(*health, config.port_rules);
    object.finish();

    const IpAddress& dip = config.host.dedicated_ip;
    bool dip_is_vip = dip == config.cluster.ip;
    for (const auto& v : config.cluster.vips)
        dip_is_vip = dip_is_vip || dip == v;
    if (dip_is_vip)
        throw ConfigError("host.dedicated_ip: " + dip.to_string() +
                          " is a VIP; the dedicated IP is the host's own address");
    // probe_latency measures the probes that guard the rule: with none it would never sample.
    for (std::size_t i = 0; i < config.port_rules.size(); ++i) {
        const auto& f = config.port_rules[i].load_feedback;
        if (!f || f->metric != LoadMetric::probe_latency)
            continue;
        bool guarded = false;
        if (config.health)
            for (const auto& p : config.health->probes)
                guarded = guarded || ((guarded_rules(p, config.port_rules) >> i) & 1);
        if (!guarded)
            throw ConfigError("port_rules[" + std::to_string(i) +
                              "].load_feedback.metric: probe_latency needs a health probe "
                              "guarding this rule");
    }
    // The second path runs between dedicated IPs of one family (one socket, bound to it).
    for (std::size_t i = 0; i < config.cluster.peers.size(); ++i) {
        const IpAddress& peer = config.cluster.peers[i];
        const std::string key = "cluster.peers[" + std::to_string(i) + "]: ";
        if (peer.family != dip.family)
            throw ConfigError(key + peer.to_string() + " is " +
                              (dip.family == NLB_FAMILY_V4 ? "IPv6" : "IPv4") +
                              " and host.dedicated_ip " + dip.to_string() + " is not (the " +
                              "second path runs between dedicated IPs of one family)");
        if (peer == config.cluster.ip ||
            std::find(config.cluster.vips.begin(), config.cluster.vips.end(), peer) !=
                config.cluster.vips.end())
            throw ConfigError(key + peer.to_string() + " is a VIP; list the hosts' dedicated IPs");
    }
    if (config.host.vlan_interface && !config.cluster.vlan)
        throw ConfigError("host.vlan_interface: only with cluster.vlan (an untagged cluster "
                          "meets the stack on host.interface)");
    if (config.cluster.igmp_querier && dip.family != NLB_FAMILY_V4)
        throw ConfigError("cluster.igmp_querier: true needs an IPv4 host.dedicated_ip (the "
                          "queries' source), " +
                          dip.to_string() + " is IPv6");
    return config;
}

Config load_config(const std::string& path) {
    if (std::filesystem::is_directory(path))
        throw ConfigError(path + ": is a directory");
    std::ifstream file(path);
    if (!file)
        throw ConfigError(path + ": " + std::strerror(errno));
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad())
        throw ConfigError(path + ": " + std::strerror(errno));
    return parse_config(text.str(), path);
}

} // namespace nlb
