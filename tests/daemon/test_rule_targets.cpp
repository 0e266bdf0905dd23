// The rules an enable / disable / drain request names (docs/control.md).
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rule_targets.hpp"

using namespace nlb;
using json = nlohmann::json;

namespace {

IpAddress ip(const char* text) {
    return *IpAddress::parse(text);
}

RuleMatch rule(std::optional<std::size_t> vip, std::uint16_t first, std::uint16_t last,
               Protocol protocol = Protocol::both) {
    RuleMatch m;
    m.vip = vip;
    m.first_port = first;
    m.last_port = last;
    m.protocol = protocol;
    return m;
}

// Cluster IP 10.0.0.1 (VIP 0), 10.0.0.2 (VIP 1), 10.0.0.3 (VIP 2, no rule of its own).
// 0: 10.0.0.1 tcp 80; 1: 10.0.0.2 tcp 80; 2: 10.0.0.2 tcp 443; 3: all VIPs tcp 8080.
DataplaneTables tables() {
    return DataplaneTables({ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")},
                           {rule(0, 80, 80, Protocol::tcp), rule(1, 80, 80, Protocol::tcp),
                            rule(1, 443, 443, Protocol::tcp),
                            rule(std::nullopt, 8080, 8080, Protocol::tcp)});
}

std::string error_of(const json& request) {
    try {
        rule_targets(tables(), request, "disable");
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST_CASE("rule targets: a port names the rule covering it on the VIP or the cluster IP") {
    CHECK(rule_targets(tables(), {{"port", 80}}, "disable") == std::vector<int>{0});
    CHECK(rule_targets(tables(), {{"port", 80}, {"vip", "10.0.0.2"}}, "disable") ==
          std::vector<int>{1});
    CHECK(rule_targets(tables(), {{"port", 8080}, {"vip", "10.0.0.3"}}, "disable") ==
          std::vector<int>{3});
    CHECK(error_of({{"port", 81}}) == "disable: no port rule covers port 81");
    CHECK(error_of({{"port", 80}, {"vip", "10.9.9.9"}}) ==
          "disable: \"10.9.9.9\" is not a VIP of this cluster");
    CHECK(error_of({{"port", 70000}}) == "disable: bad port 70000 (0-65535 or all)");
    CHECK(error_of(json::object()) == "disable: port missing");
}

TEST_CASE("rule targets: all is every rule, or with a VIP every rule of that VIP") {
    CHECK(rule_targets(tables(), {{"port", "all"}}, "disable") == std::vector<int>{-1});
    // Not the cluster IP's rule 0, nor the rule for all VIPs: they serve other VIPs too.
    CHECK(rule_targets(tables(), {{"port", "all"}, {"vip", "10.0.0.2"}}, "disable") ==
          std::vector<int>{1, 2});
    CHECK(rule_targets(tables(), {{"port", "all"}, {"vip", "10.0.0.1"}}, "disable") ==
          std::vector<int>{0});
    CHECK(error_of({{"port", "all"}, {"vip", "10.9.9.9"}}) ==
          "disable: \"10.9.9.9\" is not a VIP of this cluster");
    CHECK(error_of({{"port", "all"}, {"vip", "10.0.0.3"}}) ==
          "disable: no port rule names VIP 10.0.0.3 (the rules for all VIPs cover it)");
}

TEST_CASE("rule targets: a port that a tcp and a udp rule cover names both") {
    // 53 as two rules, one per protocol: `disable 53` left the udp one served, and no request
    // could name it but `all`.
    const DataplaneTables t({ip("10.0.0.1")}, {rule(0, 53, 53, Protocol::tcp),
                                               rule(std::nullopt, 53, 53, Protocol::udp),
                                               rule(0, 80, 90, Protocol::both)});
    CHECK(rule_targets(t, {{"port", 53}}, "disable") == std::vector<int>{0, 1});
    // One rule for both protocols is named once.
    CHECK(rule_targets(t, {{"port", 85}}, "disable") == std::vector<int>{2});
}
