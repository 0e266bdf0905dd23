// Remote control's port in the dataplane: UDP to the cluster IP, port 2504, reaches every
// host's stack when NLB_CFG_REMOTE_CONTROL is set and no host's when it is clear, whatever
// the port rules, the bucket owners or the watchdog say; everything else on that port (TCP,
// another VIP, a fragment) is load-balanced as before. Checked on the fast path and on the
// general path (IPv4 options, VLAN tag), from two hosts that split every rule's buckets.
#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_remote_port {

namespace {

const IpAddress kCluster = ip("10.0.0.100"); // VIP index 0
const IpAddress kOtherVip = ip("10.0.0.101");
const IpAddress kClient = ip("198.18.0.7");

void remote_control(TwoHosts& hosts, bool on) {
    for (auto* h : {&hosts.h1, &hosts.h2}) {
        auto& flags = h->maps().state().config.flags;
        flags = on ? flags | NLB_CFG_REMOTE_CONTROL : flags & ~NLB_CFG_REMOTE_CONTROL;
    }
}

enum class Shape { plain, ip_options, vlan };

PacketSpec remote_request(Shape shape, std::uint16_t sport = 40000) {
    PacketSpec s;
    s.src = kClient;
    s.dst = kCluster;
    s.proto = kUdp;
    s.sport = sport;
    s.dport = NLB_REMOTE_CONTROL_PORT;
    s.payload = 120;
    if (shape == Shape::ip_options)
        s.ipv4_options = 8;
    if (shape == Shape::vlan)
        s.vlan = kPriorityTag;
    return s;
}

// Sum over rule slots (not the global one): what the load-balancing path counted.
nlb_stats rule_stats(DataplaneFixture& dp) {
    nlb_stats sum{};
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
        add_stats(sum, dp.maps().read_stats(slot));
    return sum;
}

void check_no_rule_counted(DataplaneFixture& dp) {
    nlb_stats r = rule_stats(dp);
    CHECK(r.accepted == 0);
    CHECK(r.dropped_not_owner == 0);
    CHECK(r.dropped_disabled == 0);
    CHECK(r.dropped_watchdog == 0);
}

} // namespace

TEST_CASE("remote control on: every host passes UDP 2504 to the cluster IP, off: none") {
    auto shape = GENERATE(Shape::plain, Shape::ip_options, Shape::vlan);
    CAPTURE(int(shape));
    // A rule for every port: the request's bucket belongs to one host only.
    TwoHosts hosts({kCluster, kOtherVip}, {rule_ports(std::nullopt, 0, 65535, Protocol::both)});
    const Bytes frame = build(remote_request(shape));

    remote_control(hosts, true);
    for (auto* h : {&hosts.h1, &hosts.h2}) {
        CAPTURE(int(h->priority()));
        CHECK(verdict(*h, frame) == Verdict::accepted); // to the stack, MAC rewritten
        nlb_stats g = stats(*h, NLB_STATS_GLOBAL);
        CHECK(g.remote_passed == 1);
        CHECK(g.remote_dropped == 0);
        check_no_rule_counted(*h);
    }

    remote_control(hosts, false);
    for (auto* h : {&hosts.h1, &hosts.h2}) {
        CAPTURE(int(h->priority()));
        CHECK(verdict(*h, frame) == Verdict::dropped);
        nlb_stats g = stats(*h, NLB_STATS_GLOBAL);
        CHECK(g.remote_passed == 1);
        CHECK(g.remote_dropped == 1);
        check_no_rule_counted(*h);
    }
}

TEST_CASE("a port rule covering 2504 does not decide remote control") {
    auto mode = GENERATE(as<std::uint8_t>{}, NLB_MODE_DISABLED, NLB_MODE_MULTIPLE, NLB_MODE_SINGLE);
    CAPTURE(int(mode));
    TwoHosts hosts({kCluster, kOtherVip}, {rule_ports(std::nullopt, 2500, 2510, Protocol::udp, mode),
                    rule_ports(0, 2504, 2504, Protocol::both, mode)});
    // Single: host 2 owns every bucket, so host 1 would drop everything.
    for (auto* h : {&hosts.h1, &hosts.h2})
        for (std::uint32_t slot = 0; slot < 2; ++slot)
            if (mode == NLB_MODE_SINGLE)
                h->own_all(slot, 2);
    const Bytes frame = build(remote_request(Shape::plain));

    remote_control(hosts, true);
    for (auto* h : {&hosts.h1, &hosts.h2}) {
        CHECK(verdict(*h, frame) == Verdict::accepted);
        check_no_rule_counted(*h);
    }
    remote_control(hosts, false);
    for (auto* h : {&hosts.h1, &hosts.h2}) {
        CHECK(verdict(*h, frame) == Verdict::dropped);
        CHECK(stats(*h, NLB_STATS_GLOBAL).remote_dropped == 1);
        check_no_rule_counted(*h);
    }
}

TEST_CASE("a stopped watchdog does not stop remote control") {
    TwoHosts hosts({kCluster, kOtherVip}, {rule_ports(std::nullopt, 0, 65535, Protocol::both)});
    remote_control(hosts, true);
    hosts.h1.set_alive(false);
    CHECK(verdict(hosts.h1, build(remote_request(Shape::plain))) == Verdict::accepted);
    CHECK(verdict(hosts.h1, build(remote_request(Shape::vlan))) == Verdict::accepted);
}

TEST_CASE("the rest of port 2504 is load-balanced as any port") {
    TwoHosts hosts({kCluster, kOtherVip}, {rule_ports(std::nullopt, 0, 65535, Protocol::both)});
    auto on = GENERATE(true, false);
    CAPTURE(on);
    remote_control(hosts, on);

    PacketSpec tcp = remote_request(Shape::plain);
    tcp.proto = kTcp;
    PacketSpec other_vip = remote_request(Shape::plain);
    other_vip.dst = kOtherVip;
    PacketSpec from_2504 = remote_request(Shape::plain, NLB_REMOTE_CONTROL_PORT);
    from_2504.dport = 80;
    PacketSpec first_fragment = remote_request(Shape::plain);
    first_fragment.fragment = true;
    first_fragment.more_fragments = true;
    PacketSpec options_tcp = remote_request(Shape::ip_options);
    options_tcp.proto = kTcp;

    for (const auto& spec : {tcp, other_vip, from_2504, first_fragment, options_tcp}) {
        CAPTURE(int(spec.proto), spec.dst.to_string(), spec.sport, spec.dport, spec.fragment);
        const Bytes frame = build(spec);
        Verdict v1 = verdict(hosts.h1, frame), v2 = verdict(hosts.h2, frame);
        // Exactly one host takes it: its bucket's owner.
        CHECK(((v1 == Verdict::accepted) != (v2 == Verdict::accepted)));
        CHECK((v1 == Verdict::dropped || v2 == Verdict::dropped));
    }
    for (auto* h : {&hosts.h1, &hosts.h2}) {
        nlb_stats g = stats(*h, NLB_STATS_GLOBAL);
        CHECK(g.remote_passed == 0);
        CHECK(g.remote_dropped == 0);
    }
}

} // namespace test_remote_port
