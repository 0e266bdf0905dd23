// Which host takes a packet: affinities, rule modes, the default host, VIP-specific rules,
// first fragments (the rest: test_fragments.cpp), VLAN tags, ICMP errors and echo, the MAC rewrite, the watchdog, and what passes
// untouched. Two fixtures play two hosts with the same tables; host 1 owns the even buckets,
// host 2 the odd ones, so every case is checked from both sides.
#include <time.h>

#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_ownership {

namespace {

const IpAddress kVip4 = ip("10.0.0.100");
const IpAddress kVip6 = ip("2001:db8::100");

RuleMatch rule_all(std::uint8_t affinity = NLB_AFFINITY_SINGLE) {
    RuleMatch r;
    r.affinity = affinity;
    return r;
}

// How a frame reaches the program: which parse path it takes.
enum class Shape { plain, ip_options, ipv6_ext, vlan };

PacketSpec spec_for(const IpAddress& src, std::uint16_t sport, const IpAddress& dst,
                    std::uint8_t proto, Shape shape) {
    PacketSpec s;
    s.src = src;
    s.dst = dst;
    s.sport = sport;
    s.dport = 80;
    s.proto = proto;
    s.payload = 10;
    if (shape == Shape::ip_options && src.family == NLB_FAMILY_V4)
        s.ipv4_options = 8;
    if (shape == Shape::ipv6_ext && src.family == NLB_FAMILY_V6)
        s.ipv6_ext = {0 /* hop-by-hop */, 60 /* destination options */};
    if (shape == Shape::vlan)
        s.vlan = kPriorityTag; // other VLANs' frames are not the cluster's (test_vlan.cpp)
    return s;
}

Verdict owner_verdict(std::uint8_t owner, std::uint8_t me) {
    return owner == me ? Verdict::accepted : Verdict::dropped;
}

} // namespace

TEST_CASE("owned and foreign buckets under every affinity, IPv4 and IPv6, TCP and UDP") {
    auto affinity =
        GENERATE(as<std::uint8_t>{}, NLB_AFFINITY_NONE, NLB_AFFINITY_SINGLE, NLB_AFFINITY_NETWORK);
    CAPTURE(int(affinity));
    TwoHosts hosts({kVip4, kVip6}, {rule_all(affinity)});
    std::mt19937 rng(100 + affinity);

    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        const IpAddress& vip = family == NLB_FAMILY_V4 ? kVip4 : kVip6;
        int owned_by[3] = {};
        for (int i = 0; i < 48; ++i) {
            Source src = source_where(rng, family, affinity, [](std::uint16_t) { return true; });
            std::uint8_t owner = half(bucket_of(src.addr, src.port, affinity));
            ++owned_by[owner];
            for (std::uint8_t proto : {kTcp, kUdp})
                for (Shape shape : {Shape::plain, Shape::ip_options, Shape::ipv6_ext}) {
                    Bytes f = build(spec_for(src.addr, src.port, vip, proto, shape));
                    CAPTURE(src.addr.to_string(), src.port, int(proto), int(shape));
                    CHECK(verdict(hosts.h1, f) == owner_verdict(owner, 1));
                    CHECK(verdict(hosts.h2, f) == owner_verdict(owner, 2));
                }
        }
        // both hosts got some: the split is real
        CHECK(owned_by[1] > 0);
        CHECK(owned_by[2] > 0);
    }
    // every frame was counted by exactly one host as accepted, by the other as not its own
    nlb_stats s1 = stats(hosts.h1, 0), s2 = stats(hosts.h2, 0);
    CHECK(s1.accepted + s2.accepted == 2 * 48 * 2 * 3);
    CHECK(s1.accepted == s2.dropped_not_owner);
    CHECK(s2.accepted == s1.dropped_not_owner);
    CHECK(total_stats(hosts.h1).malformed == 0);

    // What the affinity key holds, shown without the shared hash: packets that must share a
    // bucket get the same verdict on host 1.
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        const IpAddress& vip = family == NLB_FAMILY_V4 ? kVip4 : kVip6;
        auto frame = [&](const IpAddress& a, std::uint16_t port, std::uint8_t proto) {
            return build(spec_for(a, port, vip, proto, Shape::plain));
        };
        IpAddress a = random_address(rng, family);
        if (affinity == NLB_AFFINITY_NONE) {
            // one address, ports in both hosts' buckets: the port decides
            std::uint16_t mine = 0, theirs = 0;
            for (std::uint16_t p = 1024; !mine || !theirs; ++p)
                (half(bucket_of(a, p, affinity)) == 1 ? mine : theirs) = p;
            CHECK(verdict(hosts.h1, frame(a, mine, kTcp)) == Verdict::accepted);
            CHECK(verdict(hosts.h1, frame(a, theirs, kTcp)) == Verdict::dropped);
            CHECK(verdict(hosts.h1, frame(a, mine, kUdp)) == Verdict::accepted);
            CHECK(verdict(hosts.h1, frame(a, theirs, kUdp)) == Verdict::dropped);
            continue;
        }
        // single and network: the port never matters
        Verdict first = verdict(hosts.h1, frame(a, 1024, kTcp));
        for (int i = 0; i < 16; ++i) {
            auto port = static_cast<std::uint16_t>(rng());
            CHECK(verdict(hosts.h1, frame(a, port, kTcp)) == first);
            CHECK(verdict(hosts.h1, frame(a, port, kUdp)) == first);
        }
        // network: the host bits never matter either; single: they do
        int differ = 0;
        for (int i = 0; i < 32; ++i) {
            IpAddress b = a;
            if (family == NLB_FAMILY_V4)
                b.words[0] = htonl((ntohl(a.words[0]) & 0xffffff00u) | (rng() & 0xff));
            else
                b.words[2] = static_cast<std::uint32_t>(rng()), b.words[3] = rng();
            Verdict v = verdict(hosts.h1, frame(b, static_cast<std::uint16_t>(rng()), kTcp));
            if (affinity == NLB_AFFINITY_NETWORK)
                CHECK(v == first);
            differ += v != first;
        }
        if (affinity == NLB_AFFINITY_SINGLE)
            CHECK(differ > 0);
    }
}

TEST_CASE("rule modes: multiple, single, disabled, and the default host for uncovered ports") {
    // port 80/tcp multiple, 81 single (one host), 82 disabled; everything else uncovered
    TwoHosts hosts({kVip4, kVip6},
                   {rule_ports(std::nullopt, 80, 80, Protocol::tcp),
                    rule_ports(std::nullopt, 81, 81, Protocol::both, NLB_MODE_SINGLE),
                    rule_ports(std::nullopt, 82, 82, Protocol::both, NLB_MODE_DISABLED)});
    for (DataplaneFixture* h : {&hosts.h1, &hosts.h2}) {
        h->own_all(1, 2);                      // single: everything to host 2
        h->set_buckets(2, [h](std::uint16_t) { // disabled, even where marked owned
            return static_cast<std::uint16_t>(h->priority() | NLB_BKT_MINE);
        });
        h->own_all(NLB_RULE_DEFAULT, 1); // the default host is host 1
    }
    std::mt19937 rng(7);
    int n = 0, multiple_mine = 0;
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        const IpAddress& vip = family == NLB_FAMILY_V4 ? kVip4 : kVip6;
        for (int i = 0; i < 24; ++i) {
            IpAddress src = random_address(rng, family);
            auto sport = static_cast<std::uint16_t>(1024 + rng() % 60000);
            for (Shape shape : {Shape::plain, Shape::ip_options, Shape::vlan}) {
                PacketSpec s = spec_for(src, sport, vip, kTcp, shape);
                CAPTURE(src.to_string(), int(shape));
                ++n;
                // multiple: by bucket
                s.dport = 80;
                std::uint8_t owner = half(bucket_of(src, sport, NLB_AFFINITY_SINGLE));
                multiple_mine += owner == 1;
                CHECK(verdict(hosts.h1, build(s)) == owner_verdict(owner, 1));
                CHECK(verdict(hosts.h2, build(s)) == owner_verdict(owner, 2));
                // single: host 2 only, TCP and UDP
                for (std::uint8_t proto : {kTcp, kUdp}) {
                    s.proto = proto;
                    s.dport = 81;
                    CHECK(verdict(hosts.h1, build(s)) == Verdict::dropped);
                    CHECK(verdict(hosts.h2, build(s)) == Verdict::accepted);
                    // disabled: nobody, not even a SYN
                    s.dport = 82;
                    s.tcp_flags = kSyn;
                    CHECK(verdict(hosts.h1, build(s)) == Verdict::dropped);
                    CHECK(verdict(hosts.h2, build(s)) == Verdict::dropped);
                    s.tcp_flags = kAck;
                    // uncovered ports (and UDP to 80, covered for TCP only): the default host
                    s.dport = static_cast<std::uint16_t>(proto == kUdp ? 80 : 443);
                    CHECK(verdict(hosts.h1, build(s)) == Verdict::accepted);
                    CHECK(verdict(hosts.h2, build(s)) == Verdict::dropped);
                }
                s.proto = kTcp;
            }
        }
    }
    CHECK(multiple_mine > 0);
    CHECK(multiple_mine < n);
    for (DataplaneFixture* h : {&hosts.h1, &hosts.h2}) {
        nlb_stats disabled = stats(*h, 2);
        CHECK(disabled.dropped_disabled == std::uint64_t(2 * n));
        CHECK(disabled.accepted == 0);
        CHECK(disabled.tracked == 0);
    }
    CHECK(stats(hosts.h2, 1).accepted == std::uint64_t(2 * n));
    CHECK(stats(hosts.h1, 1).dropped_not_owner == std::uint64_t(2 * n));
    CHECK(stats(hosts.h1, NLB_RULE_DEFAULT).accepted == std::uint64_t(2 * n));
    CHECK(stats(hosts.h2, NLB_RULE_DEFAULT).dropped_not_owner == std::uint64_t(2 * n));
}

TEST_CASE("a VIP-specific rule wins on its ports, the all rule elsewhere and for other VIPs") {
    const IpAddress vip_b = ip("10.0.0.101");
    // the all rule first: precedence must not depend on the order
    DataplaneTables tables({kVip4, vip_b, kVip6},
                           {rule_all(), rule_ports(0, 80, 80, Protocol::tcp)});
    DataplaneFixture h;
    h.configure(tables, 1);
    std::mt19937 rng(11);

    auto check = [&](std::uint8_t all_owner, std::uint8_t specific_owner) {
        h.own_all(0, all_owner);
        h.own_all(1, specific_owner);
        h.maps().clear_stats();
        Verdict all_v = owner_verdict(all_owner, 1), spec_v = owner_verdict(specific_owner, 1);
        for (int i = 0; i < 8; ++i) {
            IpAddress src4 = random_address(rng, NLB_FAMILY_V4);
            IpAddress src6 = random_address(rng, NLB_FAMILY_V6);
            for (Shape shape : {Shape::plain, Shape::vlan}) {
                PacketSpec s = spec_for(src4, 5000, kVip4, kTcp, shape);
                CHECK(verdict(h, build(s)) == spec_v); // VIP A tcp/80: the specific rule
                s.dport = 81;
                CHECK(verdict(h, build(s)) == all_v); // other port
                s.dport = 79;
                CHECK(verdict(h, build(s)) == all_v);
                s.dport = 80;
                s.proto = kUdp;
                CHECK(verdict(h, build(s)) == all_v); // other protocol
                s.proto = kTcp;
                s.dst = vip_b;
                CHECK(verdict(h, build(s)) == all_v); // other VIP
                CHECK(verdict(h, build(spec_for(src6, 5000, kVip6, kTcp, shape))) == all_v);
            }
        }
        CHECK(stats(h, 1).accepted + stats(h, 1).dropped_not_owner == 16);
        CHECK(stats(h, 0).accepted + stats(h, 0).dropped_not_owner == 16 * 5);
    };
    check(2, 1);
    check(1, 2);
}

TEST_CASE("accepted frames get this host's MAC as destination and nothing else changes") {
    DataplaneTables tables({kVip4, kVip6}, {rule_all()});
    DataplaneFixture h;
    h.configure(tables, 3);
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
        h.own_all(slot, 3);
    const IpAddress c4 = ip("198.51.100.7"), c6 = ip("2001:db8:1::7");
    std::vector<PacketSpec> specs;
    for (const auto& [src, dst] : {std::pair{c4, kVip4}, std::pair{c6, kVip6}})
        for (std::uint8_t proto : {kTcp, kUdp})
            for (Shape shape : {Shape::plain, Shape::ip_options, Shape::ipv6_ext, Shape::vlan}) {
                PacketSpec s = spec_for(src, 4321, dst, proto, shape);
                s.payload = 100;
                specs.push_back(s);
                s.fragment = true;
                s.more_fragments = true;
                specs.push_back(s);
            }
    std::vector<Bytes> frames;
    for (const auto& s : specs)
        frames.push_back(build(s));
    PacketSpec echo;
    echo.src = c4;
    echo.dst = kVip4;
    echo.proto = kIcmp;
    echo.icmp_type = 8;
    echo.icmp_body = Bytes(32, 0x55);
    frames.push_back(build(echo));
    PacketSpec quoted = spec_for(kVip4, 80, c4, kTcp, Shape::plain);
    PacketSpec outer;
    outer.src = ip("192.0.2.1");
    outer.dst = kVip4;
    frames.push_back(build_icmp_error(outer, build(quoted), 3));

    for (const Bytes& f : frames) {
        RunResult r = h.run(f);
        REQUIRE(r.action == XDP_PASS);
        REQUIRE(r.out.size() == f.size());
        Mac own = DataplaneFixture::own_mac(3);
        CHECK(std::equal(own.begin(), own.end(), r.out.begin()));
        CHECK_FALSE(std::equal(own.begin(), own.end(), f.begin()));
        CHECK(std::equal(f.begin() + 6, f.end(), r.out.begin() + 6));
    }
    CHECK(total_stats(h).accepted == frames.size());
}

// A segment that delivers every frame to every port (a bridge of veths, a promiscuous
// vSwitch) shows the dataplane frames for a VIP sent to other MACs: another cluster's that
// shares the address (a mistyped cluster IP: fault test other_cluster_ip), another host's.
// Judged by the bucket, the owner accepted them too, and a host alone under another cluster
// IP answered every request twice beside its cluster.
TEST_CASE("only frames to the cluster MAC or this host's own are judged; a VIP's frames to "
          "other MACs pass untouched, owned bucket or not, fragments too") {
    DataplaneTables tables({kVip4, kVip6}, {rule_all()});
    DataplaneFixture h;
    h.configure(tables, 3);
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
        h.own_all(slot, 3);
    const Mac cluster = DataplaneFixture::cluster_mac_of(kVip4);
    const Mac own = DataplaneFixture::own_mac(3);
    const Mac other_cluster = DataplaneFixture::cluster_mac_of(ip("10.0.0.99"));
    const Mac other_host = DataplaneFixture::own_mac(4);
    const Mac one_off = {cluster[0], cluster[1], cluster[2],
                         cluster[3], cluster[4], static_cast<std::uint8_t>(cluster[5] ^ 1)};
    const IpAddress c4 = ip("198.51.100.7"), c6 = ip("2001:db8:1::7");
    int judged = 0;
    for (const auto& [src, dst] : {std::pair{c4, kVip4}, std::pair{c6, kVip6}})
        for (std::uint8_t proto : {kTcp, kUdp})
            for (Shape shape : {Shape::plain, Shape::ip_options, Shape::ipv6_ext, Shape::vlan})
                // whole, a first fragment, and a later one (which the first's record decides)
                for (int fragment : {0, 1, 2}) {
                    PacketSpec s = spec_for(src, 4321, dst, proto, shape);
                    s.payload = 100;
                    s.fragment = fragment > 0;
                    s.more_fragments = fragment > 0;
                    s.frag_offset = fragment == 2 ? 5 : 0;
                    CAPTURE(src.to_string(), int(proto), int(shape), fragment);
                    s.dst_mac = cluster;
                    CHECK(verdict(h, build(s)) == Verdict::accepted);
                    // Already addressed here: accepted leaves it as it came.
                    s.dst_mac = own;
                    const std::uint64_t before = total_stats(h).accepted;
                    CHECK(h.run(build(s)).action == XDP_PASS);
                    CHECK(total_stats(h).accepted == before + 1);
                    judged += 2;
                    for (const Mac& mac : {other_cluster, other_host, one_off}) {
                        s.dst_mac = mac;
                        CHECK(verdict(h, build(s)) == Verdict::passed);
                    }
                }
    // Not accepted, not dropped, counted nowhere: the stack drops them as another host's.
    const nlb_stats st = total_stats(h);
    CHECK(st.accepted == static_cast<std::uint64_t>(judged));
    CHECK(st.dropped_not_owner == 0);
    CHECK(st.malformed == 0);
}

TEST_CASE("watchdog: a dead dataplane accepts nothing; arming revives it until the timer fires") {
    DataplaneTables tables({kVip4, kVip6}, {rule_all()});
    DataplaneFixture h;
    h.configure(tables, 1);
    h.own_all(0, 1);
    h.own_all(NLB_RULE_DEFAULT, 1);
    PacketSpec s = spec_for(ip("198.51.100.7"), 4000, kVip4, kTcp, Shape::plain);
    std::vector<Bytes> owned;
    for (std::uint8_t proto : {kTcp, kUdp})
        for (std::uint8_t flags : {kAck, kSyn})
            for (Shape shape : {Shape::plain, Shape::ip_options}) {
                s = spec_for(ip("198.51.100.7"), 4000, kVip4, proto, shape);
                s.tcp_flags = flags;
                owned.push_back(build(s));
                owned.push_back(build(spec_for(ip("2001:db8:1::7"), 4000, kVip6, proto, shape)));
            }
    auto all_accepted = [&] {
        for (const Bytes& f : owned)
            if (verdict(h, f) != Verdict::accepted)
                return false;
        return true;
    };
    auto all_dropped = [&] {
        for (const Bytes& f : owned)
            if (verdict(h, f) != Verdict::dropped)
                return false;
        return true;
    };

    SECTION("alive cleared: owned traffic dropped and counted") {
        CHECK(all_accepted());
        h.maps().clear_stats();
        h.set_alive(false);
        CHECK(all_dropped());
        CHECK(stats(h, 0).dropped_watchdog == owned.size());
        CHECK(stats(h, 0).accepted == 0);
        CHECK(stats(h, 0).tracked == 0); // a dead host does not record connections either
        // ARP is still answered (every host answers alike; no traffic is taken by it)
        CHECK(h.run(build_arp_request(Mac{2, 0, 0, 0, 0, 9}, ip("10.0.0.9"), kVip4)).action ==
              XDP_TX);
        h.set_alive(true);
        CHECK(all_accepted());
    }
    SECTION("arming with no timeout fails and revives nothing") {
        h.set_alive(false);
        CHECK(h.arm_watchdog(0) == XDP_ABORTED);
        CHECK(all_dropped());
    }
    SECTION("the timer fires after the timeout") {
        using namespace std::chrono_literals;
        h.set_alive(false);
        CHECK(h.arm_watchdog(100'000'000) == XDP_PASS);
        CHECK(h.maps().state().config.alive == 1);
        CHECK(h.maps().state().config.watchdog_deadline_ns > 0);
        CHECK(all_accepted());
        std::this_thread::sleep_for(400ms);
        CHECK(h.maps().state().config.alive == 0);
        h.maps().clear_stats();
        CHECK(all_dropped());
        CHECK(stats(h, 0).dropped_watchdog == owned.size());
        // re-arming (the timer already initialised) works again, and each arm pushes the
        // deadline back
        CHECK(h.arm_watchdog(300'000'000) == XDP_PASS);
        std::this_thread::sleep_for(150ms);
        CHECK(h.arm_watchdog(300'000'000) == XDP_PASS);
        std::this_thread::sleep_for(200ms); // 350 ms after the first arm
        CHECK(all_accepted());
        std::this_thread::sleep_for(400ms);
        CHECK(all_dropped());
    }
    SECTION("the deadline counts from the agent's last look: once past, the dataplane stops") {
        using namespace std::chrono_literals;
        auto now_ns = [] {
            timespec ts{};
            clock_gettime(CLOCK_MONOTONIC, &ts);
            return std::uint64_t(ts.tv_sec) * 1000000000ULL + std::uint64_t(ts.tv_nsec);
        };
        const std::uint64_t timeout = 400'000'000;
        REQUIRE(h.arm_watchdog(10'000'000'000) == XDP_PASS);
        CHECK(all_accepted());
        // The agent's engine last looked 500 ms ago (held up since): the arm stops it.
        CHECK(h.arm_watchdog_until(now_ns() - 100'000'000, timeout) == XDP_DROP);
        CHECK(h.maps().state().config.alive == 0);
        CHECK(all_dropped());
        // It looked 500 ms ago with a timeout of 1 s: alive for the 500 ms left, not for a
        // timeout from the arm.
        CHECK(h.arm_watchdog_until(now_ns() + 500'000'000, 1'000'000'000) == XDP_PASS);
        CHECK(all_accepted());
        std::this_thread::sleep_for(750ms);
        CHECK(h.maps().state().config.alive == 0);
        CHECK(all_dropped());
        // A deadline further away than the timeout is cut to it.
        CHECK(h.arm_watchdog_until(now_ns() + 10'000'000'000, 100'000'000) == XDP_PASS);
        CHECK(h.maps().state().config.watchdog_deadline_ns <= now_ns() + 100'000'000);
        std::this_thread::sleep_for(300ms);
        CHECK(all_dropped());
    }
}

TEST_CASE("VLAN-tagged traffic is decided as untagged traffic, the tag kept") {
    TwoHosts hosts({kVip4, kVip6}, {rule_all(NLB_AFFINITY_NONE)});
    std::mt19937 rng(5);
    int accepted = 0;
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        const IpAddress& vip = family == NLB_FAMILY_V4 ? kVip4 : kVip6;
        for (int i = 0; i < 32; ++i) {
            IpAddress src = random_address(rng, family);
            auto sport = static_cast<std::uint16_t>(1024 + rng() % 60000);
            std::uint8_t owner = half(bucket_of(src, sport, NLB_AFFINITY_NONE));
            for (std::uint8_t proto : {kTcp, kUdp}) {
                Bytes tagged = build(spec_for(src, sport, vip, proto, Shape::vlan));
                Bytes untagged = build(spec_for(src, sport, vip, proto, Shape::plain));
                REQUIRE(tagged[12] == 0x81);
                for (std::uint8_t me : {1, 2}) {
                    DataplaneFixture& h = hosts.host(me);
                    Verdict v = verdict(h, tagged); // classify checks the tag is kept
                    CHECK(v == verdict(h, untagged));
                    CHECK(v == owner_verdict(owner, me));
                    accepted += v == Verdict::accepted;
                }
            }
        }
    }
    CHECK(accepted == 2 * 32 * 2);
    CHECK(total_stats(hosts.h1).malformed == 0);
}

TEST_CASE("ICMP errors go to the host that owns the quoted client; echo to the default host") {
    // affinity none: the quoted client port matters, so the quote must be read right
    TwoHosts hosts({kVip4, kVip6}, {rule_all(NLB_AFFINITY_NONE)});
    hosts.h1.own_all(NLB_RULE_DEFAULT, 1);
    hosts.h2.own_all(NLB_RULE_DEFAULT, 1);
    std::mt19937 rng(17);
    const IpAddress router4 = ip("192.0.2.1"), router6 = ip("2001:db8:ffff::1");

    SECTION("errors quoting VIP → client, TCP and UDP") {
        int on_host1 = 0, n = 0;
        for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
            const IpAddress& vip = family == NLB_FAMILY_V4 ? kVip4 : kVip6;
            std::vector<std::uint8_t> types =
                family == NLB_FAMILY_V4
                    ? std::vector<std::uint8_t>{3 /* unreachable, frag
                                                     needed */
                                                ,
                                                11 /* time exceeded */}
                    : std::vector<std::uint8_t>{1 /* unreachable */, 2 /* packet too big */,
                                                3 /* time exceeded */};
            for (int i = 0; i < 24; ++i) {
                IpAddress client = random_address(rng, family);
                auto cport = static_cast<std::uint16_t>(1024 + rng() % 60000);
                std::uint8_t owner = half(bucket_of(client, cport, NLB_AFFINITY_NONE));
                on_host1 += owner == 1;
                for (std::uint8_t proto : {kTcp, kUdp})
                    for (std::uint8_t type : types)
                        for (bool vlan : {false, true}) {
                            PacketSpec q;
                            q.src = vip;
                            q.dst = client;
                            q.sport = 80;
                            q.dport = cport;
                            q.proto = proto;
                            q.payload = 100;
                            PacketSpec outer;
                            outer.src = family == NLB_FAMILY_V4 ? router4 : router6;
                            outer.dst = vip;
                            if (vlan)
                                outer.vlan = kPriorityTag;
                            Bytes err = build_icmp_error(outer, build(q), type);
                            CAPTURE(client.to_string(), cport, int(proto), int(type), vlan);
                            ++n;
                            CHECK(verdict(hosts.h1, err) == owner_verdict(owner, 1));
                            CHECK(verdict(hosts.h2, err) == owner_verdict(owner, 2));
                        }
            }
        }
        CHECK(on_host1 > 0);
        CHECK(on_host1 < 48);
        CHECK(stats(hosts.h1, 0).accepted + stats(hosts.h2, 0).accepted == std::uint64_t(n));
        CHECK(stats(hosts.h1, 0).tracked == 0); // an error never opens a connection
        CHECK(total_stats(hosts.h1).malformed == 0);
    }
    SECTION("IPv6 errors quoting a fragmented datagram: the first fragment by its ports") {
        // A UDP answer past the MTU, fragmented by the host that sent it (IPv6 routers do not
        // fragment): a Packet Too Big quotes the first fragment, whose ports follow the
        // fragment header; the serving host must get it to lower that client's path MTU.
        int on_host1 = 0;
        for (int i = 0; i < 24; ++i) {
            IpAddress client = random_address(rng, NLB_FAMILY_V6);
            auto cport = static_cast<std::uint16_t>(1024 + rng() % 60000);
            std::uint8_t owner = half(bucket_of(client, cport, NLB_AFFINITY_NONE));
            on_host1 += owner == 1;
            for (bool first : {true, false}) {
                PacketSpec q;
                q.src = kVip6;
                q.dst = client;
                q.sport = 53;
                q.dport = cport;
                q.proto = kUdp;
                q.payload = 1400;
                q.fragment = true;
                q.more_fragments = true;
                q.frag_offset = first ? 0 : 100;
                PacketSpec outer;
                outer.src = router6;
                outer.dst = kVip6;
                Bytes err = build_icmp_error(outer, build(q), 2);
                CAPTURE(client.to_string(), cport, first);
                // a later fragment has no ports: the default host's (host 1 here)
                const std::uint8_t expect = first ? owner : 1;
                CHECK(verdict(hosts.h1, err) == owner_verdict(expect, 1));
                CHECK(verdict(hosts.h2, err) == owner_verdict(expect, 2));
            }
        }
        CHECK(on_host1 > 0);
        CHECK(on_host1 < 24);
        CHECK(total_stats(hosts.h1).malformed == 0);
    }
    SECTION("echo requests: the default host only") {
        for (int i = 0; i < 16; ++i) {
            for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
                PacketSpec echo;
                echo.src = random_address(rng, family);
                echo.dst = family == NLB_FAMILY_V4 ? kVip4 : kVip6;
                echo.proto = family == NLB_FAMILY_V4 ? kIcmp : kIcmp6;
                echo.icmp_type = family == NLB_FAMILY_V4 ? 8 : 128;
                echo.icmp_body = Bytes(56, 0x42);
                Bytes f = build(echo);
                CHECK(verdict(hosts.h1, f) == Verdict::accepted);
                CHECK(verdict(hosts.h2, f) == Verdict::dropped);
            }
        }
        CHECK(stats(hosts.h1, NLB_RULE_DEFAULT).accepted == 32);
        CHECK(stats(hosts.h2, NLB_RULE_DEFAULT).dropped_not_owner == 32);
        // moving the default host moves echo
        hosts.h1.own_all(NLB_RULE_DEFAULT, 2);
        hosts.h2.own_all(NLB_RULE_DEFAULT, 2);
        PacketSpec echo;
        echo.src = ip("198.51.100.1");
        echo.dst = kVip4;
        echo.proto = kIcmp;
        CHECK(verdict(hosts.h1, build(echo)) == Verdict::dropped);
        CHECK(verdict(hosts.h2, build(echo)) == Verdict::accepted);
    }
}

TEST_CASE("heartbeats, dedicated-IP and non-IP traffic pass untouched") {
    DataplaneTables tables({kVip4, kVip6}, {rule_all()});
    DataplaneFixture h;
    h.configure(tables, 1);
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
        h.own_all(slot, 1); // a wrong turn would accept (and rewrite)
    std::vector<Bytes> frames;

    Bytes hb = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x88, 0x6f};
    hb.resize(120, 0x11);
    frames.push_back(hb);
    Bytes lldp = {0x01, 0x80, 0xc2, 0, 0, 0x0e, 2, 0, 0, 0, 0, 2, 0x88, 0xcc};
    lldp.resize(60, 0x22);
    frames.push_back(lldp);
    Bytes vlan_hb = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0,    0,
                     0,    0,    2,    0x81, 0,    0,    5, 0x88, 0x6f};
    vlan_hb.resize(80, 0x33);
    frames.push_back(vlan_hb);
    for (const auto& [src, dst] : {std::pair{ip("198.51.100.7"), ip("10.0.0.11")},
                                   std::pair{ip("2001:db8:1::7"), ip("2001:db8::11")}})
        for (std::uint8_t proto : {kTcp, kUdp})
            for (Shape shape : {Shape::plain, Shape::ip_options, Shape::vlan})
                for (std::uint8_t flags : {kAck, kSyn}) {
                    PacketSpec s = spec_for(src, 5555, dst, proto, shape);
                    s.tcp_flags = flags;
                    frames.push_back(build(s));
                }
    // ARP about the dedicated IP: a request and a reply
    frames.push_back(build_arp_request(Mac{2, 0, 0, 0, 0, 9}, ip("10.0.0.9"), ip("10.0.0.11")));
    Bytes reply = build_arp_request(Mac{2, 0, 0, 0, 0, 9}, ip("10.0.0.9"), ip("10.0.0.11"));
    reply[21] = 2;
    frames.push_back(reply);

    for (const Bytes& f : frames) {
        RunResult r = h.run(f);
        CHECK(r.action == XDP_PASS);
        CHECK(r.out == f);
    }
    nlb_stats t = total_stats(h);
    CHECK(t.accepted == 0);
    CHECK(t.malformed == 0);
    CHECK(t.tracked == 0);
    CHECK(t.arp_replied == 0);
    CHECK(conn_count(h.maps().fds().conns4, sizeof(nlb_conn_key4)) == 0);
}

TEST_CASE("other protocols to a VIP go to every host") {
    TwoHosts hosts({kVip4, kVip6}, {rule_all()});
    hosts.h1.own_all(NLB_RULE_DEFAULT, 1);
    hosts.h2.own_all(NLB_RULE_DEFAULT, 1);
    for (const auto& [src, dst] :
         {std::pair{ip("198.51.100.7"), kVip4}, std::pair{ip("2001:db8:1::7"), kVip6}}) {
        PacketSpec gre;
        gre.src = src;
        gre.dst = dst;
        gre.proto = 47;
        gre.payload = 24;
        Bytes f = build(gre);
        CHECK(verdict(hosts.h1, f) == Verdict::accepted);
        CHECK(verdict(hosts.h2, f) == Verdict::accepted);
    }
    // ICMPv6's own traffic to a VIP (here a neighbour advertisement) also reaches every host
    PacketSpec na;
    na.src = ip("2001:db8:1::7");
    na.dst = kVip6;
    na.proto = kIcmp6;
    na.icmp_type = 136;
    na.icmp_body = Bytes(24, 0);
    CHECK(verdict(hosts.h1, build(na)) == Verdict::accepted);
    CHECK(verdict(hosts.h2, build(na)) == Verdict::accepted);
    CHECK(stats(hosts.h1, NLB_STATS_GLOBAL).passed_other == 2);
    CHECK(stats(hosts.h2, NLB_STATS_GLOBAL).passed_other == 2);
}

} // namespace test_ownership
