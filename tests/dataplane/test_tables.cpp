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

TEST_CASE("tables built to replace others keep every kept VIP's index and, if they can, its slot") {
    const DataplaneTables before({addr("10.0.0.1"), addr("10.0.0.2"), addr("10.0.0.3")},
                                 {rule(1, 80, 80), rule(2, 53, 53, Protocol::udp)});
    // 10.0.0.2 goes, 2001:db8::7 comes, and the list is reordered.
    const VipLayout running = before.layout();
    const DataplaneTables after({addr("10.0.0.1"), addr("10.0.0.3"), addr("2001:db8::7")},
                                {rule(1, 53, 53, Protocol::udp), rule(2, 443, 443)}, NLB_FLOW_SEED,
                                &running);
    CHECK(after.dataplane_index(0) == 0);
    CHECK(after.dataplane_index(1) == 2); // 10.0.0.3 keeps its port table
    CHECK(after.dataplane_index(2) == 3); // the new VIP takes a table nobody had
    CHECK(after.vip_seed() == before.vip_seed());
    CHECK(after.slot_of(1) == before.slot_of(2));
    // Rules and placement follow the configuration's numbering, whatever the index.
    CHECK(after.rule_of(1, NLB_PROTO_UDP, 53) == 0);
    CHECK(after.rule_of(2, NLB_PROTO_TCP, 443) == 1);
    Tuple t;
    t.daddr = addr("2001:db8::7").words;
    t.family = NLB_FAMILY_V6;
    t.dport = htons(443);
    REQUIRE(after.place(t));
    CHECK(after.place(t)->rule == 1);
    const auto& slot = after.vip_slots()[after.slot_of(2)];
    CHECK(slot.index == 3);
    const std::uint32_t key = nlb_port_chunk_key(3, NLB_PROTO_TCP, 443);
    CHECK(after.port_chunks()[key].rule[443 & (NLB_PORT_CHUNK - 1)] == 1);
    // What the port table of the VIP that went holds is no VIP's any more.
    CHECK(after.port_chunks()[nlb_port_chunk_key(1, NLB_PROTO_TCP, 80)]
              .rule[80 & (NLB_PORT_CHUNK - 1)] == NLB_RULE_DEFAULT);
}

// A restart that changed cluster.ip and adopted the pinned dataplane: the dataplane passes
// remote control (UDP 2504) to VIP index 0 only, so the new cluster IP must hold it, and the
// old one, kept as a VIP, must not (its port 2504 would reach every host's stack).
TEST_CASE("the cluster IP (the first VIP) takes index 0 whatever held it before") {
    const DataplaneTables before({addr("10.0.0.1"), addr("10.0.0.2")}, {});
    const VipLayout read = VipLayout::of_slots(before.vip_slots(), before.vip_seed());
    const DataplaneTables after({addr("10.0.0.9"), addr("10.0.0.2"), addr("10.0.0.1")}, {},
                                NLB_FLOW_SEED, &read);
    CHECK(after.dataplane_index(0) == 0);
    CHECK(after.dataplane_index(1) == 1); // kept
    CHECK(after.dataplane_index(2) == 2); // the old cluster IP: an index nobody had
    CHECK(after.vip_slots()[after.slot_of(0)].index == 0);
    CHECK(after.vip_slots()[after.slot_of(2)].index == 2);
    // and the next change, built on that layout, keeps it so
    const VipLayout running = after.layout();
    const DataplaneTables next({addr("10.0.0.9"), addr("10.0.0.2"), addr("10.0.0.5")}, {},
                               NLB_FLOW_SEED, &running);
    CHECK(next.dataplane_index(0) == 0);
    CHECK(next.dataplane_index(2) != 0);
}

TEST_CASE("a VIP that clashes under the running seed moves every VIP to slots none had") {
    const std::vector<IpAddress> vips{addr("10.0.0.1"), addr("10.0.0.2")};
    const DataplaneTables before(vips, {});
    // An address whose slot under the running seed is 10.0.0.2's.
    IpAddress clash{};
    for (std::uint32_t i = 1; i < 100000; ++i) {
        IpAddress a{};
        a.family = NLB_FAMILY_V4;
        a.words[0] = htonl(0x0a640000 + i);
        if (nlb_vip_slot(a.family, a.words.data(), before.vip_seed()) == before.slot_of(1)) {
            clash = a;
            break;
        }
    }
    REQUIRE(clash.family == NLB_FAMILY_V4);
    const VipLayout running = before.layout();
    const DataplaneTables after({addr("10.0.0.1"), addr("10.0.0.2"), clash}, {}, NLB_FLOW_SEED,
                                &running);
    CHECK(after.vip_seed() != before.vip_seed());
    std::set<std::uint32_t> old_slots{before.slot_of(0), before.slot_of(1)};
    for (std::size_t i = 0; i < 3; ++i)
        CHECK(old_slots.count(after.slot_of(i)) == 0);
    CHECK(after.dataplane_index(2) == 2);
    // The slot the program finds under each seed names the VIP's table in both layouts.
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(before.vip_slots()[before.slot_of(i)].index == after.dataplane_index(i));
        CHECK(after.vip_slots()[after.slot_of(i)].index == after.dataplane_index(i));
    }
}

TEST_CASE("with every index in use, a new VIP takes the table of one that goes") {
    std::vector<IpAddress> vips;
    for (std::uint32_t i = 0; i < NLB_MAX_VIPS; ++i) {
        IpAddress a{};
        a.family = NLB_FAMILY_V4;
        a.words[0] = htonl(0x0a000001 + i);
        vips.push_back(a);
    }
    const DataplaneTables before(vips, {});
    std::vector<IpAddress> next = vips;
    next.erase(next.begin() + 5);
    next.push_back(addr("10.9.9.9"));
    const VipLayout running = before.layout();
    const DataplaneTables after(next, {}, NLB_FLOW_SEED, &running);
    CHECK(after.dataplane_index(NLB_MAX_VIPS - 1) == 5);
    CHECK(after.dataplane_index(5) == 6);
}

TEST_CASE("the layout an adopted dataplane holds is read back from its slots, and kept") {
    const DataplaneTables before({addr("10.0.0.1"), addr("10.0.0.2"), addr("2001:db8::3")}, {});
    const VipLayout read = VipLayout::of_slots(before.vip_slots(), before.vip_seed());
    REQUIRE(read.vips.size() == 3);
    CHECK(read.seed == before.vip_seed());
    const DataplaneTables after({addr("10.0.0.1"), addr("2001:db8::3")}, {}, NLB_FLOW_SEED, &read);
    CHECK(after.vip_seed() == before.vip_seed());
    CHECK(after.dataplane_index(0) == 0);
    CHECK(after.dataplane_index(1) == 2);
    // Slots an earlier agent wrote with an index twice are no layout to keep.
    auto slots = before.vip_slots();
    slots[before.slot_of(1)].index = 0;
    CHECK(VipLayout::of_slots(slots, before.vip_seed()).vips.empty());
    const VipLayout none = VipLayout::of_slots(slots, before.vip_seed());
    const DataplaneTables fresh({addr("10.0.0.1"), addr("10.0.0.2")}, {}, NLB_FLOW_SEED, &none);
    CHECK(fresh.dataplane_index(1) == 1);
}
