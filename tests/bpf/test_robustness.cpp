// Malformed input: every truncation of valid frames, frames whose lengths agree but whose
// headers are cut, and thousands of random frames. Nothing may crash, nothing malformed may be
// accepted, and what is cut short on its way to a VIP is counted malformed.
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_robustness {

namespace {

const IpAddress kVip4 = ip("10.0.0.100");
const IpAddress kVip6 = ip("2001:db8::100");
const IpAddress kClient4 = ip("198.51.100.7");
const IpAddress kClient6 = ip("2001:db8:1::7");

// A host that owns every bucket of every slot: whatever slips through is accepted.
struct Greedy {
    DataplaneTables tables{{kVip4, kVip6}, {RuleMatch{}}};
    DataplaneFixture dp;
    Greedy() {
        dp.configure(tables, 1);
        for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
            dp.own_all(slot, 1);
    }
};

PacketSpec tcp_spec(const IpAddress& src, const IpAddress& dst) {
    PacketSpec s;
    s.src = src;
    s.dst = dst;
    s.payload = 20;
    return s;
}

Bytes icmp_error(const IpAddress& client, const IpAddress& vip, std::uint8_t proto) {
    PacketSpec q = tcp_spec(vip, client);
    q.proto = proto;
    std::swap(q.sport, q.dport);
    PacketSpec outer;
    outer.src = client.family == NLB_FAMILY_V4 ? ip("192.0.2.1") : ip("2001:db8:ffff::1");
    outer.dst = vip;
    return build_icmp_error(outer, build(q), client.family == NLB_FAMILY_V4 ? 3 : 2);
}

struct Named {
    const char* name;
    Bytes frame;
};

std::vector<Named> valid_frames() {
    std::vector<Named> v;
    v.push_back({"ipv4 tcp", build(tcp_spec(kClient4, kVip4))});
    PacketSpec s = tcp_spec(kClient4, kVip4);
    s.proto = kUdp;
    v.push_back({"ipv4 udp", build(s)});
    s = tcp_spec(kClient4, kVip4);
    s.ipv4_options = 12;
    v.push_back({"ipv4 tcp with options", build(s)});
    s = tcp_spec(kClient4, kVip4);
    s.fragment = true;
    s.more_fragments = true;
    v.push_back({"ipv4 first fragment", build(s)});
    s = tcp_spec(kClient6, kVip6);
    s.ipv6_ext = {0, 43, 60, 51};
    v.push_back({"ipv6 tcp with extension headers", build(s)});
    s = tcp_spec(kClient6, kVip6);
    s.proto = kUdp;
    s.fragment = true;
    s.more_fragments = true;
    v.push_back({"ipv6 udp first fragment", build(s)});
    s = tcp_spec(kClient4, kVip4);
    s.vlan = 0x6000; // a priority tag (no VLAN id): the untagged cluster's frame
    v.push_back({"priority-tagged ipv4 tcp", build(s)});
    s = tcp_spec(kClient6, kVip6);
    s.vlan = 0x6000;
    s.proto = kUdp;
    v.push_back({"priority-tagged ipv6 udp", build(s)});
    v.push_back({"icmp error", icmp_error(kClient4, kVip4, kTcp)});
    v.push_back({"icmpv6 error", icmp_error(kClient6, kVip6, kUdp)});
    PacketSpec echo;
    echo.src = kClient6;
    echo.dst = kVip6;
    echo.proto = kIcmp6;
    echo.icmp_type = 128;
    echo.icmp_body = Bytes(16, 1);
    v.push_back({"icmpv6 echo", build(echo)});
    v.push_back({"neighbour solicitation",
                 build_neighbor_solicitation(Mac{2, 0, 0, 0, 0, 7}, kClient6, kVip6, true)});
    v.push_back({"neighbour solicitation without option",
                 build_neighbor_solicitation(Mac{2, 0, 0, 0, 0, 7}, kClient6, kVip6, false)});
    return v;
}

void put16(Bytes& b, std::size_t off, std::uint16_t v) {
    b[off] = static_cast<std::uint8_t>(v >> 8);
    b[off + 1] = static_cast<std::uint8_t>(v);
}

// Cuts an IP frame (no VLAN) to `ip_bytes` of IP datagram with its length field made to agree
// (and the IPv4 checksum redone), then pads it as a NIC pads a short frame.
Bytes cut_consistent(const Bytes& f, std::size_t ip_bytes, std::size_t padding) {
    Bytes b(f.begin(), f.begin() + static_cast<long>(14 + ip_bytes));
    if (b[12] == 0x08) {
        put16(b, 16, static_cast<std::uint16_t>(ip_bytes));
        put16(b, 24, 0);
        std::size_t hlen = (b[14] & 0x0f) * 4u;
        put16(b, 24, inet_checksum(&b[14], hlen));
    } else {
        put16(b, 18, static_cast<std::uint16_t>(ip_bytes - 40));
    }
    b.resize(b.size() + padding, 0);
    return b;
}

} // namespace

TEST_CASE("the kernel runs frames from 14 bytes on") {
    Greedy g;
    CHECK_THROWS(g.dp.run(Bytes(13, 0)));
    CHECK(g.dp.run(Bytes(14, 0)).action == XDP_PASS);
}

TEST_CASE("every truncation of a valid frame is dropped as malformed, never accepted") {
    Greedy g;
    auto frames = valid_frames();
    // each whole frame is accepted (or answered): the truncations below fail for their cut
    for (const auto& [name, f] : frames) {
        CAPTURE(name);
        Verdict v = verdict(g.dp, f);
        CHECK((v == Verdict::accepted || v == Verdict::tx));
    }
    Bytes arp = build_arp_request(Mac{2, 0, 0, 0, 0, 7}, kClient4, kVip4);
    Bytes vlan_arp = build_arp_request(Mac{2, 0, 0, 0, 0, 7}, kClient4, kVip4, 0x6000);
    CHECK(g.dp.run(arp).action == XDP_TX);
    g.dp.maps().clear_stats();

    for (const auto& [name, f] : frames) {
        for (std::size_t len = 14; len < f.size(); ++len) {
            Bytes t(f.begin(), f.begin() + static_cast<long>(len));
            CAPTURE(name, len);
            std::uint64_t before = total_stats(g.dp).malformed;
            CHECK(verdict(g.dp, t) == Verdict::dropped);
            CHECK(total_stats(g.dp).malformed == before + 1);
        }
    }
    // ARP: cut inside the 28-byte body is malformed; the 60-byte frame's padding is not needed
    for (const Bytes& f : {arp, vlan_arp}) {
        std::size_t body_end = f[12] == 0x81 ? 46 : 42;
        for (std::size_t len = 14; len < f.size(); ++len) {
            Bytes t(f.begin(), f.begin() + static_cast<long>(len));
            CAPTURE(f[12], len);
            std::uint64_t before = total_stats(g.dp).malformed;
            RunResult r = g.dp.run(t);
            if (len < body_end) {
                CHECK(r.action == XDP_DROP);
                CHECK(total_stats(g.dp).malformed == before + 1);
            } else {
                CHECK(r.action == XDP_TX);
            }
        }
    }
    nlb_stats t = total_stats(g.dp);
    CHECK(t.accepted == 0);
    CHECK(t.tracked == 0);
    CHECK(t.nd_replied == 0);
}

TEST_CASE("headers cut short with lengths that agree are malformed") {
    Greedy g;
    std::vector<Bytes> cuts;
    PacketSpec s = tcp_spec(kClient4, kVip4);
    Bytes tcp4 = build(s);
    s.proto = kUdp;
    Bytes udp4 = build(s);
    s = tcp_spec(kClient4, kVip4);
    s.ipv4_options = 8;
    Bytes tcp4_opts = build(s);
    s = tcp_spec(kClient6, kVip6);
    Bytes tcp6_plain = build(s); // no extension header: the fast path
    s.proto = kUdp;
    Bytes udp6_plain = build(s);
    s = tcp_spec(kClient6, kVip6);
    s.ipv6_ext = {0, 60};
    Bytes tcp6 = build(s);
    s.proto = kUdp;
    Bytes udp6 = build(s);
    for (std::size_t padding : {0, 26}) {
        for (std::size_t k = 0; k < 20; ++k) {
            cuts.push_back(cut_consistent(tcp4, 20 + k, padding));      // TCP header cut
            cuts.push_back(cut_consistent(tcp4_opts, 28 + k, padding)); // after options
            cuts.push_back(cut_consistent(tcp6, 40 + 16 + k, padding));
            cuts.push_back(cut_consistent(tcp6_plain, 40 + k, padding));
        }
        for (std::size_t k = 0; k < 8; ++k) {
            cuts.push_back(cut_consistent(udp4, 20 + k, padding));
            cuts.push_back(cut_consistent(udp6, 40 + 16 + k, padding));
            cuts.push_back(cut_consistent(udp6_plain, 40 + k, padding));
        }
        for (std::size_t k = 0; k < 16; ++k) // inside the extension headers
            cuts.push_back(cut_consistent(tcp6, 40 + k, padding));
        for (std::size_t k = 0; k < 32; ++k) { // the ICMP header or the quote cut
            Bytes e4 = icmp_error(kClient4, kVip4, kTcp);
            cuts.push_back(cut_consistent(e4, 20 + k, padding));
        }
        for (std::size_t k = 0; k < 52; ++k) {
            Bytes e6 = icmp_error(kClient6, kVip6, kTcp);
            cuts.push_back(cut_consistent(e6, 40 + k, padding));
        }
        // (an empty ICMPv6 message is no solicitation, and a solicited-node address no VIP)
        for (std::size_t k = 1; k < 24; ++k) {
            Bytes ns = build_neighbor_solicitation(Mac{2, 0, 0, 0, 0, 7}, kClient6, kVip6, false);
            cuts.push_back(cut_consistent(ns, 40 + k, padding));
        }
    }
    // impossible header fields
    Bytes bad = tcp4;
    bad[14 + 20 + 12] = 4 << 4; // TCP data offset below 5 words
    cuts.push_back(bad);
    bad = tcp4;
    bad[14 + 20 + 12] = 15 << 4; // TCP data offset past the datagram
    cuts.push_back(bad);
    bad = udp4;
    put16(bad, 14 + 20 + 4, 7); // UDP length below its header
    cuts.push_back(bad);
    bad = udp6;
    put16(bad, 14 + 40 + 16 + 4, 0);
    cuts.push_back(bad);
    bad = udp6_plain;
    put16(bad, 14 + 40 + 4, 7);
    cuts.push_back(bad);
    // UDP lengths past the datagram's end, which the stack discards as short: the fast and
    // the general paths (IPv4 with options, IPv6 with extension headers)
    s = tcp_spec(kClient4, kVip4);
    s.proto = kUdp;
    s.ipv4_options = 8;
    const Bytes udp4_opts = build(s);
    for (const auto& [frame, at] :
         {std::pair{udp4, 14 + 20}, std::pair{udp4_opts, 14 + 28}, std::pair{udp6, 14 + 40 + 16},
          std::pair{udp6_plain, 14 + 40}}) {
        bad = frame;
        put16(bad, static_cast<std::size_t>(at) + 4,
              static_cast<std::uint16_t>(frame.size() - static_cast<std::size_t>(at) + 1));
        cuts.push_back(bad);
        bad = frame;
        put16(bad, static_cast<std::size_t>(at) + 4, 1024);
        cuts.push_back(bad);
    }
    bad = tcp6_plain;
    bad[14 + 40 + 12] = 4 << 4;
    cuts.push_back(bad);
    bad = tcp6_plain;
    bad[14 + 40 + 12] = 15 << 4;
    cuts.push_back(bad);
    bad = tcp6_plain;
    put16(bad, 14 + 4, static_cast<std::uint16_t>(tcp6_plain.size() - 14 - 40 + 1));
    cuts.push_back(bad); // payload length past the frame
    bad = tcp4;
    bad[14] = 0x44; // IHL 4
    cuts.push_back(bad);
    bad = tcp4;
    put16(bad, 16, 19); // total length below the header
    cuts.push_back(bad);
    bad = tcp6;
    bad[14] = 0x40; // version 4 in an IPv6 frame
    cuts.push_back(bad);
    s = tcp_spec(kClient6, kVip6);
    s.ipv6_ext = {0, 60, 60, 60, 60}; // more extension headers than walked
    cuts.push_back(build(s));

    std::size_t i = 0;
    for (const Bytes& f : cuts) {
        CAPTURE(i++, f.size());
        std::uint64_t before = total_stats(g.dp).malformed;
        CHECK(verdict(g.dp, f) == Verdict::dropped);
        CHECK(total_stats(g.dp).malformed == before + 1);
    }
    CHECK(total_stats(g.dp).accepted == 0);

    // More extension headers than walked to an address that is neither a VIP nor a group:
    // the dedicated IP's, say, whose traffic passes whatever it carries.
    s.dst = ip("2001:db8::11");
    const std::uint64_t before = total_stats(g.dp).malformed;
    CHECK(verdict(g.dp, build(s)) == Verdict::passed);
    s.dst = ip("ff02::1:ff00:100"); // a solicited-node group: malformed still
    CHECK(verdict(g.dp, build(s)) == Verdict::dropped);
    CHECK(total_stats(g.dp).malformed == before + 1);
}

namespace {

// Random frames run through a host that owns nothing and tracks nothing: any accept is a bug.
struct Fuzz {
    DataplaneTables tables{{kVip4, kVip6, ip("10.0.0.101")}, {RuleMatch{}, [] {
                                                                  RuleMatch r;
                                                                  r.vip = 2;
                                                                  r.first_port = 80;
                                                                  r.last_port = 90;
                                                                  r.affinity = NLB_AFFINITY_NONE;
                                                                  return r;
                                                              }()}};
    DataplaneFixture dp;
    std::mt19937 rng{20240601};
    std::size_t runs = 0, tx = 0, passed = 0;

    Fuzz() {
        dp.configure(tables, 1);
        for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot)
            dp.own_all(slot, 2);
    }
    std::uint8_t byte() { return static_cast<std::uint8_t>(rng()); }
    Bytes random_bytes(std::size_t n) {
        Bytes b(n);
        for (auto& x : b)
            x = byte();
        return b;
    }
    void check(const Bytes& f) {
        ++runs;
        RunResult r = dp.run(f);
        bool ok = r.action == XDP_PASS || r.action == XDP_DROP || r.action == XDP_TX;
        if (!ok)
            FAIL_CHECK("verdict " << r.action << " for a frame of " << f.size() << " bytes");
        if (r.action == XDP_TX) {
            ++tx;
            std::size_t l3 = f[12] == 0x81 || f[12] == 0x88 ? 16 : 12;
            bool neigh =
                (f[l3] == 0x08 && f[l3 + 1] == 0x06) || (f[l3] == 0x86 && f[l3 + 1] == 0xdd);
            if (!neigh)
                FAIL_CHECK("XDP_TX of a frame that is neither ARP nor IPv6");
        }
        if (r.action == XDP_PASS) {
            ++passed;
            // a pass changes at most the destination MAC
            if (r.out.size() != f.size() || !std::equal(f.begin() + 6, f.end(), r.out.begin() + 6))
                FAIL_CHECK("a passed frame of " << f.size() << " bytes was changed");
        }
    }
};

} // namespace

TEST_CASE("random frames: no crash, no accept by a host that owns nothing") {
    Fuzz z;
    const std::uint16_t ethertypes[] = {0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x886f};
    // fully random bytes, half of them with an interesting EtherType
    for (int i = 0; i < 2000; ++i) {
        Bytes f = z.random_bytes(14 + z.rng() % 200);
        if (i % 2) {
            std::uint16_t et = ethertypes[z.rng() % 6];
            put16(f, 12, et);
            if ((et == 0x8100 || et == 0x88a8) && f.size() >= 18)
                put16(f, 16, ethertypes[z.rng() % 3]);
        }
        z.check(f);
    }
    // valid Ethernet and IP headers to a VIP, random behind them
    const std::uint8_t protos[] = {kTcp, kUdp, kIcmp, kIcmp6, 0, 43, 44, 60, 51, 47};
    for (int i = 0; i < 4000; ++i) {
        bool v6 = z.rng() % 2;
        PacketSpec s;
        s.src = random_address(z.rng, v6 ? NLB_FAMILY_V6 : NLB_FAMILY_V4);
        s.dst = v6 ? kVip6 : (z.rng() % 2 ? kVip4 : ip("10.0.0.101"));
        s.proto = protos[z.rng() % 10];
        if (z.rng() % 4 == 0)
            s.vlan = static_cast<std::uint16_t>(z.rng());
        s.payload = z.rng() % 64;
        Bytes f = build(s);
        std::size_t l3 = s.vlan ? 18 : 14;
        std::size_t l4 = l3 + (v6 ? 40 : 20);
        // scramble what follows the IP header; now and then the IP header's own fields too
        for (std::size_t j = l4; j < f.size(); ++j)
            f[j] = z.byte();
        if (z.rng() % 4 == 0)
            f.resize(l4 + z.rng() % 80, z.byte());
        switch (z.rng() % 6) {
        case 0: // random length field
            put16(f, l3 + (v6 ? 4 : 2), static_cast<std::uint16_t>(z.rng() % 200));
            break;
        case 1: // random fragment bits (IPv4) / next header (IPv6)
            if (v6)
                f[l3 + 6] = z.byte();
            else
                put16(f, l3 + 6, static_cast<std::uint16_t>(z.rng()));
            break;
        case 2:
            if (!v6)
                f[l3] = static_cast<std::uint8_t>(0x40 | (z.rng() % 16)); // any IHL
            break;
        default:
            break;
        }
        z.check(f);
    }
    // valid frames with a few bytes flipped
    auto frames = valid_frames();
    frames.push_back({"arp", build_arp_request(Mac{2, 0, 0, 0, 0, 7}, kClient4, kVip4)});
    for (int i = 0; i < 2000; ++i) {
        Bytes f = frames[z.rng() % frames.size()].frame;
        for (int flips = 1 + z.rng() % 4; flips; --flips)
            f[12 + z.rng() % (f.size() - 12)] = z.byte();
        z.check(f);
    }
    nlb_stats t = total_stats(z.dp);
    CHECK(t.accepted == 0);
    CHECK(t.tracked == 0);
    CHECK(conn_count(z.dp.maps().fds().conns4, sizeof(nlb_conn_key4)) == 0);
    CHECK(conn_count(z.dp.maps().fds().conns6, sizeof(nlb_conn_key6)) == 0);
    // the generators reach the interesting paths
    CHECK(t.malformed > 500);
    CHECK(t.dropped_not_owner > 500);
    CHECK(t.malformed + t.dropped_not_owner + t.dropped_disabled + z.passed + z.tx > 0);
    CHECK(z.tx > 0);
    CHECK(z.runs == 8000);
}

} // namespace test_robustness
