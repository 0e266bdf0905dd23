// The shared part `nlbadm push` carries, and how a host merges it with its own values.
#include <catch2/catch.hpp>

#include <string>

#include "shared_config.hpp"

using namespace nlb;

namespace {

Config host(int priority, const std::string& rules, const std::string& cluster_extra = "") {
    return parse_config(R"({"cluster": {"ip": "10.0.0.1", "vips": ["10.0.0.2", "fd00::2"])" +
                        cluster_extra + R"(}, "host": {"priority": )" + std::to_string(priority) +
                        R"(, "dedicated_ip": "10.0.0.1)" + std::to_string(priority) +
                        R"("}, "port_rules": )" + rules + "}");
}

const std::string kRules = R"([{"ports": [80, 80], "protocol": "tcp", "load_weight": 20},
                                {"vip": "fd00::2", "ports": [53, 53], "protocol": "udp",
                                 "mode": "single", "handling_priority": 7},
                                {"ports": [8000, 8099], "affinity": "network", "enabled": false,
                                 "load_feedback": {"metric": "connections"}}])";

} // namespace

TEST_CASE("the shared part is compact and round-trips through a host") {
    const Config a = host(1, kRules, R"(, "heartbeat_ms": 200)");
    const auto part = shared_part(a);
    CHECK(part["rules"] == "*:80-80:t:m:s 2:53-53:u:s:s *:8000-8099:b:m:c");
    CHECK(part["heartbeat_ms"] == 200);
    // Applied to the host it came from, it changes nothing.
    CHECK(with_shared(a, part) == a);
    // 32 rules fit one remote-control request.
    std::string many = "[";
    for (int i = 0; i < 32; ++i)
        many += std::string(i ? "," : "") + R"({"vip": "fd00::2", "ports": [)" +
                std::to_string(10000 + 2 * i) + ", " + std::to_string(10001 + 2 * i) +
                R"(], "affinity": "network"})";
    const auto big = shared_part(host(1, many + "]"));
    nlohmann::json request = big;
    request["command"] = "push";
    CHECK(request.dump().size() < 1000);
}

TEST_CASE("a pushed set keeps each host's own values of the rules it already has") {
    // Host 2 has its own weights; the push grows port 80's rule to 80-81, moves the DNS rule
    // to TCP and UDP, and adds 443.
    const Config two = host(2, R"([{"ports": [80, 80], "protocol": "tcp", "load_weight": 70},
                                   {"vip": "fd00::2", "ports": [53, 53], "protocol": "udp",
                                    "mode": "single", "handling_priority": 3},
                                   {"ports": [8000, 8099], "affinity": "network",
                                    "load_feedback": {"metric": "connections"}}])");
    Config pushed = host(1, kRules, R"(, "heartbeat_ms": 500)");
    pushed.port_rules[0].last_port = 81;
    pushed.port_rules[1].protocol = Protocol::both;
    PortRuleConfig https;
    https.first_port = https.last_port = 443;
    https.load_weight = 90; // the pusher's own weight: not the other hosts'
    pushed.port_rules.push_back(https);
    const Config next = with_shared(two, shared_part(pushed));
    CHECK(next.cluster.heartbeat_ms == 500);
    CHECK(next.host == two.host);
    REQUIRE(next.port_rules.size() == 4);
    CHECK(next.port_rules[0].last_port == 81);
    CHECK(next.port_rules[0].load_weight == 70);      // overlapping rule: its weight
    CHECK(next.port_rules[1].handling_priority == 3); // and its handling priority
    CHECK(next.port_rules[1].protocol == Protocol::both);
    CHECK(next.port_rules[2].enabled);                   // host 2's, not the pusher's false
    CHECK(next.port_rules[2].load_feedback.has_value()); // same ports: load feedback stays
    CHECK_FALSE(next.port_rules[3].load_weight);         // new: "equal", whatever the pusher has
}

TEST_CASE("a rule a push makes single gets the host's priority, as a file's would") {
    // Host 3 runs port 80 load-balanced; the push makes it single. No handling priority
    // travels: host 3's must be its own priority (what its file would give), not 1, which
    // would put it ahead of host 2 for the rule.
    const Config three = host(3, R"([{"ports": [80, 80], "protocol": "tcp"},
                                     {"ports": [81, 81], "protocol": "tcp"}])");
    const Config pushed = host(1, R"([{"ports": [80, 80], "protocol": "tcp", "mode": "single"},
                                      {"ports": [81, 90], "protocol": "tcp", "mode": "single"}])");
    const Config next = with_shared(three, shared_part(pushed));
    REQUIRE(next.port_rules.size() == 2);
    CHECK(next.port_rules[0].handling_priority == 3); // the same rule, another mode
    CHECK(next.port_rules[1].handling_priority == 3); // an overlapping one
    const Config file = host(3, R"([{"ports": [80, 80], "protocol": "tcp", "mode": "single"},
                                    {"ports": [81, 90], "protocol": "tcp", "mode": "single"}])");
    CHECK(next.port_rules == file.port_rules);
}

TEST_CASE("a pushed VIP list replaces the host's; its rules name VIPs by the pushed list") {
    const Config two = host(2, kRules);
    Config pushed = host(1, kRules);
    IpAddress web = *IpAddress::parse("10.0.0.7");
    pushed.cluster.vips = {*IpAddress::parse("fd00::2"), web}; // 10.0.0.2 goes, 10.0.0.7 comes
    pushed.port_rules[0].vip = web;
    const auto part = shared_part(pushed);
    CHECK(part["vips"] == "fd00::2,10.0.0.7");
    CHECK(part["rules"] == "2:80-80:t:m:s 1:53-53:u:s:s *:8000-8099:b:m:c");
    const Config next = with_shared(two, part);
    CHECK(next.cluster.ip == two.cluster.ip);
    CHECK(next.cluster.vips == pushed.cluster.vips);
    REQUIRE(next.port_rules.size() == 3);
    CHECK(next.port_rules[0].vip == web);
    CHECK_FALSE(next.port_rules[0].load_weight); // a rule of another VIP: a new rule
    CHECK(next.port_rules[1].vip == *IpAddress::parse("fd00::2"));
    CHECK(next.port_rules[1].handling_priority == 7); // the same rule: host 2's values
}

TEST_CASE("a shared part that does not fit is refused by one line") {
    const Config a = host(1, kRules);
    auto part = shared_part(a);
    auto broken = [&](const char* key, nlohmann::json value) {
        auto p = part;
        p[key] = std::move(value);
        try {
            (void)with_shared(a, p);
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(broken("vips", "10.0.0.2,10.0.0") == "push: vips: \"10.0.0\" is not an address");
    CHECK(broken("vips", 3) == "push: vips: missing or not a string");
    CHECK(broken("vips", "10.0.0.2,10.0.0.2").find("listed twice") != std::string::npos);
    // one the kernel would refuse at the switch, after the tables took it
    CHECK(broken("vips", "ff02::1,10.0.0.2,fd00::2") ==
          "push: cluster.vips[0]: ff02::1 is a multicast address, not one clients can reach");
    // A rule of a VIP the pushed list drops names it.
    CHECK(broken("vips", "10.0.0.2") == "push: rules[1]: no VIP 2");
    CHECK(broken("rules", "*:80-80:x:m:s") == "push: rules[0]: bad protocol \"x\"");
    CHECK(broken("rules", "*:80:t:m:s") == "push: rules[0]: ports \"80\" are not FIRST-LAST");
    CHECK(broken("rules", "9:80-80:t:m:s") == "push: rules[0]: no VIP 9");
    CHECK(broken("rules", "*:80-90:t:m:s *:85-85:t:m:s").find("overlaps") != std::string::npos);
    CHECK(broken("heartbeat_ms", 5).find("heartbeat_ms") != std::string::npos);
    CHECK(broken("heartbeat_ms", "fast") == "push: heartbeat_ms: missing or not a number");
    // past 32 bits: refused, not wrapped to 1,000 (2^32 + 1,000) and then found valid
    CHECK(broken("heartbeat_ms", 4294968296ULL) == "push: heartbeat_ms: 4294968296 out of range");
    CHECK(broken("rules", 7) == "push: rules: missing or not a string");
}

TEST_CASE("remote_config needs remote_control") {
    CHECK_THROWS_WITH(host(1, kRules, R"(, "remote_config": true)"),
                      Catch::Contains("remote_config: true needs cluster.remote_control"));
}
