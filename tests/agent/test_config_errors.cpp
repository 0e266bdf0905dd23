// Every kind of bad config gives one ConfigError line naming the key path and the problem.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "json_reader.hpp"

using namespace nlb;

namespace {

// A valid config with one part replaced: `cluster`, `host` or `rest` (text after the host
// object, e.g. `, "port_rules": [...]`).
std::string with(std::string cluster, std::string host = "", std::string rest = "") {
    if (cluster.empty())
        cluster = R"({"ip": "10.0.0.1", "vips": ["10.0.0.2", "2001:db8::1"]})";
    if (host.empty())
        host = R"({"priority": 1, "dedicated_ip": "10.0.0.11"})";
    return R"({"cluster": )" + cluster + R"(, "host": )" + host + rest + "}";
}

std::string rules(const std::string& list) {
    return with("", "", R"(, "port_rules": )" + list);
}

std::string error_of(const std::string& text) {
    try {
        parse_config(text, "nlb.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

struct Case {
    std::string text;
    std::string message;
};

void check_all(const std::vector<Case>& cases) {
    for (const auto& c : cases) {
        INFO(c.text);
        std::string message = error_of(c.text);
        CHECK(message == c.message);
        CHECK(message.find('\n') == std::string::npos);
    }
}

} // namespace

TEST_CASE("JSON syntax errors name the file, line and column") {
    std::string m = error_of("{\n  \"cluster\": {\n    x\n}");
    CHECK_THAT(m, Catch::StartsWith("nlb.json: line 3, column 5: syntax error"));
    CHECK(m.find('\n') == std::string::npos);
    CHECK_THAT(error_of(""), Catch::StartsWith("nlb.json: line 1, column 1: "));
    CHECK_THAT(error_of("{} {}"), Catch::StartsWith("nlb.json: line 1, column 4: "));
}

// What a message carries goes into JSON answers and log lines, which must be UTF-8: nlbadm's
// reload of a file saved as Latin-1 once ended the agent (the answer's dump threw).
TEST_CASE("error messages are UTF-8 whatever the file holds") {
    auto utf8 = [](const std::string& m) {
        INFO(m);
        CHECK_NOTHROW(nlohmann::json(m).dump());
        return m;
    };
    // a Latin-1 "é" inside a string: a syntax error quoting the bytes read last
    const std::string latin1 = utf8(error_of("{\"cluster\": {\"ip\": \"caf\xE9\"}}"));
    CHECK_THAT(latin1, Catch::StartsWith("nlb.json: line 1, column "));
    CHECK(latin1.find('?') != std::string::npos);
    // a long value cut where a two-byte character starts, not inside it
    const std::string cut =
        utf8(error_of(R"({"cluster": ")" + std::string(35, 'a') + "\xC3\xA9\xC3\xA9\xC3\xA9\"}"));
    CHECK(cut == "cluster: expected an object, got a string \"" + std::string(35, 'a') + "...");
}

TEST_CASE("valid_utf8 keeps well-formed sequences and replaces the rest byte by byte") {
    CHECK(valid_utf8("plain") == "plain");
    CHECK(valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
          "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    CHECK(valid_utf8("caf\xE9") == "caf?");          // Latin-1
    CHECK(valid_utf8("\xC0\x80") == "??");           // overlong NUL
    CHECK(valid_utf8("\xED\xA0\x80") == "???");      // a surrogate
    CHECK(valid_utf8("\xF4\x90\x80\x80") == "????"); // past U+10FFFF
    CHECK(valid_utf8("ab\xE2\x82") == "ab??");       // cut short at the end
    CHECK(valid_utf8("\x80x") == "?x");              // a lone continuation byte
}

TEST_CASE("document shape: top level, required sections, unknown and duplicate keys") {
    check_all({
        {"[]", "top level: expected an object, got an array []"},
        {"{}", "cluster: required key missing"},
        {R"({"cluster": {"ip": "10.0.0.1"}})", "host: required key missing"},
        {with("", "", R"(, "bogus": 1)"), "bogus: unknown key"},
        {with("", R"({"priority": 1, "dedicated_ip": "10.0.0.11", "bogus": 1})"),
         "host.bogus: unknown key"},
        {with(R"({"ip": "10.0.0.1", "heartbeat": 100})"), "cluster.heartbeat: unknown key"},
        {rules(R"([{"port": 80}])"), "port_rules[0].port: unknown key"},
        {with("", "", R"(, "metrics": {"port": 1})"), "metrics.port: unknown key"},
        {with("[]"), "cluster: expected an object, got an array []"},
        {with(R"({"ip": "10.0.0.1", "ip": "10.0.0.2"})"), "cluster.ip: duplicate key"},
        {rules(R"([{"mode": "single"}, {"ports": [1, 2], "ports": [3, 4]}])"),
         "port_rules[1].ports: duplicate key"},
        {R"({"cluster": {"ip": "10.0.0.1"}, "cluster": {}})", "cluster: duplicate key"},
    });
}

TEST_CASE("a VIP no client can reach is refused by name") {
    // The kernel refuses the IPv6 ones on an interface: found only at the switch of a staged
    // reload or push, after the dataplane's tables took the list, they left the VIPs behind
    // them off the interface on every host.
    check_all({
        {with(R"({"ip": "10.0.0.1", "vips": ["ff02::1", "10.0.0.2"]})"),
         "cluster.vips[0]: ff02::1 is a multicast address, not one clients can reach"},
        {with(R"({"ip": "10.0.0.1", "vips": ["10.0.0.2", "::"]})"),
         "cluster.vips[1]: :: is the unspecified address, not one clients can reach"},
        {with(R"({"ip": "10.0.0.1", "vips": ["::ffff:10.0.0.2"]})"),
         "cluster.vips[0]: ::ffff:10.0.0.2 is an IPv4-mapped address (the IPv4 address itself "
         "is the VIP), not one clients can reach"},
        {with(R"({"ip": "10.0.0.1", "vips": ["::1"]})"),
         "cluster.vips[0]: ::1 is the loopback address, not one clients can reach"},
        {with(R"({"ip": "10.0.0.1", "vips": ["239.1.2.3"]})"),
         "cluster.vips[0]: 239.1.2.3 is a multicast address, not one clients can reach"},
        {with(R"({"ip": "10.0.0.1", "vips": ["127.0.0.2"]})"),
         "cluster.vips[0]: 127.0.0.2 is a loopback address, not one clients can reach"},
        {with(R"({"ip": "10.0.0.1", "vips": ["255.255.255.255"]})"),
         "cluster.vips[0]: 255.255.255.255 is the broadcast address, not one clients can reach"},
        {with(R"({"ip": "0.0.0.0"})"),
         "cluster.ip: 0.0.0.0 is an unspecified (0.0.0.0/8) address, not one clients can reach"},
        {with(R"({"ip": "224.0.0.1"})"),
         "cluster.ip: 224.0.0.1 is a multicast address, not one clients can reach"},
    });
    // The ordinary ones still pass.
    CHECK(error_of(with(R"({"ip": "10.0.0.1", "vips": ["2001:db8::1", "fe80::5", "1.2.3.4"]})")) ==
          "(no error)");
}

TEST_CASE("cluster section") {
    check_all({
        {with(R"({"vips": []})"), "cluster.ip: required key missing"},
        {with(R"({"ip": 1})"), "cluster.ip: expected a string, got an integer"},
        {with(R"({"ip": "300.0.0.1"})"), "cluster.ip: \"300.0.0.1\" is not an IPv4 address"},
        {with(R"({"ip": "2001:db8::1"})"), "cluster.ip: \"2001:db8::1\" is not an IPv4 address"},
        {with(R"({"ip": "10.0.0.1", "vips": "10.0.0.2"})"),
         "cluster.vips: expected an array, got a string"},
        {with(R"({"ip": "10.0.0.1", "vips": ["10.0.0.2", "x"]})"),
         "cluster.vips[1]: \"x\" is not an IPv4 or IPv6 address"},
        {with(R"({"ip": "10.0.0.1", "vips": ["10.0.0.1"]})"),
         "cluster.vips[0]: 10.0.0.1 is the cluster IP, a VIP already"},
        {with(R"({"ip": "10.0.0.1", "vips": ["2001:db8::1", "2001:DB8::1"]})"),
         "cluster.vips[1]: 2001:db8::1 listed twice"},
        {with(R"({"ip": "10.0.0.1", "mode": "broadcast"})"),
         "cluster.mode: \"broadcast\" is not unicast, multicast or igmp"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_ms": 50})"),
         "cluster.heartbeat_ms: 50 below the minimum 100"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_ms": 10001})"),
         "cluster.heartbeat_ms: 10001 above the maximum 10000"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_ms": 1000.5})"),
         "cluster.heartbeat_ms: expected an integer, got a number with a fraction"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_ms": "1000"})"),
         "cluster.heartbeat_ms: expected an integer, got a string"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_ms": true})"),
         "cluster.heartbeat_ms: expected an integer, got a boolean"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_ms": 18446744073709551615})"),
         "cluster.heartbeat_ms: 18446744073709551615 above the maximum 10000"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_ms": -1})"),
         "cluster.heartbeat_ms: -1 below the minimum 100"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_tolerance": 1})"),
         "cluster.heartbeat_tolerance: 1 below the minimum 2"},
        {with(R"({"ip": "10.0.0.1", "heartbeat_tolerance": 101})"),
         "cluster.heartbeat_tolerance: 101 above the maximum 100"},
        {with(R"({"ip": "10.0.0.1", "cleanup_delay_s": 86401})"),
         "cluster.cleanup_delay_s: 86401 above the maximum 86400"},
        {with(R"({"ip": "10.0.0.1", "cleanup_delay_s": -5})"),
         "cluster.cleanup_delay_s: -5 below the minimum 0"},
        {with(R"({"ip": "10.0.0.1", "remote_control": "yes"})"),
         "cluster.remote_control: expected true or false, got a string"},
        {with(R"({"ip": "10.0.0.1", "key_file": ""})"),
         "cluster.key_file: empty path (leave the key out for an unauthenticated cluster)"},
        {with(R"({"ip": "10.0.0.1", "key_file": null})"),
         "cluster.key_file: expected a string, got null"},
        {with(R"({"ip": "10.0.0.1", "rotation_key_file": "/etc/nlb/old.key"})"),
         "cluster.rotation_key_file: needs cluster.key_file (the key it is accepted beside)"},
        {with(R"({"ip": "10.0.0.1", "key_file": "/k", "rotation_key_file": ""})"),
         "cluster.rotation_key_file: empty path (leave the key out when no key is being "
         "rotated)"},
        {with(R"({"ip": "10.0.0.1", "key_file": "/k", "rotation_key_file": 5})"),
         "cluster.rotation_key_file: expected a string, got an integer"},
        {with(R"({"ip": "10.0.0.1", "key_file": "/k", "rotation_key_file": "/k"})"),
         "cluster.rotation_key_file: \"/k\" is cluster.key_file already (name the other key of "
         "the rotation)"},
        {with(R"({"ip": "10.0.0.1", "hash_seed": 0})"), "cluster.hash_seed: 0 below the minimum 1"},
        {with(R"({"ip": "10.0.0.1", "hash_seed": 4294967296})"),
         "cluster.hash_seed: 4294967296 above the maximum 4294967295"},
        {with(R"({"ip": "10.0.0.1", "hash_seed": "0x6e6c6231"})"),
         "cluster.hash_seed: expected an integer, got a string"},
        {with(R"({"ip": "10.0.0.1", "vlan": 4095})"), "cluster.vlan: 4095 above the maximum 4094"},
        {with(R"({"ip": "10.0.0.1", "vlan": -1})"), "cluster.vlan: -1 below the minimum 0"},
        {with(R"({"ip": "10.0.0.1", "vlan": "100"})"),
         "cluster.vlan: expected an integer, got a string"},
        {with(R"({"ip": "10.0.0.1", "remote_control": true})"),
         "cluster.remote_control: true needs cluster.key_file (remote control is authenticated "
         "with the cluster key)"},
        {with(R"({"ip": "10.0.0.1", "igmp_querier": 1})"),
         "cluster.igmp_querier: expected true or false, got an integer"},
        {with(R"({"ip": "10.0.0.1", "igmp_querier": true})"),
         "cluster.igmp_querier: true needs cluster.mode igmp, this cluster is unicast"},
        {with(R"({"ip": "10.0.0.1", "mode": "multicast", "igmp_querier": true})"),
         "cluster.igmp_querier: true needs cluster.mode igmp, this cluster is multicast"},
        {with(R"({"ip": "10.0.0.1", "mode": "igmp", "igmp_query_interval_s": 60})"),
         "cluster.igmp_query_interval_s: only with cluster.igmp_querier true"},
        {with(R"({"ip": "10.0.0.1", "mode": "igmp", "igmp_querier": false,
                  "igmp_query_interval_s": 60})"),
         "cluster.igmp_query_interval_s: only with cluster.igmp_querier true"},
        {with(R"({"ip": "10.0.0.1", "mode": "igmp", "igmp_querier": true,
                  "igmp_query_interval_s": 0})"),
         "cluster.igmp_query_interval_s: 0 below the minimum 1"},
        {with(R"({"ip": "10.0.0.1", "mode": "igmp", "igmp_querier": true,
                  "igmp_query_interval_s": 3601})"),
         "cluster.igmp_query_interval_s: 3601 above the maximum 3600"},
        {with(R"({"ip": "10.0.0.1", "mode": "igmp", "igmp_querier": true})",
              R"({"priority": 1, "dedicated_ip": "2001:db8::11"})"),
         "cluster.igmp_querier: true needs an IPv4 host.dedicated_ip (the queries' source), "
         "2001:db8::11 is IPv6"},
    });
}

TEST_CASE("cluster.peers") {
    check_all({
        {with(R"({"ip": "10.0.0.1", "peers": "10.0.0.12"})"),
         "cluster.peers: expected an array, got a string"},
        {with(R"({"ip": "10.0.0.1", "peers": ["10.0.0.12", "host-3"]})"),
         "cluster.peers[1]: \"host-3\" is not an IPv4 or IPv6 address"},
        {with(R"({"ip": "10.0.0.1", "peers": ["10.0.0.12", "10.0.0.012"]})"),
         "cluster.peers[1]: \"10.0.0.012\" is not an IPv4 or IPv6 address"},
        {with(R"({"ip": "10.0.0.1", "peers": ["10.0.0.12", "10.0.0.13", "10.0.0.12"]})"),
         "cluster.peers[2]: 10.0.0.12 listed twice"},
        {with(R"({"ip": "10.0.0.1", "peers": ["10.0.0.12", "2001:db8::12"]})"),
         "cluster.peers[1]: 2001:db8::12 is IPv6 and host.dedicated_ip 10.0.0.11 is not (the "
         "second path runs between dedicated IPs of one family)"},
        {with(R"({"ip": "10.0.0.1", "vips": ["10.0.0.2"], "peers": ["10.0.0.12", "10.0.0.2"]})"),
         "cluster.peers[1]: 10.0.0.2 is a VIP; list the hosts' dedicated IPs"},
        {with(R"({"ip": "10.0.0.1", "peers": ["10.0.0.1"]})"),
         "cluster.peers[0]: 10.0.0.1 is a VIP; list the hosts' dedicated IPs"},
    });
    std::string peers;
    for (int i = 0; i <= NLB_MAX_HOSTS; ++i)
        peers += (i ? ", " : "") + ("\"10.0.2." + std::to_string(i + 1) + "\"");
    CHECK(error_of(with(R"({"ip": "10.0.0.1", "peers": [)" + peers + "]}")) ==
          "cluster.peers: 65 addresses, at most 64 (one per host)");
    // Its own address in the list is fine: one list serves every host.
    CHECK(error_of(with(R"({"ip": "10.0.0.1", "peers": ["10.0.0.11", "10.0.0.12"]})")) ==
          "(no error)");
}

TEST_CASE("too many VIPs") {
    std::string vips;
    for (int i = 0; i < NLB_MAX_VIPS; ++i)
        vips += (i ? ", " : "") + ("\"10.0.1." + std::to_string(i + 1) + "\"");
    CHECK(error_of(with(R"({"ip": "10.0.0.1", "vips": [)" + vips + "]}")) ==
          "cluster.vips: 32 VIPs, at most 31 besides the cluster IP");
}

TEST_CASE("host section") {
    check_all({
        {with("", R"({"dedicated_ip": "10.0.0.11"})"), "host.priority: required key missing"},
        {with("", R"({"priority": 1})"), "host.dedicated_ip: required key missing"},
        {with("", R"({"priority": 0, "dedicated_ip": "10.0.0.11"})"),
         "host.priority: 0 below the minimum 1"},
        {with("", R"({"priority": 65, "dedicated_ip": "10.0.0.11"})"),
         "host.priority: 65 above the maximum 64"},
        {with("", R"({"priority": 1, "dedicated_ip": "10.0.0"})"),
         "host.dedicated_ip: \"10.0.0\" is not an IPv4 or IPv6 address"},
        {with("", R"({"priority": 1, "dedicated_ip": "10.0.0.1"})"),
         "host.dedicated_ip: 10.0.0.1 is a VIP; the dedicated IP is the host's own address"},
        {with("", R"({"priority": 1, "dedicated_ip": "2001:db8::1"})"),
         "host.dedicated_ip: 2001:db8::1 is a VIP; the dedicated IP is the host's own address"},
        {with("", R"({"priority": 1, "dedicated_ip": "10.0.0.11", "initial_state": "running"})"),
         "host.initial_state: \"running\" is not started, stopped or suspended"},
        {with("", R"({"priority": 1, "dedicated_ip": "10.0.0.11", "interface": "eth0:1"})"),
         "host.interface: \"eth0:1\" is not an interface name"},
        {with("", R"({"priority": 1, "dedicated_ip": "10.0.0.11", "interface": 0})"),
         "host.interface: expected a string, got an integer"},
        {with("", R"({"priority": 1, "dedicated_ip": "10.0.0.11", "vlan_interface": "vl100"})"),
         "host.vlan_interface: only with cluster.vlan (an untagged cluster meets the stack on "
         "host.interface)"},
        {with(R"({"ip": "10.0.0.1", "vlan": 100})",
              R"({"priority": 1, "dedicated_ip": "10.0.0.11", "interface": "eth0",
                  "vlan_interface": "eth0"})"),
         "host.vlan_interface: \"eth0\" is host.interface (the trunk the dataplane sits on)"},
        {with(R"({"ip": "10.0.0.1", "vlan": 100})",
              R"({"priority": 1, "dedicated_ip": "10.0.0.11", "vlan_interface": "a/b"})"),
         "host.vlan_interface: \"a/b\" is not an interface name"},
    });
}

TEST_CASE("port rules: values") {
    check_all({
        {rules(R"({"vip": "all"})"), "port_rules: expected an array, got an object"},
        {rules(R"([80])"), "port_rules[0]: expected an object, got an integer 80"},
        {rules(R"([{"vip": "10.0.0.9"}])"),
         "port_rules[0].vip: 10.0.0.9 is neither the cluster IP nor in cluster.vips"},
        {rules(R"([{"vip": "any"}])"), "port_rules[0].vip: \"any\" is not an IPv4 or IPv6 address"},
        {rules(R"([{"ports": 80}])"), "port_rules[0].ports: expected an array, got an integer"},
        {rules(R"([{"ports": [80]}])"),
         "port_rules[0].ports: expected [first, last], got 1 elements"},
        {rules(R"([{}, {"ports": [90, 80]}])"),
         "port_rules[1].ports: first port 90 above last port 80"},
        {rules(R"([{"ports": [0, 65536]}])"),
         "port_rules[0].ports[1]: 65536 above the maximum 65535"},
        {rules(R"([{"ports": ["80", 81]}])"),
         "port_rules[0].ports[0]: expected an integer, got a string"},
        {rules(R"([{"protocol": "icmp"}])"),
         "port_rules[0].protocol: \"icmp\" is not tcp, udp or both"},
        {rules(R"([{"mode": "multi"}])"),
         "port_rules[0].mode: \"multi\" is not multiple, single or disabled"},
        {rules(R"([{"affinity": "class-c"}])"),
         "port_rules[0].affinity: \"class-c\" is not none, single or network"},
        {rules(R"([{"load_weight": 101}])"),
         "port_rules[0].load_weight: 101 above the maximum 100"},
        {rules(R"([{"load_weight": -1}])"), "port_rules[0].load_weight: -1 below the minimum 0"},
        {rules(R"([{"load_weight": "half"}])"),
         "port_rules[0].load_weight: \"half\" is neither 0..100 nor \"equal\""},
        {rules(R"([{"mode": "single", "handling_priority": 0}])"),
         "port_rules[0].handling_priority: 0 below the minimum 1"},
        {rules(R"([{"mode": "single", "handling_priority": 65}])"),
         "port_rules[0].handling_priority: 65 above the maximum 64"},
    });
}

TEST_CASE("port rules: parameters of another mode") {
    check_all({
        {rules(R"([{"mode": "single", "load_weight": 50}])"),
         "port_rules[0].load_weight: only for mode multiple, this rule is single"},
        {rules(R"([{"mode": "disabled", "load_weight": "equal"}])"),
         "port_rules[0].load_weight: only for mode multiple, this rule is disabled"},
        {rules(R"([{"mode": "single", "affinity": "none"}])"),
         "port_rules[0].affinity: only for mode multiple, this rule is single"},
        {rules(R"([{"handling_priority": 2}])"),
         "port_rules[0].handling_priority: only for mode single, this rule is multiple"},
        {rules(R"([{"mode": "disabled", "enabled": true}])"),
         "port_rules[0].enabled: a rule of mode disabled is off on every host"},
        {rules(R"([{"enabled": "no"}])"), "port_rules[0].enabled: expected true or false, got a string"},
        {rules(R"([{"mode": "disabled", "handling_priority": 2}])"),
         "port_rules[0].handling_priority: only for mode single, this rule is disabled"},
    });
}

TEST_CASE("port rules: overlaps") {
    check_all({
        {rules(R"([{}, {"ports": [80, 80]}])"),
         "port_rules[1]: overlaps port_rules[0] (vip all, ports 0-65535, both)"},
        {rules(
             R"([{"ports": [80, 90], "protocol": "tcp"}, {"ports": [90, 100], "protocol": "both"}])"),
         "port_rules[1]: overlaps port_rules[0] (vip all, ports 80-90, tcp)"},
        {rules(R"([{"vip": "10.0.0.2", "ports": [80, 90], "protocol": "udp"},
                   {"vip": "10.0.0.1", "ports": [80, 90]},
                   {"vip": "10.0.0.2", "ports": [85, 85], "protocol": "udp"}])"),
         "port_rules[2]: overlaps port_rules[0] (vip 10.0.0.2, ports 80-90, udp)"},
        {rules(R"([{"vip": "2001:db8::1"}, {"vip": "2001:DB8::0:1", "ports": [1, 1]}])"),
         "port_rules[1]: overlaps port_rules[0] (vip 2001:db8::1, ports 0-65535, both)"},
    });
    // Same ports, different protocols or different VIPs: no overlap.
    CHECK(error_of(rules(R"([{"ports": [80, 90], "protocol": "tcp"},
                             {"ports": [80, 90], "protocol": "udp"},
                             {"vip": "10.0.0.2", "ports": [80, 90]},
                             {"vip": "10.0.0.1", "ports": [80, 90]}])")) == "(no error)");
}

TEST_CASE("too many rules") {
    std::string list;
    for (int i = 0; i <= NLB_MAX_RULES; ++i)
        list += (i ? ", " : "") +
                ("{\"ports\": [" + std::to_string(i) + ", " + std::to_string(i) + "]}");
    CHECK(error_of(rules("[" + list + "]")) == "port_rules: 33 rules, at most 32");
}

TEST_CASE("metrics") {
    check_all({
        {with("", "", R"(, "metrics": true)"), "metrics: expected an object, got a boolean true"},
        {with("", "", R"(, "metrics": {"listen": "127.0.0.1"})"),
         "metrics.listen: \"127.0.0.1\" is not ADDRESS:PORT (\"127.0.0.1:9650\", \"[::1]:9650\")"},
        {with("", "", R"(, "metrics": {"listen": "127.0.0.1:0"})"),
         "metrics.listen: \"127.0.0.1:0\" is not ADDRESS:PORT (\"127.0.0.1:9650\", "
         "\"[::1]:9650\")"},
        {with("", "", R"(, "metrics": {"listen": "::1:9650"})"),
         "metrics.listen: \"::1:9650\" is not ADDRESS:PORT (\"127.0.0.1:9650\", \"[::1]:9650\")"},
        {with("", "", R"(, "metrics": {"listen": "localhost:9650"})"),
         "metrics.listen: \"localhost:9650\" is not ADDRESS:PORT (\"127.0.0.1:9650\", "
         "\"[::1]:9650\")"},
        {with("", "", R"(, "metrics": {"listen": "1.2.3.4:99999"})"),
         "metrics.listen: \"1.2.3.4:99999\" is not ADDRESS:PORT (\"127.0.0.1:9650\", "
         "\"[::1]:9650\")"},
    });
}

TEST_CASE("a key or value with a line break still gives one line") {
    // JSON escapes put line breaks and other control characters into keys and strings; the
    // message quotes them, and must stay one line (the agent prints it as one at start).
    const std::vector<std::string> texts = {
        with(R"({"ip": "10.0.0.1", "a\nb": 1})"),
        with(R"({"ip": "10.0.0.1", "mode": "uni\ncast"})"),
        with("", R"({"priority": 1, "dedicated_ip": "10.0.0.11", "interface": "eth\n0"})"),
        with(R"({"ip": "10.0.0.1\r\nx"})"),
        with(R"({"ip": "10.0.0.1", "ip\u001b": 1})"),
    };
    for (const auto& text : texts) {
        INFO(text);
        const std::string message = error_of(text);
        CHECK(message != "(no error)");
        CHECK(std::none_of(message.begin(), message.end(), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        }));
    }
    CHECK(error_of(with(R"({"ip": "10.0.0.1", "mode": "uni\ncast"})")) ==
          "cluster.mode: \"uni\\ncast\" is not unicast, multicast or igmp");
}
