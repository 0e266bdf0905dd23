// "health": probes parse strictly (errors name the key), print back to the same config, guard
// the rules their ports say, and a reload refuses to change them.
#include <catch2/catch.hpp>

#include <string>

#include "config.hpp"
#include "config_health.hpp"
#include "config_reload.hpp"

using namespace nlb;

namespace {

std::string with_health(const std::string& health) {
    return R"({"cluster": {"ip": "10.0.0.1"}, "host": {"priority": 1, "dedicated_ip": "10.0.0.11"},
      "port_rules": [{"ports": [80, 80]}, {"ports": [443, 443], "protocol": "tcp"},
                     {"ports": [5000, 5999], "mode": "disabled"}, {"ports": [53, 53], "mode": "single"}],
      "health": )" +
           health + "}";
}

std::string health_error(const std::string& health) {
    try {
        parse_config(with_health(health), "nlb.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST_CASE("health: the issue's example parses with its values and defaults") {
    const Config c = parse_config(with_health(R"({"probes": [
        {"name": "web", "type": "http", "url": "http://127.0.0.1:80/healthz", "expect_status": 200,
         "interval_ms": 1000, "timeout_ms": 500, "rise": 2, "fall": 3, "ports": [80, 443]},
        {"name": "dns", "type": "tcp", "port": 53},
        {"name": "db", "type": "exec", "command": ["/usr/bin/check", "-q"]},
        {"name": "v6", "type": "http", "url": "http://[::1]:8080"}], "panic_percent": 25})"));
    REQUIRE(c.health);
    const auto& p = c.health->probes;
    REQUIRE(p.size() == 4);
    CHECK(p[0].type == ProbeType::http);
    CHECK(p[0].address->to_string() == "127.0.0.1");
    CHECK(p[0].port == 80);
    CHECK(p[0].http_path == "/healthz");
    CHECK(p[0].http_host == "127.0.0.1:80");
    CHECK(p[1].port == 53);
    CHECK_FALSE(p[1].address); // the dedicated IP, resolved by the agent
    CHECK(p[1].interval_ms == 1000);
    CHECK(p[1].timeout_ms == 500);
    CHECK(p[1].rise == 2);
    CHECK(p[1].fall == 3);
    CHECK(p[2].user == "nobody");
    CHECK(p[2].command == std::vector<std::string>{"/usr/bin/check", "-q"});
    CHECK(p[3].address->to_string() == "::1");
    CHECK(p[3].port == 8080);
    CHECK(p[3].http_path == "/");
    CHECK(c.health->panic_percent == 25);
    // Guards: ports 80 and 443 -> rules 0 and 1; no ports -> every rule but the disabled one.
    CHECK(guarded_rules(p[0], c.port_rules) == 0b0011);
    CHECK(guarded_rules(p[1], c.port_rules) == 0b1011);
    // The effective config prints back to the same.
    CHECK(parse_config(to_json(c).dump()) == c);
}

TEST_CASE("health: every mistake is one line naming the key") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"probes": [{"type": "tcp", "port": 1}]})",
         "health.probes[0].name: required key missing"},
        {R"({"probes": [{"name": "a b", "type": "tcp", "port": 1}]})",
         "health.probes[0].name: \"a b\" is not 1..64 letters, digits, '-', '_' or '.'"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1}, {"name": "a", "type": "tcp", "port": 2}]})",
         "health.probes[1].name: \"a\" names another probe already"},
        {R"({"probes": [{"name": "a", "type": "icmp"}]})",
         "health.probes[0].type: \"icmp\" is not tcp, http or exec"},
        {R"({"probes": [{"name": "a", "type": "tcp"}]})",
         "health.probes[0]: a tcp probe needs \"port\""},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 0}]})",
         "health.probes[0].port: 0 below the minimum 1"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1, "url": "http://1.2.3.4/"}]})",
         "health.probes[0].url: only for type http, this probe is tcp"},
        {R"({"probes": [{"name": "a", "type": "http", "url": "https://1.2.3.4/"}]})",
         "health.probes[0].url: \"https://1.2.3.4/\" is https, probes speak plain HTTP "
         "(http://ADDRESS[:PORT]/PATH, e.g. \"http://127.0.0.1:80/healthz\")"},
        {R"({"probes": [{"name": "a", "type": "http", "url": "http://web.local/"}]})",
         "health.probes[0].url: \"http://web.local/\" has no IP address as host (names are not "
         "resolved) (http://ADDRESS[:PORT]/PATH, e.g. \"http://127.0.0.1:80/healthz\")"},
        {R"({"probes": [{"name": "a", "type": "http", "url": "http://1.2.3.4:99999/"}]})",
         "health.probes[0].url: \"http://1.2.3.4:99999/\" has no port 1..65535 "
         "(http://ADDRESS[:PORT]/PATH, e.g. \"http://127.0.0.1:80/healthz\")"},
        {R"({"probes": [{"name": "a", "type": "http", "url": "http://1.2.3.4/", "expect_status": 99}]})",
         "health.probes[0].expect_status: 99 below the minimum 100"},
        {R"({"probes": [{"name": "a", "type": "exec", "command": []}]})",
         "health.probes[0].command: 0 arguments, expected 1..64"},
        {R"({"probes": [{"name": "a", "type": "exec", "command": ["check"]}]})",
         "health.probes[0].command[0]: \"check\" is not an absolute path (no shell, no PATH "
         "search)"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1, "interval_ms": 50}]})",
         "health.probes[0].interval_ms: 50 below the minimum 100"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1, "interval_ms": 200, "timeout_ms": 300}]})",
         "health.probes[0].timeout_ms: 300 above the maximum 200"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1, "rise": 0}]})",
         "health.probes[0].rise: 0 below the minimum 1"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1, "ports": [8080]}]})",
         "health.probes[0].ports[0]: no port rule (of mode multiple or single) covers port 8080"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1, "ports": [5500]}]})",
         "health.probes[0].ports[0]: no port rule (of mode multiple or single) covers port 5500"},
        {R"({"probes": [{"name": "a", "type": "tcp", "port": 1, "bogus": 1}]})",
         "health.probes[0].bogus: unknown key"},
        {R"({"panic_percent": 101})", "health.panic_percent: 101 above the maximum 100"},
        {R"({"probe": []})", "health.probe: unknown key"},
    };
    for (const auto& [health, message] : cases) {
        INFO(health);
        const std::string m = health_error(health);
        CHECK(m == message);
        CHECK(m.find('\n') == std::string::npos);
    }
}

TEST_CASE("health: a reload refuses a change of the probes") {
    const Config a =
        parse_config(with_health(R"({"probes": [{"name": "a", "type": "tcp", "port": 1}]})"));
    Config b = a;
    b.health->probes[0].port = 2;
    CHECK(plan_reload(a, b).fixed == std::optional<std::string>("health"));
    CHECK_FALSE(plan_reload(a, a).fixed);
}

TEST_CASE("health: a URL path with any control character is refused") {
    // It goes into the probe's request line as it is: a NUL, a vertical tab or a DEL made a
    // request no server reads as one, and the rule went down for a URL the config accepted.
    for (const char* escape : {"\\u0000", "\\u000b", "\\u001b", "\\u007f", "\\u000c"}) {
        const std::string health = std::string(R"({"probes": [{"name": "a", "type": "http", )") +
                                   R"("url": "http://127.0.0.1/a)" + escape + R"(b"}]})";
        INFO(health);
        CHECK_THAT(health_error(health),
                   Catch::StartsWith("health.probes[0].url: ") &&
                       Catch::Contains("has a space, a control character or a fragment"));
    }
}
