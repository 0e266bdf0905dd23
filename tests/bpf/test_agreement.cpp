// The dataplane against fixed numbers and against the agent's model of it.
//
// First the golden vectors (tests/golden/hash_vectors.hpp): the compiled XDP program must
// put each vector's packet in the vector's bucket under the vector's seed, and find a VIP in
// the vector's slot, whatever the C++ side computes; hosts of different versions then agree.
//
// Then the agent's model (DataplaneTables::place() and the bucket owner maps): 100,000 random
// packets through four hosts sharing one set of tables, under the fixed seed and under a
// cluster's own; each host accepts a packet iff place() puts it in a bucket that host owns, so
// exactly one host takes every packet of an enabled rule. A later fragment is sent after its
// first and must follow it. The counters per rule slot show that
// the rule was chosen as place() chose it, not only the owner.
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"
#include "hash_vectors.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_agreement {

namespace {

std::uint16_t random_port(std::mt19937& rng) {
    // half uniform, half next to the rules' edges
    static const std::uint16_t edges[] = {0,     1,     80,    443,   1023,  1024,
                                          8000,  8999,  9000,  9999,  40000, 40001,
                                          49151, 49152, 50000, 59999, 60000, 65535};
    if (rng() % 2)
        return static_cast<std::uint16_t>(rng());
    int e = edges[rng() % (sizeof(edges) / sizeof(edges[0]))] + static_cast<int>(rng() % 3) - 1;
    return static_cast<std::uint16_t>(std::clamp(e, 0, 65535));
}

const IpAddress kGoldenVip4 = ip("192.0.2.100");
const IpAddress kGoldenVip6 = ip("2001:db8::100");

// What host 1 does with `frame` when its only bucket of rule 0 is `mine`, and when it owns
// every bucket but that one.
std::pair<Verdict, Verdict> only_and_all_but(DataplaneFixture& dp, const Bytes& frame,
                                             std::uint16_t mine) {
    dp.set_buckets(0, [&](std::uint16_t b) { return entry_for(b == mine ? 1 : 2, 1); });
    const Verdict only = verdict(dp, frame);
    dp.set_buckets(0, [&](std::uint16_t b) { return entry_for(b == mine ? 2 : 1, 1); });
    return {only, verdict(dp, frame)};
}

void agree_on_random_packets(std::uint32_t flow_seed, int packets) {
    constexpr int kHosts = 4;
    const int kPackets = packets;
    std::mt19937 rng(4242);
    std::vector<IpAddress> vips = {ip("10.0.0.100"), ip("10.0.0.101"), ip("2001:db8::100"),
                                   ip("2001:db8::101")};
    auto aff = [&] { return static_cast<std::uint8_t>(rng() % 3); };
    std::vector<RuleMatch> rules = {
        rule_ports(std::nullopt, 0, 1023, Protocol::both, NLB_MODE_MULTIPLE, aff()),
        rule_ports(std::nullopt, 1024, 49151, Protocol::tcp, NLB_MODE_MULTIPLE, aff()),
        rule_ports(std::nullopt, 1024, 40000, Protocol::udp, NLB_MODE_MULTIPLE, aff()),
        rule_ports(0, 8000, 8999, Protocol::both, NLB_MODE_MULTIPLE, aff()), // inside rule 1/2
        rule_ports(2, 443, 443, Protocol::tcp, NLB_MODE_MULTIPLE, aff()),    // inside rule 0
        rule_ports(std::nullopt, 50000, 59999, Protocol::both, NLB_MODE_SINGLE, aff()),
        rule_ports(3, 9000, 9999, Protocol::both, NLB_MODE_DISABLED, aff()), // inside rule 1/2
        rule_ports(1, 60000, 65535, Protocol::udp, NLB_MODE_MULTIPLE, aff()),
    };
    DataplaneTables tables(vips, rules, flow_seed);

    // owners per slot and bucket, among hosts 1..4; the single-host rule on one host
    std::vector<std::vector<std::uint8_t>> owner(NLB_RULE_SLOTS,
                                                 std::vector<std::uint8_t>(NLB_BUCKETS));
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
        for (auto& o : owner[slot])
            o = static_cast<std::uint8_t>(1 + rng() % kHosts);
    std::fill(owner[5].begin(), owner[5].end(), std::uint8_t{3});
    std::fill(owner[NLB_RULE_DEFAULT].begin(), owner[NLB_RULE_DEFAULT].end(), std::uint8_t{2});

    std::vector<std::unique_ptr<DataplaneFixture>> hosts;
    for (int h = 1; h <= kHosts; ++h) {
        hosts.push_back(std::make_unique<DataplaneFixture>());
        hosts.back()->configure(tables, static_cast<std::uint8_t>(h));
        for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
            set_owners(*hosts.back(), slot, [&](std::uint16_t b) { return owner[slot][b]; });
    }

    struct Expect {
        std::uint64_t accepted = 0, not_owner = 0, disabled = 0;
    };
    // [host][slot]
    std::vector<std::vector<Expect>> expect(kHosts, std::vector<Expect>(NLB_RULE_SLOTS));
    std::vector<std::uint64_t> slot_hits(NLB_RULE_SLOTS);
    int mismatches = 0, accepted_once = 0, fragments = 0, frames = 0;
    std::ostringstream first_mismatches;
    const std::uint8_t flag_choices[] = {kAck, kAck, kAck | 0x08, kSyn, kFin | kAck, kRst};

    for (int i = 0; i < kPackets; ++i) {
        bool v6 = rng() % 2;
        PacketSpec s;
        s.src = random_address(rng, v6 ? NLB_FAMILY_V6 : NLB_FAMILY_V4);
        if (!v6)
            s.src.words[0] = static_cast<std::uint32_t>(rng()); // any IPv4 source
        s.dst = vips[(v6 ? 2 : 0) + rng() % 2];
        s.proto = rng() % 2 ? kTcp : kUdp;
        s.sport = static_cast<std::uint16_t>(rng());
        s.dport = random_port(rng);
        s.tcp_flags = flag_choices[rng() % 6];
        s.payload = rng() % 3 ? 0 : 40;
        unsigned shape = rng() % 20;
        if (shape == 0)
            s.vlan = 100;
        else if (shape == 1 && !v6)
            s.ipv4_options = 4;
        else if (shape == 1)
            s.ipv6_ext = {60};
        else if (shape == 2 || shape == 3) {
            s.fragment = true;
            s.more_fragments = true;
            s.frag_offset = 0;
            s.frag_id = static_cast<std::uint32_t>(rng());
            s.payload = 48;
        }

        Tuple t;
        t.family = s.src.family;
        t.proto = s.proto;
        t.saddr = s.src.words;
        t.daddr = s.dst.words;
        t.sport = htons(s.sport);
        t.dport = htons(s.dport);
        auto placed = tables.place(t);
        REQUIRE(placed);
        fragments += s.fragment;
        std::uint32_t slot = placed->rule;
        ++slot_hits[slot];
        bool disabled = slot < rules.size() && rules[slot].mode == NLB_MODE_DISABLED;
        std::uint8_t o = owner[slot][placed->bucket];

        std::vector<Bytes> datagram = {build(s)};
        if (shape == 3) { // the first fragment, then a later one (no ports) that follows it
            s.frag_offset = 7;
            s.more_fragments = false;
            datagram.push_back(build(s));
        }
        for (const Bytes& f : datagram) {
            int accepted_by = 0;
            for (int h = 0; h < kHosts; ++h) {
                // a tagged frame goes to hosts of a VLAN 100 cluster, which decide it as
                // untagged ones decide untagged frames
                hosts[h]->maps().state().config.vlan = s.vlan ? 100 : 0;
                Verdict got = verdict(*hosts[h], f);
                bool mine = o == h + 1 && !disabled;
                Verdict want = mine ? Verdict::accepted : Verdict::dropped;
                Expect& e = expect[h][slot];
                (disabled ? e.disabled : mine ? e.accepted : e.not_owner)++;
                accepted_by += got == Verdict::accepted;
                if (got != want && ++mismatches <= 10)
                    first_mismatches
                        << "packet " << i << " host " << h + 1 << ": " << s.src.to_string() << ":"
                        << s.sport << " -> " << s.dst.to_string() << ":" << s.dport << " proto "
                        << int(s.proto) << " frag " << s.fragment << "/" << s.frag_offset
                        << " slot " << slot << " bucket " << placed->bucket << " owner " << int(o)
                        << ": got " << got << ", want " << want << "\n";
            }
            accepted_once += accepted_by == (disabled ? 0 : 1);
            ++frames;
        }
    }
    INFO(first_mismatches.str());
    CHECK(mismatches == 0);
    CHECK(accepted_once == frames);
    // every slot of the table was exercised, fragments included
    for (std::uint32_t slot = 0; slot < rules.size(); ++slot) {
        CAPTURE(slot);
        CHECK(slot_hits[slot] > static_cast<std::uint64_t>(kPackets / 1000));
    }
    CHECK(slot_hits[NLB_RULE_DEFAULT] > static_cast<std::uint64_t>(kPackets / 1000));
    CHECK(fragments > kPackets / 20);
    for (int h = 0; h < kHosts; ++h)
        for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
            CAPTURE(h + 1, slot);
            nlb_stats got = stats(*hosts[h], slot);
            CHECK(got.accepted == expect[h][slot].accepted);
            CHECK(got.dropped_not_owner == expect[h][slot].not_owner);
            CHECK(got.dropped_disabled == expect[h][slot].disabled);
            CHECK(got.dropped_watchdog == 0);
            CHECK(got.dropped_dirty == 0);
        }
    CHECK(total_stats(*hosts[0]).malformed == 0);
    CHECK(total_stats(*hosts[0]).fragments_unmatched == 0);
}

} // namespace

TEST_CASE("the dataplane puts each golden vector's packet in its bucket, under its seed") {
    // One host per affinity, the seed written straight into its config (not through the
    // tables): nothing on the C++ side computes a bucket here.
    std::vector<std::unique_ptr<DataplaneFixture>> hosts;
    std::vector<DataplaneTables> tables;
    for (std::uint8_t affinity : {NLB_AFFINITY_NONE, NLB_AFFINITY_SINGLE, NLB_AFFINITY_NETWORK}) {
        RuleMatch rule;
        rule.affinity = affinity;
        tables.emplace_back(std::vector<IpAddress>{kGoldenVip4, kGoldenVip6},
                            std::vector<RuleMatch>{rule});
    }
    for (const auto& t : tables) {
        hosts.push_back(std::make_unique<DataplaneFixture>());
        hosts.back()->configure(t, 1);
    }
    int runs = 0;
    for (const auto& v : golden::kFlowVectors) {
        CAPTURE(v.source, v.sport, int(v.affinity), v.seed, v.bucket);
        DataplaneFixture& dp = *hosts.at(v.affinity);
        dp.maps().state().config.flow_seed = v.seed;
        PacketSpec s;
        s.src = ip(v.source);
        s.dst = v.family == NLB_FAMILY_V4 ? kGoldenVip4 : kGoldenVip6;
        s.dst_mac = DataplaneFixture::cluster_mac_of(kGoldenVip4);
        s.proto = kUdp;
        s.sport = v.sport;
        s.dport = 53;
        std::vector<PacketSpec> shapes;
        s.payload = 32;      // a shorter datagram leaves the fast path
        shapes.push_back(s); // the fast path (IPv4 and IPv6)
        s.vlan = 100;        // the general path, on a VLAN 100 cluster
        shapes.push_back(s);
        for (const auto& shape : shapes) {
            CAPTURE(shape.vlan.has_value());
            dp.maps().state().config.vlan = shape.vlan ? 100 : 0;
            const auto [only, all_but] = only_and_all_but(dp, build(shape), v.bucket);
            CHECK(only == Verdict::accepted);
            CHECK(all_but == Verdict::dropped);
            ++runs;
        }
    }
    CHECK(runs == 2 * static_cast<int>(std::size(golden::kFlowVectors)));
}

TEST_CASE("the dataplane finds each golden VIP in its slot, under its seed") {
    RuleMatch rule;
    DataplaneTables t({kGoldenVip4}, {rule});
    DataplaneFixture dp;
    dp.configure(t, 1);
    dp.own_all(0, 1);
    nlb_state& state = dp.maps().state();
    for (const auto& v : golden::kVipSlotVectors) {
        CAPTURE(v.address, v.seed, v.slot);
        const IpAddress vip = ip(v.address);
        PacketSpec s;
        s.src = ip(v.family == NLB_FAMILY_V4 ? "198.51.100.1" : "2001:db8:ffff::1");
        s.dst = vip;
        s.dst_mac = DataplaneFixture::cluster_mac_of(kGoldenVip4);
        s.proto = kUdp;
        s.dport = 53;
        const Bytes frame = build(s);
        // The VIP written by hand into one slot: found there (accepted, this host owns every
        // bucket), and not found one slot further (passed as foreign traffic).
        for (std::uint32_t shift : {0u, 1u}) {
            CAPTURE(shift);
            std::memset(state.vips, 0, sizeof(state.vips));
            state.config.vip_seed = v.seed;
            nlb_vip& slot = state.vips[(v.slot + shift) % NLB_VIP_SLOTS];
            std::memcpy(slot.addr, vip.words.data(), sizeof(slot.addr));
            slot.family = vip.family;
            slot.index = 0;
            slot.port_rule[NLB_PROTO_TCP] = slot.port_rule[NLB_PROTO_UDP] = 0;
            CHECK(verdict(dp, frame) == (shift == 0 ? Verdict::accepted : Verdict::passed));
        }
    }
}

TEST_CASE("place() and the owner maps agree with the dataplane on 100,000 random packets") {
    agree_on_random_packets(NLB_FLOW_SEED, 100'000);
}

TEST_CASE("place() and the dataplane agree under a cluster's own seed") {
    agree_on_random_packets(0x5eed1234u, 40'000);
}

} // namespace test_agreement
