#include "shared_config.hpp"

#include <charconv>
#include <cstdio>
#include <limits>
#include <sstream>

namespace nlb {

namespace {

// The VIPs beside the cluster IP, in order, comma-separated: rules number them from 1 (0 is
// the cluster IP, which a push never changes: it names the cluster).
std::string vips_text(const Config& c) {
    std::string text;
    for (const auto& v : c.cluster.vips)
        text += (text.empty() ? "" : ",") + v.to_string();
    return text;
}

char protocol_code(Protocol p) {
    return p == Protocol::tcp ? 't' : p == Protocol::udp ? 'u' : 'b';
}
char mode_code(RuleMode m) {
    return m == RuleMode::multiple ? 'm' : m == RuleMode::single ? 's' : 'd';
}
char affinity_code(Affinity a) {
    return a == Affinity::none ? 'n' : a == Affinity::single ? 's' : 'c';
}

std::string rule_text(const Config& c, const PortRuleConfig& r) {
    std::string vip = "*";
    if (r.vip) {
        vip = "0";
        for (std::size_t i = 0; i < c.cluster.vips.size(); ++i)
            if (c.cluster.vips[i] == *r.vip)
                vip = std::to_string(i + 1);
    }
    return vip + ":" + std::to_string(r.first_port) + "-" + std::to_string(r.last_port) + ":" +
           protocol_code(r.protocol) + ":" + mode_code(r.mode) + ":" + affinity_code(r.affinity);
}

[[noreturn]] void bad(const std::string& what) {
    throw ConfigError("push: " + what);
}

std::uint32_t number(const nlohmann::json& part, const char* key) {
    if (!part.contains(key) || !part[key].is_number_unsigned())
        bad(std::string(key) + ": missing or not a number");
    // checked before the narrowing, which would wrap 2^32 + 1000 to a valid 1000; the
    // configuration's own bounds follow (parse_config)
    const auto value = part[key].get<std::uint64_t>();
    if (value > std::numeric_limits<std::uint32_t>::max())
        bad(std::string(key) + ": " + std::to_string(value) + " out of range");
    return static_cast<std::uint32_t>(value);
}

std::uint16_t port(std::string_view text, const std::string& where) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value > 65535 || text.empty())
        bad(where + ": bad port \"" + std::string(text) + "\"");
    return static_cast<std::uint16_t>(value);
}

PortRuleConfig parse_rule(const Config& host, const std::string& text, const std::string& where) {
    std::vector<std::string> f;
    std::stringstream in(text);
    for (std::string piece; std::getline(in, piece, ':');)
        f.push_back(piece);
    if (f.size() != 5 || f[2].size() != 1 || f[3].size() != 1 || f[4].size() != 1)
        bad(where + ": \"" + text + "\" is not VIP:FIRST-LAST:PROTOCOL:MODE:AFFINITY");
    PortRuleConfig r;
    if (f[0] != "*") {
        const std::uint16_t index = port(f[0], where + " VIP");
        if (index > host.cluster.vips.size())
            bad(where + ": no VIP " + f[0]);
        r.vip = index == 0 ? host.cluster.ip : host.cluster.vips[index - 1];
    }
    const auto dash = f[1].find('-');
    if (dash == std::string::npos)
        bad(where + ": ports \"" + f[1] + "\" are not FIRST-LAST");
    r.first_port = port(std::string_view(f[1]).substr(0, dash), where);
    r.last_port = port(std::string_view(f[1]).substr(dash + 1), where);
    switch (f[2][0]) {
    case 't':
        r.protocol = Protocol::tcp;
        break;
    case 'u':
        r.protocol = Protocol::udp;
        break;
    case 'b':
        r.protocol = Protocol::both;
        break;
    default:
        bad(where + ": bad protocol \"" + f[2] + "\"");
    }
    switch (f[3][0]) {
    case 'm':
        r.mode = RuleMode::multiple;
        break;
    case 's':
        r.mode = RuleMode::single;
        break;
    case 'd':
        r.mode = RuleMode::disabled;
        break;
    default:
        bad(where + ": bad mode \"" + f[3] + "\"");
    }
    switch (f[4][0]) {
    case 'n':
        r.affinity = Affinity::none;
        break;
    case 's':
        r.affinity = Affinity::single;
        break;
    case 'c':
        r.affinity = Affinity::network;
        break;
    default:
        bad(where + ": bad affinity \"" + f[4] + "\"");
    }
    return r;
}

bool protocols_meet(Protocol a, Protocol b) {
    return a == b || a == Protocol::both || b == Protocol::both;
}

} // namespace

nlohmann::json shared_part(const Config& config) {
    std::string rules;
    for (const auto& r : config.port_rules)
        rules += (rules.empty() ? "" : " ") + rule_text(config, r);
    return {{"heartbeat_ms", config.cluster.heartbeat_ms},
            {"heartbeat_tolerance", config.cluster.heartbeat_tolerance},
            {"cleanup_delay_s", config.cluster.cleanup_delay_s},
            {"vips", vips_text(config)},
            {"rules", rules}};
}

Config with_shared(const Config& host, const nlohmann::json& part) {
    if (!part.is_object())
        bad("not an object");
    if (!part.contains("vips") || !part["vips"].is_string())
        bad("vips: missing or not a string");
    if (!part.contains("rules") || !part["rules"].is_string())
        bad("rules: missing or not a string");
    Config next = host;
    next.cluster.vips.clear();
    std::stringstream vips(part["vips"].get<std::string>());
    for (std::string text; std::getline(vips, text, ',');) {
        if (next.cluster.vips.size() == NLB_MAX_VIPS)
            bad("vips: more than " + std::to_string(NLB_MAX_VIPS));
        const auto vip = IpAddress::parse(text);
        if (!vip)
            bad("vips: \"" + text + "\" is not an address");
        next.cluster.vips.push_back(*vip);
    }
    next.cluster.heartbeat_ms = number(part, "heartbeat_ms");
    next.cluster.heartbeat_tolerance = number(part, "heartbeat_tolerance");
    next.cluster.cleanup_delay_s = number(part, "cleanup_delay_s");
    next.port_rules.clear();
    std::stringstream in(part["rules"].get<std::string>());
    for (std::string text; in >> text;) {
        if (next.port_rules.size() == NLB_MAX_RULES)
            bad("more than " + std::to_string(NLB_MAX_RULES) + " rules");
        const std::string where = "rules[" + std::to_string(next.port_rules.size()) + "]";
        PortRuleConfig r = parse_rule(next, text, where);
        // This host's own values of the rule: from its rule for the same traffic, else
        // from one that overlaps it; a new rule starts from the defaults.
        const PortRuleConfig* same = nullptr;
        const PortRuleConfig* near = nullptr;
        for (const auto& h : host.port_rules) {
            if (h.vip != r.vip)
                continue;
            if (h.first_port == r.first_port && h.last_port == r.last_port &&
                h.protocol == r.protocol && !same)
                same = &h;
            if (protocols_meet(h.protocol, r.protocol) && h.first_port <= r.last_port &&
                r.first_port <= h.last_port && !near)
                near = &h;
        }
        // The default handling priority is the host's priority, as in a file: also where
        // the rule it comes from had another mode (a rule made single by the push).
        r.handling_priority = host.host.priority;
        if (const PortRuleConfig* from = same ? same : near) {
            r.enabled = from->enabled;
            if (r.mode == RuleMode::multiple && from->mode == RuleMode::multiple) {
                r.load_weight = from->load_weight;
                if (same)
                    r.load_feedback = from->load_feedback;
            }
            if (r.mode == RuleMode::single && from->mode == RuleMode::single)
                r.handling_priority = from->handling_priority;
        }
        next.port_rules.push_back(std::move(r));
    }
    // Every check of a file, on the result (overlaps, ranges, the timing's bounds).
    try {
        return parse_config(to_json(next).dump(), "push");
    } catch (const ConfigError& e) {
        bad(e.what());
    }
}

} // namespace nlb
