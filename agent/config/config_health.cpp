// "health": probes and panic_percent (docs/health.md), strict like the rest of nlb.json.
#include "config_health.hpp"

#include <algorithm>

namespace nlb {

const char* to_string(ProbeType type) {
    switch (type) {
    case ProbeType::tcp:
        return "tcp";
    case ProbeType::http:
        return "http";
    case ProbeType::exec:
        return "exec";
    }
    return "?";
}

namespace {

bool valid_name(const std::string& name) {
    // It becomes a Prometheus label value and a word in log lines: keep it plain.
    return !name.empty() && name.size() <= kMaxProbeName &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.';
           });
}

// "http://ADDRESS[:PORT][/PATH]", ADDRESS an IPv4 literal or an IPv6 one in brackets.
void parse_url(const JsonField& field, ProbeConfig& p) {
    const std::string url = field.string();
    auto bad = [&](const std::string& why) {
        field.fail("\"" + url + "\" " + why +
                   " (http://ADDRESS[:PORT]/PATH, e.g. \"http://127.0.0.1:80/healthz\")");
    };
    const std::string scheme = "http://";
    if (url.rfind(scheme, 0) != 0)
        bad(url.rfind("https://", 0) == 0 ? "is https, probes speak plain HTTP"
                                          : "is not an http:// URL");
    const auto slash = url.find('/', scheme.size());
    const std::string authority = url.substr(scheme.size(), slash - scheme.size());
    p.http_path = slash == std::string::npos ? "/" : url.substr(slash);
    // It goes into the request line as it is: no byte there may end or split that line.
    if (std::any_of(p.http_path.begin(), p.http_path.end(), [](char c) {
            const auto byte = static_cast<unsigned char>(c);
            return byte <= 0x20 || byte == 0x7f || c == '#';
        }))
        bad("has a space, a control character or a fragment in its path");
    if (authority.empty())
        bad("has no host");
    std::string host = authority, port_text;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string::npos)
            bad("has an unclosed [");
        host = authority.substr(1, close - 1);
        const std::string rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':')
                bad("has something after ]");
            port_text = rest.substr(1);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
        host = authority.substr(0, colon);
        port_text = authority.substr(colon + 1);
    }
    const auto address = IpAddress::parse(host);
    if (!address || (authority.front() == '[') != (address->family == NLB_FAMILY_V6))
        bad("has no IP address as host (names are not resolved)");
    p.address = *address;
    p.port = 80;
    if (authority.back() == ':')
        bad("has an empty port");
    if (!port_text.empty()) {
        const bool digits =
            port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos;
        const unsigned long n = digits ? std::stoul(port_text) : 0;
        if (n < 1 || n > 65535)
            bad("has no port 1..65535");
        p.port = static_cast<std::uint16_t>(n);
    }
    p.url = url;
    p.http_host = authority;
}

ProbeConfig parse_probe(const JsonField& field, const std::vector<PortRuleConfig>& rules,
                        const std::vector<ProbeConfig>& earlier) {
    ObjectReader object(field);
    ProbeConfig p;
    const JsonField name = object.required("name");
    p.name = name.string();
    if (!valid_name(p.name))
        name.fail("\"" + p.name + "\" is not 1.." + std::to_string(kMaxProbeName) +
                  " letters, digits, '-', '_' or '.'");
    for (const auto& e : earlier)
        if (e.name == p.name)
            name.fail("\"" + p.name + "\" names another probe already");
    const JsonField type = object.required("type");
    const std::string t = type.string();
    if (t == "tcp")
        p.type = ProbeType::tcp;
    else if (t == "http")
        p.type = ProbeType::http;
    else if (t == "exec")
        p.type = ProbeType::exec;
    else
        type.fail("\"" + t + "\" is not tcp, http or exec");
    // A key of another type is a mistake: it would be ignored.
    auto only_for = [&](const char* key, ProbeType wanted) {
        auto f = object.optional(key);
        if (f && p.type != wanted)
            f->fail(std::string("only for type ") + to_string(wanted) + ", this probe is " +
                    to_string(p.type));
        return f;
    };
    auto address = only_for("address", ProbeType::tcp);
    auto port = only_for("port", ProbeType::tcp);
    auto url = only_for("url", ProbeType::http);
    auto status = only_for("expect_status", ProbeType::http);
    auto command = only_for("command", ProbeType::exec);
    auto user = only_for("user", ProbeType::exec);
    switch (p.type) {
    case ProbeType::tcp: {
        if (address) {
            const std::string text = address->string();
            auto a = IpAddress::parse(text);
            if (!a)
                address->fail("\"" + text + "\" is not an IPv4 or IPv6 address");
            p.address = *a;
        }
        if (!port)
            field.fail("a tcp probe needs \"port\"");
        p.port = static_cast<std::uint16_t>(port->integer(1, 65535));
        break;
    }
    case ProbeType::http:
        if (!url)
            field.fail("an http probe needs \"url\"");
        parse_url(*url, p);
        if (status)
            p.expect_status = static_cast<std::uint16_t>(status->integer(100, 599));
        break;
    case ProbeType::exec: {
        if (!command)
            field.fail("an exec probe needs \"command\" (an argv array, no shell)");
        p.command = parse_exec_command(*command);
        if (user) {
            p.user = user->string();
            if (p.user.empty())
                user->fail("empty user name");
        }
        break;
    }
    }
    if (auto interval = object.optional("interval_ms"))
        p.interval_ms =
            static_cast<std::uint32_t>(interval->integer(kMinProbeIntervalMs, kMaxProbeIntervalMs));
    if (auto timeout = object.optional("timeout_ms")) {
        // One check at a time: a check outliving its interval would overlap the next one.
        p.timeout_ms =
            static_cast<std::uint32_t>(timeout->integer(kMinProbeTimeoutMs, p.interval_ms));
    } else {
        p.timeout_ms = std::min(p.timeout_ms, p.interval_ms);
    }
    if (auto rise = object.optional("rise"))
        p.rise = static_cast<std::uint32_t>(rise->integer(1, kMaxProbeRiseFall));
    if (auto fall = object.optional("fall"))
        p.fall = static_cast<std::uint32_t>(fall->integer(1, kMaxProbeRiseFall));
    if (auto ports = object.optional("ports")) {
        const std::size_t n = ports->array_size();
        if (n == 0)
            ports->fail("empty (leave the key out to guard every rule)");
        std::vector<std::uint16_t> list;
        for (std::size_t i = 0; i < n; ++i) {
            const JsonField element = ports->element(i);
            const auto port_number = static_cast<std::uint16_t>(element.integer(0, 65535));
            ProbeConfig one;
            one.ports = std::vector<std::uint16_t>{port_number};
            if (guarded_rules(one, rules) == 0)
                element.fail("no port rule (of mode multiple or single) covers port " +
                             std::to_string(port_number));
            list.push_back(port_number);
        }
        p.ports = std::move(list);
    }
    object.finish();
    return p;
}

} // namespace

std::uint32_t guarded_rules(const ProbeConfig& probe, const std::vector<PortRuleConfig>& rules) {
    std::uint32_t mask = 0;
    for (std::size_t r = 0; r < rules.size() && r < 32; ++r) {
        if (rules[r].mode == RuleMode::disabled)
            continue;
        bool covers = !probe.ports;
        if (probe.ports)
            for (const auto port : *probe.ports)
                covers = covers || (rules[r].first_port <= port && port <= rules[r].last_port);
        if (covers)
            mask |= std::uint32_t{1} << r;
    }
    return mask;
}

HealthConfig parse_health(const JsonField& field, const std::vector<PortRuleConfig>& rules) {
    ObjectReader object(field);
    HealthConfig h;
    if (auto probes = object.optional("probes")) {
        const std::size_t n = probes->array_size();
        if (n > kMaxProbes)
            probes->fail(std::to_string(n) + " probes, at most " + std::to_string(kMaxProbes));
        for (std::size_t i = 0; i < n; ++i)
            h.probes.push_back(parse_probe(probes->element(i), rules, h.probes));
    }
    if (auto percent = object.optional("panic_percent"))
        h.panic_percent = static_cast<std::uint8_t>(percent->integer(0, 100));
    object.finish();
    return h;
}

std::vector<std::string> parse_exec_command(const JsonField& command) {
    std::vector<std::string> out;
    const std::size_t n = command.array_size();
    if (n == 0 || n > kMaxExecArgs)
        command.fail(std::to_string(n) + " arguments, expected 1.." + std::to_string(kMaxExecArgs));
    for (std::size_t i = 0; i < n; ++i) {
        const JsonField arg = command.element(i);
        std::string s = arg.string();
        if (s.find('\0') != std::string::npos)
            arg.fail("contains a NUL byte");
        if (i == 0 && (s.empty() || s.front() != '/'))
            arg.fail("\"" + s + "\" is not an absolute path (no shell, no PATH search)");
        out.push_back(std::move(s));
    }
    return out;
}

nlohmann::json health_json(const HealthConfig& health) {
    nlohmann::json probes = nlohmann::json::array();
    for (const auto& p : health.probes) {
        nlohmann::json j = {{"name", p.name}, {"type", to_string(p.type)}};
        switch (p.type) {
        case ProbeType::tcp:
            if (p.address)
                j["address"] = p.address->to_string();
            j["port"] = p.port;
            break;
        case ProbeType::http:
            j["url"] = p.url;
            j["expect_status"] = p.expect_status;
            break;
        case ProbeType::exec:
            j["command"] = p.command;
            j["user"] = p.user;
            break;
        }
        j["interval_ms"] = p.interval_ms;
        j["timeout_ms"] = p.timeout_ms;
        j["rise"] = p.rise;
        j["fall"] = p.fall;
        if (p.ports)
            j["ports"] = *p.ports;
        probes.push_back(std::move(j));
    }
    return {{"probes", probes}, {"panic_percent", health.panic_percent}};
}

} // namespace nlb
