// The dataplane's tables as the agent computes them: VIP slots, port rules.
#include <arpa/inet.h>

#include <random>
#include <set>
#include <stdexcept>

#include <catch2/catch.hpp>

#include <nlb/flow.h>

#include "dataplane_tables.hpp"

using namespace nlb;

namespace {

IpAddress addr(const char* text) {
    auto a = IpAddress::parse(text);
    REQUIRE(a);
    return *a;
}

RuleMatch rule(std::optional<std::size_t> vip, std::uint16_t first, std::uint16_t last,
               Protocol proto = Protocol::both) {
    RuleMatch r;
    r.vip = vip;
    r.first_port = first;
    r.last_port = last;
    r.protocol = proto;
    return r;
}

} // namespace

TEST_CASE("addresses parse and print in both families") {
    CHECK(addr("192.0.2.100").family == NLB_FAMILY_V4);
    CHECK(addr("192.0.2.100").to_string() == "192.0.2.100");
    CHECK(addr("2001:db8::1").family == NLB_FAMILY_V6);
    CHECK(addr("2001:db8::1").to_string() == "2001:db8::1");
    CHECK_FALSE(IpAddress::parse("192.0.2.300"));
    CHECK_FALSE(IpAddress::parse("all"));
}

TEST_CASE("a VIP-specific rule beats an all rule on its ports only") {
    DataplaneTables t({addr("10.0.0.100"), addr("10.0.0.101")},
                      {rule(std::nullopt, 0, 65535), rule(1, 80, 80, Protocol::tcp)});
    CHECK(t.rule_of(0, NLB_PROTO_TCP, 80) == 0);
    CHECK(t.rule_of(1, NLB_PROTO_TCP, 80) == 1);
    CHECK(t.rule_of(1, NLB_PROTO_UDP, 80) == 0);
    CHECK(t.rule_of(1, NLB_PROTO_TCP, 81) == 0);
    // VIP 0 is covered by one rule everywhere: the dataplane skips the port table for it.
    const nlb_vip& v0 =
        t.vip_slots()[nlb_vip_slot(NLB_FAMILY_V4, addr("10.0.0.100").words.data(), t.vip_seed())];
    CHECK(v0.port_rule[NLB_PROTO_TCP] == 0);
    const nlb_vip& v1 =
        t.vip_slots()[nlb_vip_slot(NLB_FAMILY_V4, addr("10.0.0.101").words.data(), t.vip_seed())];
    CHECK(v1.port_rule[NLB_PROTO_TCP] == NLB_PORT_RULE_VARIES);
    CHECK(v1.port_rule[NLB_PROTO_UDP] == 0);
}

TEST_CASE("uncovered ports go to the default-host slot") {
    DataplaneTables t({addr("10.0.0.100")}, {rule(0, 1000, 2000, Protocol::udp)});
    CHECK(t.rule_of(0, NLB_PROTO_UDP, 1500) == 0);
    CHECK(t.rule_of(0, NLB_PROTO_UDP, 999) == NLB_RULE_DEFAULT);
    CHECK(t.rule_of(0, NLB_PROTO_TCP, 1500) == NLB_RULE_DEFAULT);
}

TEST_CASE("overlapping rules and bad VIP lists are refused with the offending entry named") {
    auto message = [](auto&& make) {
        try {
            make();
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(message([] {
              DataplaneTables({addr("10.0.0.100")}, {rule(0, 1, 100), rule(0, 100, 200)});
          }) == "port_rules[1]: overlaps port_rules[0]");
    CHECK(message([] {
              DataplaneTables({addr("10.0.0.100")},
                              {rule(0, 1, 100, Protocol::tcp), rule(0, 1, 100, Protocol::udp)});
          }) == "no error");
    CHECK(message([] { DataplaneTables({addr("10.0.0.100")}, {rule(3, 1, 100)}); }) ==
          "port_rules[0].vip: unknown VIP");
    CHECK(message([] { DataplaneTables({addr("10.0.0.100")}, {rule(0, 200, 100)}); }) ==
          "port_rules[0].ports: first port above last port");
    CHECK(message([] {
              DataplaneTables({addr("10.0.0.1"), addr("10.0.0.1")}, {});
          }) == "vips[1]: duplicate of 10.0.0.1");
    CHECK(message([] { DataplaneTables({}, {}); }) == "vips: at least the cluster IP is needed");
}

TEST_CASE("any set of up to NLB_MAX_VIPS VIPs gets a collision-free slot each") {
    std::mt19937 rng(7);
    for (int round = 0; round < 50; ++round) {
        std::vector<IpAddress> vips;
        std::set<std::array<std::uint32_t, 4>> seen;
        while (vips.size() < NLB_MAX_VIPS) {
            IpAddress a;
            a.family = rng() % 3 ? NLB_FAMILY_V4 : NLB_FAMILY_V6;
            a.words[0] = static_cast<std::uint32_t>(rng());
            if (a.family == NLB_FAMILY_V6)
                for (int w = 1; w < 4; ++w)
                    a.words[static_cast<std::size_t>(w)] = static_cast<std::uint32_t>(rng());
            if (seen.insert(a.words).second)
                vips.push_back(a);
        }
        DataplaneTables t(vips, {});
        std::set<std::uint32_t> slots;
        for (const auto& v : vips)
            slots.insert(nlb_vip_slot(v.family, v.words.data(), t.vip_seed()));
        CHECK(slots.size() == vips.size());
    }
}

TEST_CASE("the bucket hash spreads clients evenly") {
    // 40,000 clients over 4096 buckets grouped as 4 hosts of 1024: each within 3 %.
    std::array<int, 4> per_host{};
    for (std::uint32_t i = 0; i < 40000; ++i) {
        std::uint32_t saddr = htonl(0x0a000000u + i);
        std::uint16_t b =
            nlb_flow_bucket(NLB_FAMILY_V4, &saddr, 0, NLB_AFFINITY_SINGLE, NLB_FLOW_SEED);
        per_host[b % 4]++;
    }
    for (int n : per_host)
        CHECK(std::abs(n - 10000) < 300);
}

TEST_CASE("changed slots: where a packet lands elsewhere, or is hashed or owned otherwise") {
    const std::vector<IpAddress> vips{addr("10.0.0.1"), addr("10.0.0.2")};
    const DataplaneTables before(vips, {rule(std::nullopt, 80, 80), rule(std::nullopt, 443, 443)});
    constexpr std::uint64_t kDefault = std::uint64_t{1} << NLB_RULE_DEFAULT;
    CHECK(changed_slots(before, before) == 0);
    // Port 81 moves from the default slot into rule 0: both change, rule 1 does not.
    CHECK(changed_slots(before, DataplaneTables(vips, {rule(std::nullopt, 80, 81),
                                                       rule(std::nullopt, 443, 443)})) ==
          (0b1 | kDefault));
    // Rule 1's affinity: only its slot.
    auto none = rule(std::nullopt, 443, 443);
    none.affinity = NLB_AFFINITY_NONE;
    CHECK(changed_slots(before, DataplaneTables(vips, {rule(std::nullopt, 80, 80), none})) == 0b10);
    auto single = rule(std::nullopt, 443, 443);
    single.mode = NLB_MODE_SINGLE;
    CHECK(changed_slots(before, DataplaneTables(vips, {rule(std::nullopt, 80, 80), single})) ==
          0b10);
    // A rule appended for ports nobody covered takes them from the default slot.
    CHECK(changed_slots(before, DataplaneTables(
                                    vips, {rule(std::nullopt, 80, 80), rule(std::nullopt, 443, 443),
                                           rule(std::nullopt, 8080, 8080)})) == (0b100 | kDefault));
    // A rule removed in the middle: the next one takes its slot, its ports go to the default.
    CHECK(changed_slots(before, DataplaneTables(vips, {rule(std::nullopt, 443, 443)})) ==
          (0b11 | kDefault));
    // A rule for one VIP only: that VIP's port 80 stays, the other's goes to the default.
    CHECK(changed_slots(before,
                        DataplaneTables(vips, {rule(0, 80, 80), rule(std::nullopt, 443, 443)})) ==
          (0b1 | kDefault));
    // UDP of port 80 leaves rule 0.
    CHECK(changed_slots(before, DataplaneTables(vips, {rule(std::nullopt, 80, 80, Protocol::tcp),
                                                       rule(std::nullopt, 443, 443)})) ==
          (0b1 | kDefault));
}
