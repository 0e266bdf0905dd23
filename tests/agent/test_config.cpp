// Configs that must parse: the DESIGN.md §5 example, the defaults, every accepted form, the
// effective JSON and the dataplane tables a config implies.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "config.hpp"

using namespace nlb;

namespace {

const char* kDesignExample = R"({
  "cluster": { "ip": "192.0.2.100", "vips": ["192.0.2.101"], "mode": "unicast",
               "heartbeat_ms": 1000, "heartbeat_tolerance": 5, "key_file": "/etc/nlb/cluster.key",
               "remote_control": false, "cleanup_delay_s": 300 },
  "host":    { "priority": 1, "dedicated_ip": "192.0.2.11", "initial_state": "started",
               "interface": "eth0" },
  "port_rules": [
    { "vip": "all", "ports": [0, 65535], "protocol": "both", "mode": "multiple",
      "affinity": "single", "load_weight": "equal" }
  ]
})";

const char* kMinimal = R"({"cluster": {"ip": "10.0.0.1"},
                           "host": {"priority": 3, "dedicated_ip": "10.0.0.13"}})";

IpAddress ip(const char* text) {
    return *IpAddress::parse(text);
}

} // namespace

TEST_CASE("the DESIGN.md example parses") {
    Config c = parse_config(kDesignExample);
    CHECK(c.cluster.ip == ip("192.0.2.100"));
    REQUIRE(c.cluster.vips.size() == 1);
    CHECK(c.cluster.vips[0] == ip("192.0.2.101"));
    CHECK(c.cluster.mode == ClusterMode::unicast);
    CHECK(c.cluster.heartbeat_ms == 1000);
    CHECK(c.cluster.heartbeat_tolerance == 5);
    CHECK(c.cluster.key_file == "/etc/nlb/cluster.key");
    CHECK_FALSE(c.cluster.remote_control);
    CHECK(c.cluster.cleanup_delay_s == 300);
    CHECK(c.host.priority == 1);
    CHECK(c.host.dedicated_ip == ip("192.0.2.11"));
    CHECK(c.host.initial_state == InitialState::started);
    CHECK(c.host.interface == "eth0");
    REQUIRE(c.port_rules.size() == 1);
    const auto& r = c.port_rules[0];
    CHECK_FALSE(r.vip);
    CHECK(r.first_port == 0);
    CHECK(r.last_port == 65535);
    CHECK(r.protocol == Protocol::both);
    CHECK(r.mode == RuleMode::multiple);
    CHECK(r.affinity == Affinity::single);
    CHECK_FALSE(r.load_weight);
    CHECK_FALSE(c.metrics);
}

TEST_CASE("defaults follow DESIGN.md §5") {
    Config c = parse_config(kMinimal);
    CHECK(c.cluster.vips.empty());
    CHECK(c.cluster.mode == ClusterMode::unicast);
    CHECK(c.cluster.heartbeat_ms == 1000);
    CHECK(c.cluster.heartbeat_tolerance == 5);
    CHECK_FALSE(c.cluster.key_file);
    CHECK_FALSE(c.cluster.rotation_key_file);
    CHECK_FALSE(c.cluster.remote_control);
    CHECK(c.cluster.cleanup_delay_s == 300);
    CHECK(c.host.initial_state == InitialState::started);
    CHECK_FALSE(c.host.interface);
    CHECK_FALSE(c.metrics);

    SECTION("no port_rules key: one rule, all ports, both, multiple, single affinity, equal") {
        REQUIRE(c.port_rules.size() == 1);
        PortRuleConfig expected;
        expected.handling_priority = 3;
        CHECK(c.port_rules[0] == expected);
        CHECK_FALSE(expected.vip);
        CHECK(expected.first_port == 0);
        CHECK(expected.last_port == 65535);
        CHECK(expected.protocol == Protocol::both);
        CHECK(expected.mode == RuleMode::multiple);
        CHECK(expected.affinity == Affinity::single);
        CHECK_FALSE(expected.load_weight);
    }
}

TEST_CASE("an empty port_rules array means no rule: the default host takes everything") {
    Config c = parse_config(R"({"cluster": {"ip": "10.0.0.1"},
        "host": {"priority": 1, "dedicated_ip": "10.0.0.11"}, "port_rules": []})");
    CHECK(c.port_rules.empty());
}

TEST_CASE("every accepted value form") {
    Config c = parse_config(R"({
      "cluster": {"ip": "10.0.0.1", "vips": ["10.0.0.2", "2001:db8::1"], "mode": "igmp",
                  "heartbeat_ms": 100, "heartbeat_tolerance": 2, "remote_control": true,
                  "key_file": "/etc/nlb/cluster.key", "cleanup_delay_s": 0,
                  "rotation_key_file": "/etc/nlb/cluster.key.new", "hash_seed": 4294967295},
      "host": {"priority": 64, "dedicated_ip": "2001:db8::64", "initial_state": "suspended"},
      "port_rules": [
        {"vip": "2001:DB8:0::1", "ports": [80, 80], "protocol": "tcp", "mode": "single",
         "handling_priority": 7},
        {"vip": "10.0.0.1", "ports": [80, 80], "protocol": "udp", "mode": "multiple",
         "affinity": "network", "load_weight": 0},
        {"vip": "all", "ports": [1, 65535], "mode": "disabled"},
        {"vip": "10.0.0.2", "ports": [0, 0], "affinity": "none", "load_weight": 100,
         "enabled": false}
      ],
      "metrics": {"listen": "[::1]:9100"}
    })");
    CHECK(c.cluster.mode == ClusterMode::igmp);
    CHECK(c.cluster.heartbeat_ms == 100);
    CHECK(c.cluster.heartbeat_tolerance == 2);
    CHECK(c.cluster.remote_control);
    CHECK(c.cluster.rotation_key_file == "/etc/nlb/cluster.key.new");
    CHECK(c.cluster.cleanup_delay_s == 0);
    CHECK(c.cluster.hash_seed == 4294967295u);
    CHECK(c.host.priority == 64);
    CHECK(c.host.initial_state == InitialState::suspended);
    REQUIRE(c.port_rules.size() == 4);
    CHECK(c.port_rules[0].vip == ip("2001:db8::1")); // same address, other spelling
    CHECK(c.port_rules[0].mode == RuleMode::single);
    CHECK(c.port_rules[0].handling_priority == 7);
    CHECK(c.port_rules[1].affinity == Affinity::network);
    CHECK(c.port_rules[1].load_weight == 0);
    CHECK(c.port_rules[2].mode == RuleMode::disabled);
    CHECK(c.port_rules[3].affinity == Affinity::none);
    CHECK(c.port_rules[3].load_weight == 100);
    CHECK_FALSE(c.port_rules[3].enabled);
    CHECK(c.port_rules[1].enabled);
    REQUIRE(c.metrics);
    CHECK(c.metrics->listen() == "[::1]:9100");
}

TEST_CASE("a single rule's handling priority defaults to the host priority") {
    Config c = parse_config(R"({"cluster": {"ip": "10.0.0.1"},
        "host": {"priority": 9, "dedicated_ip": "10.0.0.19"},
        "port_rules": [{"mode": "single"}]})");
    CHECK(c.port_rules[0].handling_priority == 9);
}

TEST_CASE("a VIP's own rule beside an all-VIPs rule on the same ports is allowed") {
    Config c = parse_config(R"({"cluster": {"ip": "10.0.0.1", "vips": ["10.0.0.2"]},
        "host": {"priority": 1, "dedicated_ip": "10.0.0.11"},
        "port_rules": [{"vip": "all", "ports": [80, 80]},
                       {"vip": "10.0.0.2", "ports": [0, 65535], "mode": "single"},
                       {"vip": "all", "ports": [81, 90], "protocol": "tcp"},
                       {"vip": "all", "ports": [81, 90], "protocol": "udp"}]})");
    CHECK(c.port_rules.size() == 4);
}

TEST_CASE("metrics: listen defaults to 127.0.0.1:9650") {
    Config c = parse_config(R"({"cluster": {"ip": "10.0.0.1"},
        "host": {"priority": 1, "dedicated_ip": "10.0.0.11"}, "metrics": {}})");
    REQUIRE(c.metrics);
    CHECK(c.metrics->listen() == "127.0.0.1:9650");
}

TEST_CASE("limits: NLB_MAX_RULES rules and NLB_MAX_VIPS VIPs including the cluster IP") {
    std::string vips, rules;
    for (int i = 0; i < NLB_MAX_VIPS - 1; ++i)
        vips += (i ? ", " : "") + ("\"10.0.1." + std::to_string(i + 1) + "\"");
    for (int i = 0; i < NLB_MAX_RULES; ++i)
        rules += (i ? ", " : "") +
                 ("{\"ports\": [" + std::to_string(i) + ", " + std::to_string(i) + "]}");
    Config c = parse_config(R"({"cluster": {"ip": "10.0.0.1", "vips": [)" + vips +
                            R"(]}, "host": {"priority": 1, "dedicated_ip": "10.0.0.11"},
                            "port_rules": [)" +
                            rules + "]}");
    CHECK(c.cluster.vips.size() == NLB_MAX_VIPS - 1);
    CHECK(c.port_rules.size() == NLB_MAX_RULES);
}

TEST_CASE("igmp querier: off by default, 125 s, on with its interval in igmp mode") {
    Config off = parse_config(kMinimal);
    CHECK_FALSE(off.cluster.igmp_querier);
    CHECK(off.cluster.igmp_query_interval_s == 125);
    CHECK(to_json(off)["cluster"]["igmp_querier"] == false);
    CHECK_FALSE(to_json(off)["cluster"].contains("igmp_query_interval_s"));

    Config on = parse_config(R"({"cluster": {"ip": "10.0.0.1", "mode": "igmp",
        "igmp_querier": true, "igmp_query_interval_s": 30},
        "host": {"priority": 1, "dedicated_ip": "10.0.0.11"}})");
    CHECK(on.cluster.igmp_querier);
    CHECK(on.cluster.igmp_query_interval_s == 30);
    nlohmann::json j = to_json(on);
    CHECK(j["cluster"]["igmp_querier"] == true);
    CHECK(j["cluster"]["igmp_query_interval_s"] == 30);
    CHECK(parse_config(j.dump()) == on);
}

TEST_CASE("to_json gives the effective configuration and parses back to the same Config") {
    for (const char* text : {kDesignExample, kMinimal}) {
        Config c = parse_config(text);
        nlohmann::json j = to_json(c);
        CHECK(parse_config(j.dump()) == c);
    }
    Config c = parse_config(kMinimal);
    nlohmann::json j = to_json(c);
    CHECK(j["cluster"]["heartbeat_ms"] == 1000);
    CHECK(j["cluster"]["vips"] == nlohmann::json::array());
    CHECK_FALSE(j["cluster"].contains("key_file"));
    CHECK_FALSE(j["cluster"].contains("rotation_key_file"));
    // A seed derived from the key is not the configuration's to print.
    CHECK_FALSE(j["cluster"].contains("hash_seed"));
    CHECK_FALSE(c.cluster.hash_seed);
    Config seeded = parse_config(R"({"cluster": {"ip": "10.0.0.1", "hash_seed": 1},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}})");
    CHECK(to_json(seeded)["cluster"]["hash_seed"] == 1);
    CHECK(parse_config(to_json(seeded).dump()) == seeded);
    // An untagged cluster's effective config reads as before cluster.vlan existed.
    CHECK_FALSE(j["cluster"].contains("vlan"));
    Config tagged = parse_config(R"({"cluster": {"ip": "10.0.0.1", "vlan": 4094},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}})");
    CHECK(tagged.cluster.vlan == 4094);
    CHECK(to_json(tagged)["cluster"]["vlan"] == 4094);
    CHECK(parse_config(to_json(tagged).dump()) == tagged);
    Config named = parse_config(R"({"cluster": {"ip": "10.0.0.1", "vlan": 100},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12", "interface": "eth0",
                 "vlan_interface": "vmbr0.100"}})");
    CHECK(named.host.vlan_interface == "vmbr0.100");
    CHECK(to_json(named)["host"]["vlan_interface"] == "vmbr0.100");
    CHECK(parse_config(to_json(named).dump()) == named);
    CHECK_FALSE(j["cluster"].contains("peers"));
    Config listed = parse_config(R"({"cluster": {"ip": "10.0.0.1",
        "peers": ["10.0.0.11", "10.0.0.12", "10.0.0.13"]},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}})");
    CHECK(listed.cluster.peers.size() == 3);
    CHECK(to_json(listed)["cluster"]["peers"] ==
          nlohmann::json::array({"10.0.0.11", "10.0.0.12", "10.0.0.13"}));
    CHECK(parse_config(to_json(listed).dump()) == listed);
    // 0 is the untagged cluster, as when the key is absent.
    CHECK(parse_config(R"({"cluster": {"ip": "10.0.0.1", "vlan": 0},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}})") ==
          parse_config(R"({"cluster": {"ip": "10.0.0.1"},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}})"));

    Config rotating = parse_config(R"({"cluster": {"ip": "10.0.0.1", "key_file": "/k/new",
        "rotation_key_file": "/k/old"}, "host": {"priority": 2, "dedicated_ip": "10.0.0.12"}})");
    nlohmann::json r = to_json(rotating);
    CHECK(r["cluster"]["key_file"] == "/k/new");
    CHECK(r["cluster"]["rotation_key_file"] == "/k/old");
    CHECK(parse_config(r.dump()) == rotating);
    CHECK(j["host"]["initial_state"] == "started");
    CHECK(j["port_rules"][0] == nlohmann::json::parse(R"({"vip": "all", "ports": [0, 65535],
        "protocol": "both", "mode": "multiple", "affinity": "single", "load_weight": "equal",
        "enabled": true})"));

    Config mixed = parse_config(R"({"cluster": {"ip": "10.0.0.1", "vips": ["2001:db8::1"]},
        "host": {"priority": 2, "dedicated_ip": "10.0.0.12", "interface": "eth1"},
        "port_rules": [{"vip": "2001:db8::1", "mode": "single", "handling_priority": 4},
                       {"vip": "all", "mode": "disabled"},
                       {"vip": "10.0.0.1", "load_weight": 30, "affinity": "none"}],
        "metrics": {"listen": "0.0.0.0:9650"}})");
    nlohmann::json m = to_json(mixed);
    CHECK(m["port_rules"][0]["handling_priority"] == 4);
    CHECK_FALSE(m["port_rules"][1].contains("affinity"));
    CHECK(m["port_rules"][2]["load_weight"] == 30);
    CHECK(m["metrics"]["listen"] == "0.0.0.0:9650");
    CHECK(parse_config(m.dump()) == mixed);
}

TEST_CASE("tables_of: cluster IP first, then vips; rules in order with their VIP index") {
    Config c = parse_config(R"({"cluster": {"ip": "10.0.0.1", "vips": ["10.0.0.2", "2001:db8::1"]},
        "host": {"priority": 1, "dedicated_ip": "10.0.0.11"},
        "port_rules": [{"vip": "2001:db8::1", "ports": [443, 443], "protocol": "tcp",
                        "mode": "single"},
                       {"vip": "all", "ports": [80, 80], "affinity": "network"},
                       {"vip": "10.0.0.1", "ports": [53, 53], "protocol": "udp",
                        "mode": "disabled"}]})");
    DataplaneTables t = tables_of(c);
    REQUIRE(t.vips().size() == 3);
    CHECK(t.vips()[0] == ip("10.0.0.1"));
    CHECK(t.vips()[1] == ip("10.0.0.2"));
    CHECK(t.vips()[2] == ip("2001:db8::1"));
    REQUIRE(t.rules().size() == 3);
    CHECK(t.rules()[0].vip == 2u);
    CHECK(t.rules()[0].protocol == Protocol::tcp);
    CHECK(t.rules()[0].mode == NLB_MODE_SINGLE);
    CHECK(t.rules()[1].vip == std::nullopt);
    CHECK(t.rules()[1].affinity == NLB_AFFINITY_NETWORK);
    CHECK(t.rules()[1].first_port == 80);
    CHECK(t.rules()[2].vip == 0u);
    CHECK(t.rules()[2].mode == NLB_MODE_DISABLED);
    CHECK(t.rule_of(2, NLB_PROTO_TCP, 443) == 0);
    CHECK(t.rule_of(1, NLB_PROTO_UDP, 80) == 1);
    CHECK(t.rule_of(0, NLB_PROTO_UDP, 53) == 2);
    CHECK(t.rule_of(0, NLB_PROTO_TCP, 53) == NLB_RULE_DEFAULT);
}

TEST_CASE("load_config reads a file and names it in syntax errors") {
    std::string path = "/tmp/nlb-test-config-" + std::to_string(::getpid()) + ".json";
    { std::ofstream(path) << kDesignExample; }
    CHECK(load_config(path) == parse_config(kDesignExample));
    { std::ofstream(path) << "{\n  \"cluster\": {\n    x\n}"; }
    CHECK_THROWS_WITH(load_config(path),
                      Catch::StartsWith(path + ": line 3, column 5: syntax error"));
    std::remove(path.c_str());
    CHECK_THROWS_WITH(load_config(path), path + ": No such file or directory");
    CHECK_THROWS_WITH(load_config("/tmp"), "/tmp: is a directory");
}

TEST_CASE("interface names follow Linux's rule") {
    CHECK(is_valid_interface_name("eth0"));
    CHECK(is_valid_interface_name("enp0s31f6.100"));
    CHECK(is_valid_interface_name("a23456789012345"));
    CHECK_FALSE(is_valid_interface_name(""));
    CHECK_FALSE(is_valid_interface_name("a234567890123456"));
    CHECK_FALSE(is_valid_interface_name("."));
    CHECK_FALSE(is_valid_interface_name(".."));
    CHECK_FALSE(is_valid_interface_name("eth/0"));
    CHECK_FALSE(is_valid_interface_name("eth0:1"));
    CHECK_FALSE(is_valid_interface_name("eth 0"));
}
