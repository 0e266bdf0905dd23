// Fragmented TCP and UDP datagrams: every fragment goes to the host that the first fragment
// (the one with the ports) selects, under the port rule of its destination port and the
// affinity key with the port; a later fragment that comes before its first goes to every
// host and is counted. Two fixtures play two hosts with the same tables; IPv4 and IPv6.
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_fragments {

namespace {

const IpAddress kVip4 = ip("10.0.0.100");
const IpAddress kVip6 = ip("2001:db8::100");

const IpAddress& vip_of(std::uint8_t family) {
    return family == NLB_FAMILY_V4 ? kVip4 : kVip6;
}

// One datagram in three fragments: the first (transport header, ports), a middle and the last.
struct Datagram {
    Bytes first, middle, last;
};

Datagram fragments_of(PacketSpec s) {
    Datagram d;
    s.fragment = true;
    s.payload = 64;
    s.more_fragments = true;
    s.frag_offset = 0;
    d.first = build(s);
    s.frag_offset = 5;
    d.middle = build(s);
    s.frag_offset = 11;
    s.more_fragments = false;
    d.last = build(s);
    return d;
}

PacketSpec spec(const IpAddress& src, std::uint16_t sport, std::uint16_t dport,
                std::uint8_t proto) {
    PacketSpec s;
    s.src = src;
    s.dst = vip_of(src.family);
    s.sport = sport;
    s.dport = dport;
    s.proto = proto;
    return s;
}

Verdict owner_verdict(std::uint8_t owner, std::uint8_t me) {
    return owner == me ? Verdict::accepted : Verdict::dropped;
}

RuleMatch rule(std::uint16_t first, std::uint16_t last, std::uint8_t mode,
               std::uint8_t affinity = NLB_AFFINITY_SINGLE) {
    return rule_ports(std::nullopt, first, last, Protocol::both, mode, affinity);
}

std::uint64_t unmatched(DataplaneFixture& h) {
    return stats(h, NLB_STATS_GLOBAL).fragments_unmatched;
}

std::uint64_t recorded(DataplaneFixture& h) {
    return stats(h, NLB_STATS_GLOBAL).fragments_recorded;
}

} // namespace

TEST_CASE("every fragment follows its first fragment's host, whatever the affinity") {
    auto affinity =
        GENERATE(as<std::uint8_t>{}, NLB_AFFINITY_NONE, NLB_AFFINITY_SINGLE, NLB_AFFINITY_NETWORK);
    CAPTURE(int(affinity));
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 65535, NLB_MODE_MULTIPLE, affinity)});
    std::mt19937 rng(300 + affinity);
    int datagrams = 0;
    // IPv4 without options: later fragments on the fast path; with them, the general path.
    for (auto [family, options] : {std::pair<std::uint8_t, std::size_t>{NLB_FAMILY_V4, 0},
                                   {NLB_FAMILY_V4, 8},
                                   {NLB_FAMILY_V6, 0}}) {
        CAPTURE(int(family), options);
        int on_host1 = 0;
        for (int i = 0; i < 40; ++i) {
            IpAddress src = random_address(rng, family);
            auto sport = static_cast<std::uint16_t>(1024 + rng() % 60000);
            // the bucket of the whole datagram: the port counts under affinity none
            std::uint8_t owner = half(bucket_of(src, sport, affinity));
            on_host1 += owner == 1;
            for (std::uint8_t proto : {kTcp, kUdp}) {
                PacketSpec s = spec(src, sport, 80, proto);
                s.frag_id = static_cast<std::uint32_t>(rng());
                s.ipv4_options = options;
                Datagram d = fragments_of(s);
                CAPTURE(src.to_string(), sport, int(proto));
                for (std::uint8_t me : {1, 2}) {
                    DataplaneFixture& h = hosts.host(me);
                    CHECK(verdict(h, d.first) == owner_verdict(owner, me));
                    CHECK(verdict(h, d.middle) == owner_verdict(owner, me));
                    CHECK(verdict(h, d.last) == owner_verdict(owner, me));
                    CHECK(verdict(h, d.last) == owner_verdict(owner, me)); // a duplicate
                }
                ++datagrams;
            }
        }
        CHECK(on_host1 > 0);
        CHECK(on_host1 < 40);
    }
    for (std::uint8_t me : {1, 2}) {
        DataplaneFixture& h = hosts.host(me);
        nlb_stats s = stats(h, 0);
        CHECK(s.accepted + s.dropped_not_owner == 4u * datagrams);
        CHECK(s.tracked == 0); // ACK segments: nothing opens
        CHECK(recorded(h) == static_cast<std::uint64_t>(datagrams));
        CHECK(unmatched(h) == 0);
        CHECK(total_stats(h).malformed == 0);
    }
    CHECK(stats(hosts.h1, 0).accepted == stats(hosts.h2, 0).dropped_not_owner);
}

TEST_CASE("a later fragment before its first goes to every host's stack and is counted") {
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 65535, NLB_MODE_MULTIPLE)});
    std::mt19937 rng(301);
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        CAPTURE(int(family));
        IpAddress src = random_address(rng, family);
        std::uint8_t owner = half(bucket_of(src, 0, NLB_AFFINITY_SINGLE));
        PacketSpec s = spec(src, 5353, 53, kUdp);
        s.frag_id = 0x00c0ffee;
        Datagram d = fragments_of(s);
        for (std::uint8_t me : {1, 2}) {
            DataplaneFixture& h = hosts.host(me);
            h.maps().clear_stats();
            // last-first (as some senders do): nobody knows the owner yet
            CHECK(verdict(h, d.last) == Verdict::accepted); // passed with this host's MAC
            CHECK(unmatched(h) == 1);
            CHECK(stats(h, 0).accepted == 0); // handed on, not accepted
            // the first fragment decides; the rest follow it
            CHECK(verdict(h, d.first) == owner_verdict(owner, me));
            CHECK(verdict(h, d.middle) == owner_verdict(owner, me));
            CHECK(unmatched(h) == 1);
            // another datagram of the same addresses (another ID) has no record
            PacketSpec other = s;
            other.frag_id = 0x00c0fff0;
            CHECK(verdict(h, fragments_of(other).middle) == Verdict::accepted);
            CHECK(unmatched(h) == 2);
            // nor has another protocol's datagram under the same IPv4 ID
            if (family == NLB_FAMILY_V4) {
                other = s;
                other.proto = kTcp;
                CHECK(verdict(h, fragments_of(other).middle) == Verdict::accepted);
                CHECK(unmatched(h) == 3);
            }
        }
    }
}

TEST_CASE("a later IPv4 fragment past its frame is malformed, one to no VIP passes untouched, "
          "on the fast path and the general path alike") {
    TwoHosts hosts({kVip4}, {rule(0, 65535, NLB_MODE_MULTIPLE)});
    DataplaneFixture& h = hosts.h1;
    for (std::size_t options : {0, 8}) { // the fast path; the general path
        CAPTURE(options);
        PacketSpec s = spec(ip("198.51.100.9"), 4000, 80, kUdp);
        s.ipv4_options = options;
        for (std::uint8_t proto : {kTcp, kUdp}) {
            s.proto = proto;
            PacketSpec elsewhere = s;
            elsewhere.dst = ip("10.0.0.7");
            CHECK(verdict(h, fragments_of(elsewhere).middle) == Verdict::passed);
            const std::uint64_t before = total_stats(h).malformed;
            Bytes later = fragments_of(s).middle;
            later.resize(later.size() - 8); // its total length now runs past the frame
            CHECK(verdict(h, later) == Verdict::dropped);
            elsewhere.dst_mac = {0x02, 0, 0, 0, 0, 0x77}; // whatever the address and the MAC
            later = fragments_of(elsewhere).middle;
            later.resize(later.size() - 8);
            CHECK(verdict(h, later) == Verdict::dropped);
            later = fragments_of(s).middle; // a total length shorter than its header
            later[16] = 0;
            later[17] = 19;
            CHECK(verdict(h, later) == Verdict::dropped);
            CHECK(total_stats(h).malformed == before + 3);
        }
    }
}

TEST_CASE("a record older than the reassembly timeout is not followed") {
    std::mt19937 rng(302);
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        CAPTURE(int(family));
        TwoHosts hosts({kVip4, kVip6}, {rule(0, 65535, NLB_MODE_MULTIPLE)});
        IpAddress src = random_address(rng, family);
        std::uint8_t owner = half(bucket_of(src, 0, NLB_AFFINITY_SINGLE));
        std::uint8_t other = owner == 1 ? 2 : 1;
        DataplaneFixture& h = hosts.host(other);
        REQUIRE(h.arm_watchdog(60'000'000'000ull) == XDP_PASS);
        Datagram d = fragments_of(spec(src, 4000, 4000, kUdp));
        CHECK(verdict(h, d.first) == Verdict::dropped);
        CHECK(verdict(h, d.middle) == Verdict::dropped);

        // The records' clock is the watchdog deadline: as if the agent had armed it for the
        // timeout and a second more.
        __u64& deadline = h.maps().state().config.watchdog_deadline_ns;
        deadline += NLB_FRAG_TIMEOUT_NS - 1'000'000'000ull;
        CHECK(verdict(h, d.middle) == Verdict::dropped); // not yet
        deadline += 2'000'000'000ull;
        std::uint64_t before = unmatched(h);
        CHECK(verdict(h, d.last) == Verdict::accepted); // passed: the datagram is history
        CHECK(unmatched(h) == before + 1);
    }
}

TEST_CASE("a reused ID: the newer first fragment is the one the later fragments follow") {
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 65535, NLB_MODE_MULTIPLE, NLB_AFFINITY_NONE)});
    std::mt19937 rng(303);
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        CAPTURE(int(family));
        IpAddress src = random_address(rng, family);
        // two source ports of one client in different hosts' buckets, one IP ID
        std::uint16_t port1 = 0, port2 = 0;
        for (std::uint16_t p = 2000; !port1 || !port2; ++p)
            (half(bucket_of(src, p, NLB_AFFINITY_NONE)) == 1 ? port1 : port2) = p;
        Datagram old_one = fragments_of(spec(src, port1, 9, kUdp));
        Datagram new_one = fragments_of(spec(src, port2, 9, kUdp));
        for (std::uint8_t me : {1, 2}) {
            DataplaneFixture& h = hosts.host(me);
            CHECK(verdict(h, old_one.first) == owner_verdict(1, me));
            CHECK(verdict(h, new_one.first) == owner_verdict(2, me));
            CHECK(verdict(h, new_one.last) == owner_verdict(2, me));
        }
    }
}

TEST_CASE("fragments to ports 1024-65535 beside a disabled 0-1023 are load-balanced") {
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 1023, NLB_MODE_DISABLED), rule(1024, 65535, NLB_MODE_MULTIPLE)});
    std::mt19937 rng(304);
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6})
        for (std::uint8_t proto : {kTcp, kUdp}) {
            CAPTURE(int(family), int(proto));
            IpAddress src = random_address(rng, family);
            std::uint8_t owner = half(bucket_of(src, 0, NLB_AFFINITY_SINGLE));
            PacketSpec s = spec(src, 40000, 8080, proto);
            s.frag_id = 7;
            Datagram open = fragments_of(s);
            s.dport = 80;
            s.frag_id = 8;
            Datagram closed = fragments_of(s);
            for (std::uint8_t me : {1, 2}) {
                DataplaneFixture& h = hosts.host(me);
                CHECK(verdict(h, open.first) == owner_verdict(owner, me));
                CHECK(verdict(h, open.middle) == owner_verdict(owner, me));
                CHECK(verdict(h, open.last) == owner_verdict(owner, me));
                CHECK(verdict(h, closed.first) == Verdict::dropped);
                CHECK(verdict(h, closed.last) == Verdict::dropped);
            }
        }
    for (std::uint8_t me : {1, 2}) {
        DataplaneFixture& h = hosts.host(me);
        CHECK(stats(h, 0).dropped_disabled == 4 * 2);
        CHECK(stats(h, 0).accepted + stats(h, 0).dropped_not_owner == 0);
        CHECK(stats(h, 1).accepted + stats(h, 1).dropped_not_owner == 4 * 3);
        CHECK(unmatched(h) == 0);
    }
    CHECK(stats(hosts.h1, 1).accepted == stats(hosts.h2, 1).dropped_not_owner);
}

TEST_CASE("fragments to a single-host rule's port go to that rule's host") {
    // 5000 is handled by host 2 alone; the ports around it are split between the hosts
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 4999, NLB_MODE_MULTIPLE), rule(5000, 5000, NLB_MODE_SINGLE),
                    rule(5001, 65535, NLB_MODE_MULTIPLE)});
    hosts.h1.own_all(1, 2);
    hosts.h2.own_all(1, 2);
    std::mt19937 rng(305);
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6})
        for (std::uint8_t proto : {kTcp, kUdp}) {
            CAPTURE(int(family), int(proto));
            // a client whose bucket is host 1's under the multiple rules
            Source src = source_where(rng, family, NLB_AFFINITY_SINGLE,
                                      [](std::uint16_t b) { return half(b) == 1; });
            PacketSpec s = spec(src.addr, src.port, 5000, proto);
            Datagram d = fragments_of(s);
            s.dport = 5001;
            s.frag_id = 0x4321;
            Datagram beside = fragments_of(s);
            for (std::uint8_t me : {1, 2}) {
                DataplaneFixture& h = hosts.host(me);
                CHECK(verdict(h, d.first) == owner_verdict(2, me));
                CHECK(verdict(h, d.middle) == owner_verdict(2, me));
                CHECK(verdict(h, d.last) == owner_verdict(2, me));
                CHECK(verdict(h, beside.first) == owner_verdict(1, me));
                CHECK(verdict(h, beside.last) == owner_verdict(1, me));
            }
        }
    CHECK(stats(hosts.h2, 1).accepted == 4 * 3);
    CHECK(stats(hosts.h1, 1).dropped_not_owner == 4 * 3);
}

TEST_CASE("affinity none: a fragmented TCP segment goes to its connection's host") {
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 65535, NLB_MODE_MULTIPLE, NLB_AFFINITY_NONE)});
    std::mt19937 rng(306);
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        CAPTURE(int(family));
        int checked = 0;
        while (checked < 8) {
            Source c =
                source_where(rng, family, NLB_AFFINITY_NONE, [](std::uint16_t) { return true; });
            std::uint8_t owner = half(bucket_of(c.addr, c.port, NLB_AFFINITY_NONE));
            // only clients whose address alone would pick the other host tell the difference
            if (half(bucket_of(c.addr, 0, NLB_AFFINITY_NONE)) == owner)
                continue;
            ++checked;
            PacketSpec s = spec(c.addr, c.port, 443, kTcp);
            Bytes whole = build(s);
            s.frag_id = static_cast<std::uint32_t>(rng());
            Datagram d = fragments_of(s);
            CAPTURE(c.addr.to_string(), c.port);
            for (std::uint8_t me : {1, 2}) {
                DataplaneFixture& h = hosts.host(me);
                CHECK(verdict(h, whole) == owner_verdict(owner, me));
                CHECK(verdict(h, d.first) == owner_verdict(owner, me));
                CHECK(verdict(h, d.middle) == owner_verdict(owner, me));
                CHECK(verdict(h, d.last) == owner_verdict(owner, me));
            }
        }
    }
}

TEST_CASE("a fragmented segment of a connection kept after its bucket moved follows the "
          "connection") {
    // host 1 accepted the connection's SYN, then the bucket moved to host 2 while host 1
    // still serves what it recorded
    DataplaneTables tables({kVip4, kVip6}, {RuleMatch{}});
    DataplaneFixture h1, h2;
    h1.configure(tables, 1);
    h2.configure(tables, 2);
    h1.own_all(0, 1);
    h2.own_all(0, 1);
    std::mt19937 rng(307);
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        CAPTURE(int(family));
        IpAddress src = random_address(rng, family);
        std::uint16_t moved = bucket_of(src, 0, NLB_AFFINITY_SINGLE);
        PacketSpec s = spec(src, 33333, 443, kTcp);
        s.tcp_flags = kSyn;
        REQUIRE(verdict(h1, build(s)) == Verdict::accepted);
        REQUIRE(conn_of(h1, s));
        auto set = [&](DataplaneFixture& h, std::uint16_t e, std::uint16_t rest) {
            h.set_buckets(0, [=](std::uint16_t b) { return b == moved ? e : rest; });
        };
        set(h1, 2 | NLB_BKT_TRACKED_HERE, 1 | NLB_BKT_MINE);
        set(h2, 2 | NLB_BKT_MINE | NLB_BKT_DIRTY_OTHER, 1);

        s.tcp_flags = kAck;
        Datagram d = fragments_of(s);
        std::uint64_t dirty = stats(h2, 0).dropped_dirty;
        CHECK(verdict(h1, d.first) == Verdict::accepted);
        CHECK(verdict(h1, d.middle) == Verdict::accepted);
        CHECK(verdict(h1, d.last) == Verdict::accepted);
        CHECK(verdict(h2, d.first) == Verdict::dropped);
        CHECK(verdict(h2, d.middle) == Verdict::dropped);
        CHECK(verdict(h2, d.last) == Verdict::dropped);
        CHECK(stats(h2, 0).dropped_dirty == dirty + 1); // the first, as a whole segment would

        // and a new connection's fragmented SYN on the same bucket is the new owner's
        PacketSpec syn = spec(src, 44444, 443, kTcp);
        syn.tcp_flags = kSyn;
        syn.frag_id = 99;
        Datagram opening = fragments_of(syn);
        CHECK(verdict(h1, opening.first) == Verdict::dropped);
        CHECK(verdict(h1, opening.last) == Verdict::dropped);
        CHECK(verdict(h2, opening.first) == Verdict::accepted);
        CHECK(verdict(h2, opening.last) == Verdict::accepted);
        CHECK(conn_of(h2, syn)); // recorded as an unfragmented SYN would be
        set(h1, 1 | NLB_BKT_MINE, 1 | NLB_BKT_MINE);
        set(h2, 1, 1);
    }
}

TEST_CASE("an IPv6 atomic fragment is decided as a whole datagram") {
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 1023, NLB_MODE_DISABLED), rule(1024, 65535, NLB_MODE_MULTIPLE)});
    std::mt19937 rng(308);
    IpAddress src = random_address(rng, NLB_FAMILY_V6);
    std::uint8_t owner = half(bucket_of(src, 0, NLB_AFFINITY_SINGLE));
    PacketSpec s = spec(src, 40000, 8080, kUdp);
    s.fragment = true; // a fragment header with offset 0 and no more fragments
    s.payload = 32;
    Bytes atomic = build(s);
    for (std::uint8_t me : {1, 2}) {
        DataplaneFixture& h = hosts.host(me);
        CHECK(verdict(h, atomic) == owner_verdict(owner, me));
        CHECK(recorded(h) == 0);
    }
}

TEST_CASE("the watchdog stops the followers of an accepted first fragment") {
    TwoHosts hosts({kVip4, kVip6}, {rule(0, 65535, NLB_MODE_MULTIPLE)});
    std::mt19937 rng(309);
    Source c = source_where(rng, NLB_FAMILY_V4, NLB_AFFINITY_SINGLE,
                            [](std::uint16_t b) { return half(b) == 1; });
    Datagram d = fragments_of(spec(c.addr, c.port, 80, kUdp));
    CHECK(verdict(hosts.h1, d.first) == Verdict::accepted);
    hosts.h1.set_alive(false);
    CHECK(verdict(hosts.h1, d.last) == Verdict::dropped);
    CHECK(stats(hosts.h1, 0).dropped_watchdog == 1);
}

} // namespace test_fragments
