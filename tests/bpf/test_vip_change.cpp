// A live VIP change (docs/staged-config.md) as the program sees it: the agent's writer turns
// the running tables into tables built to replace them, in place, and afterwards every kept
// VIP is still found with its own rules, a new one is served and answered for, and one that
// went is nobody's (its packets and ARP requests pass to a stack that no longer has it).
#include <arpa/inet.h>

#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_vip_change {

namespace {

const IpAddress kA = ip("10.0.0.1");
const IpAddress kB = ip("10.0.0.2");
const IpAddress kC = ip("10.0.0.3");
const IpAddress kClient = ip("10.0.9.9");

Bytes to(const IpAddress& vip, std::uint8_t proto, std::uint16_t port) {
    PacketSpec s;
    s.src = kClient;
    s.dst = vip;
    s.dst_mac = DataplaneFixture::cluster_mac_of(kA); // every table here has kA first
    s.proto = proto;
    s.dport = port;
    s.payload = 8;
    return build(s);
}

Verdict arp_for(DataplaneFixture& dp, const IpAddress& vip) {
    return verdict(dp, build_arp_request({0x02, 0, 0, 0, 9, 9}, kClient, vip));
}

// Rule 0 for every VIP's port 80; the last rule disables UDP 53 of kC (a VIP-specific rule,
// whose VIP has another number in the new list).
std::vector<RuleMatch> rules_for(std::size_t c_index) {
    RuleMatch web = rule_ports(std::nullopt, 80, 80, Protocol::both);
    RuleMatch dns = rule_ports(c_index, 53, 53, Protocol::udp);
    dns.mode = NLB_MODE_DISABLED;
    return {web, dns};
}

// Every rule's buckets here, the default slot's elsewhere: a port the tables send to the
// wrong slot shows.
void own_rules(DataplaneFixture& dp) {
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
        dp.own_all(slot, slot == NLB_RULE_DEFAULT ? 2 : dp.priority());
}

// An IPv4 address whose slot under `seed` is `slot`.
IpAddress address_in_slot(std::uint32_t seed, std::uint32_t slot) {
    for (std::uint32_t i = 1; i < 1'000'000; ++i) {
        IpAddress a{};
        a.family = NLB_FAMILY_V4;
        a.words[0] = htonl(0x0a640000 + i);
        if (nlb_vip_slot(a.family, a.words.data(), seed) == slot)
            return a;
    }
    FAIL("no address in slot " << slot);
    return {};
}

} // namespace

TEST_CASE(
    "a live VIP change: kept VIPs keep their rules, a new one is served, a gone one is nobody's") {
    const DataplaneTables before({kA, kB, kC}, rules_for(2));
    DataplaneFixture dp;
    dp.configure(before, 1);
    own_rules(dp);
    REQUIRE(verdict(dp, to(kB, kTcp, 80)) == Verdict::accepted);
    REQUIRE(verdict(dp, to(kC, kUdp, 53)) == Verdict::dropped);

    // The new VIP either fits the running seed or clashes with kC's slot, which moves every VIP.
    const bool clash = GENERATE(false, true);
    CAPTURE(clash);
    const IpAddress fresh =
        clash ? address_in_slot(before.vip_seed(), before.slot_of(2)) : ip("10.0.0.4");
    const VipLayout running = before.layout();
    const DataplaneTables after({kA, kC, fresh}, rules_for(1), NLB_FLOW_SEED, &running);
    REQUIRE((after.vip_seed() != before.vip_seed()) == clash);
    dp.maps().write_tables(after);
    CHECK(dp.maps().state().config.vip_seed == after.vip_seed());

    for (const IpAddress& vip : {kA, kC, fresh}) {
        CAPTURE(vip.to_string());
        CHECK(verdict(dp, to(vip, kTcp, 80)) == Verdict::accepted);
        CHECK(arp_for(dp, vip) == Verdict::tx);
    }
    CHECK(verdict(dp, to(kC, kUdp, 53)) == Verdict::dropped); // kC's own rule, still its
    CHECK(stats(dp, 1).dropped_disabled == 2);
    // The default slot (host 2's): the new VIP's port table is its own, not a stale one.
    CHECK(verdict(dp, to(fresh, kUdp, 53)) == Verdict::dropped);
    CHECK(verdict(dp, to(kA, kUdp, 53)) == Verdict::dropped);
    CHECK(stats(dp, NLB_RULE_DEFAULT).dropped_not_owner == 2);
    // kB is no VIP now: what comes for it is the stack's (which no longer has the address).
    CHECK(verdict(dp, to(kB, kTcp, 80)) == Verdict::passed);
    CHECK(arp_for(dp, kB) == Verdict::passed);
    // The table holds exactly the new VIPs, none twice.
    int occupied = 0;
    for (const auto& slot : dp.maps().state().vips)
        occupied += slot.family != NLB_FAMILY_NONE;
    CHECK(occupied == 3);
}

TEST_CASE("a VIP given back its old place: removing and re-adding leaves the table consistent") {
    const DataplaneTables one({kA, kB}, rules_for(1));
    DataplaneFixture dp;
    dp.configure(one, 1);
    own_rules(dp);
    const VipLayout first = one.layout();
    const DataplaneTables two({kA}, {rule_ports(std::nullopt, 80, 80, Protocol::both)},
                              NLB_FLOW_SEED, &first);
    dp.maps().write_tables(two);
    CHECK(verdict(dp, to(kB, kTcp, 80)) == Verdict::passed);
    const VipLayout second = two.layout();
    const DataplaneTables three({kA, kB}, rules_for(1), NLB_FLOW_SEED, &second);
    dp.maps().write_tables(three);
    CHECK(verdict(dp, to(kB, kTcp, 80)) == Verdict::accepted);
    CHECK(verdict(dp, to(kB, kUdp, 53)) == Verdict::dropped);
    CHECK(stats(dp, 1).dropped_disabled == 1);
}

TEST_CASE("packets to kept VIPs find them at every instant of repeated VIP changes") {
    // A chain of changes that add and drop a VIP, each built to replace the one before;
    // some fit the running seed, some (the clashing address) move every VIP.
    std::vector<DataplaneTables> chain;
    chain.emplace_back(std::vector<IpAddress>{kA, kB, kC}, rules_for(2));
    for (int i = 1; i < 120; ++i) {
        const DataplaneTables& last = chain.back();
        std::vector<IpAddress> vips{kA, kC};
        if (i % 2)
            vips.push_back(address_in_slot(last.vip_seed(), last.slot_of(1)));
        const VipLayout running = last.layout();
        chain.emplace_back(vips, rules_for(1), NLB_FLOW_SEED, &running);
    }
    std::size_t moves = 0;
    for (std::size_t i = 1; i < chain.size(); ++i)
        moves += chain[i].vip_seed() != chain[i - 1].vip_seed();
    REQUIRE(moves >= 50);

    DataplaneFixture dp;
    dp.configure(chain.front(), 1);
    own_rules(dp);
    const Bytes a = to(kA, kTcp, 80), c = to(kC, kUdp, 53);
    std::atomic<bool> done{false};
    std::atomic<int> runs{0}, lost{0};
    std::thread reader([&] {
        while (!done.load()) {
            lost += verdict(dp, a) != Verdict::accepted;
            lost += dp.run(c).action != XDP_DROP; // kC's disabled rule, or a miss: passed
            runs += 2;
        }
    });
    for (std::size_t i = 1; i < chain.size(); ++i)
        dp.maps().write_tables(chain[i]);
    done = true;
    reader.join();
    CHECK(runs > 1000);
    CHECK(lost == 0);
}

} // namespace test_vip_change

namespace test_vip_change {

// A restart that adopts the pinned dataplane after its file was edited: the agent gives up
// the buckets of every rule slot the new tables decide otherwise before writing them
// (Agent::bring_up). What it reads from the maps must be what changed_slots() says of the
// two tables.
TEST_CASE("the slots new tables change are read from the maps an earlier agent wrote") {
    const std::vector<IpAddress> vips{kA, kB};
    const DataplaneTables before(vips, rules_for(1));
    DataplaneFixture dp;
    dp.configure(before, 1);
    CHECK(dp.maps().slots_changed_by(before) == 0);
    CHECK(changed_slots(before, before) == 0);

    // rule 0's port moves (80 -> 81): rule 0 and the default slot
    std::vector<RuleMatch> moved = rules_for(1);
    moved[0].first_port = moved[0].last_port = 81;
    const DataplaneTables ports(vips, moved);
    const std::uint64_t want_ports = changed_slots(before, ports);
    CHECK(want_ports == ((std::uint64_t{1} << 0) | (std::uint64_t{1} << NLB_RULE_DEFAULT)));
    CHECK(dp.maps().slots_changed_by(ports) == want_ports);

    // rule 1's affinity: rule 1 alone
    std::vector<RuleMatch> affinity = rules_for(1);
    affinity[1].affinity = NLB_AFFINITY_NONE;
    const DataplaneTables aff(vips, affinity);
    CHECK(dp.maps().slots_changed_by(aff) == changed_slots(before, aff));
    CHECK(dp.maps().slots_changed_by(aff) == (std::uint64_t{1} << 1));

    // another hash seed: every slot
    const DataplaneTables seeded(vips, rules_for(1), NLB_FLOW_SEED + 1);
    CHECK(dp.maps().slots_changed_by(seeded) == ~std::uint64_t{0});
}

} // namespace test_vip_change
