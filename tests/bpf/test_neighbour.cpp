// ARP and IPv6 neighbour answers for VIPs, checked byte by byte.
#include <cstring>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace {

const IpAddress kCluster = ip("10.0.0.100");
const IpAddress kVip4b = ip("10.0.0.101");
const IpAddress kVip6 = ip("2001:db8::100");
const Mac kRequester{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

Bytes slice(const Bytes& b, std::size_t off, std::size_t len) {
    REQUIRE(off + len <= b.size());
    return Bytes(b.begin() + static_cast<long>(off), b.begin() + static_cast<long>(off + len));
}

Bytes bytes_of(const IpAddress& a) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(a.words.data());
    return Bytes(p, p + (a.family == NLB_FAMILY_V4 ? 4 : 16));
}

Bytes bytes_of(const std::array<std::uint8_t, 6>& m) {
    return Bytes(m.begin(), m.end());
}

Bytes with_vlan(Bytes f, std::uint16_t tci) {
    f.insert(f.begin() + 12,
             {0x81, 0x00, static_cast<std::uint8_t>(tci >> 8), static_cast<std::uint8_t>(tci)});
    return f;
}

struct Host {
    DataplaneTables tables{{kCluster, kVip4b, kVip6}, {RuleMatch{}}};
    DataplaneFixture dp;
    explicit Host(std::uint8_t priority) { dp.configure(tables, priority); }
};

} // namespace

TEST_CASE("ARP requests for a VIP are answered with the cluster MAC") {
    auto priority = GENERATE(as<std::uint8_t>{}, 1, 5);
    auto vlan = GENERATE(false, true);
    CAPTURE(int(priority), vlan);
    Host h(priority);
    const std::size_t o = vlan ? 4 : 0;
    const IpAddress requester_ip = ip("10.0.0.7");

    for (const IpAddress& vip : {kCluster, kVip4b}) {
        Bytes req = build_arp_request(kRequester, requester_ip, vip,
                                      vlan ? std::optional<std::uint16_t>(0x2a) : std::nullopt);
        RunResult r = h.dp.run(req);
        REQUIRE(r.action == XDP_TX);
        const Bytes& a = r.out;
        REQUIRE(a.size() == req.size());
        CHECK(slice(a, 0, 6) == bytes_of(kRequester));
        CHECK(slice(a, 6, 6) == bytes_of(masked_source_mac(kCluster.words[0], priority)));
        CHECK(slice(a, 6, 6) == Bytes{0x02, priority, 10, 0, 0, 100});
        if (vlan)
            CHECK(slice(a, 12, 4) == Bytes{0x81, 0x00, 0x00, 0x2a});
        CHECK(slice(a, 12 + o, 2) == Bytes{0x08, 0x06});
        std::size_t p = 14 + o;
        CHECK(slice(a, p, 6) == Bytes{0x00, 0x01, 0x08, 0x00, 6, 4}); // Ethernet, IPv4
        CHECK(slice(a, p + 6, 2) == Bytes{0x00, 0x02});               // reply
        // sender: the cluster MAC (of the cluster IP, for every VIP) and the VIP
        CHECK(slice(a, p + 8, 6) == bytes_of(cluster_mac(kCluster.words[0], ClusterMode::unicast)));
        CHECK(slice(a, p + 8, 6) == Bytes{0x02, 0xbf, 10, 0, 0, 100});
        CHECK(slice(a, p + 14, 4) == bytes_of(vip));
        // target: the requester
        CHECK(slice(a, p + 18, 6) == bytes_of(kRequester));
        CHECK(slice(a, p + 24, 4) == bytes_of(requester_ip));
        // the padding is left alone
        CHECK(slice(a, p + 28, a.size() - p - 28) == slice(req, p + 28, req.size() - p - 28));
    }
    CHECK(stats(h.dp, NLB_STATS_GLOBAL).arp_replied == 2);

    // not for a VIP, not a request, or answering switched off: the stack's business
    Bytes dedicated = build_arp_request(kRequester, requester_ip, ip("10.0.0.11"));
    Bytes reply = build_arp_request(kRequester, requester_ip, kCluster);
    reply[21] = 2;
    Bytes odd_hlen = build_arp_request(kRequester, requester_ip, kCluster);
    odd_hlen[18] = 8;
    for (Bytes f : {dedicated, reply, odd_hlen}) {
        if (vlan)
            f = with_vlan(f, 0x2a);
        RunResult r = h.dp.run(f);
        CHECK(r.action == XDP_PASS);
        CHECK(r.out == f);
    }
    h.dp.maps().state().config.flags &= static_cast<std::uint8_t>(~NLB_CFG_ANSWER_NEIGH);
    Bytes req = build_arp_request(kRequester, requester_ip, kCluster);
    if (vlan)
        req = with_vlan(req, 0x2a);
    RunResult r = h.dp.run(req);
    CHECK(r.action == XDP_PASS);
    CHECK(r.out == req);
    CHECK(stats(h.dp, NLB_STATS_GLOBAL).arp_replied == 2);
    CHECK(stats(h.dp, NLB_STATS_GLOBAL).malformed == 0);
}

namespace {

// Checks a neighbour advertisement for kVip6 sent to (dst_mac, dst_ip) by host `priority`.
void check_na(const Bytes& a, std::size_t o, std::uint8_t priority, const Bytes& dst_mac,
              const Bytes& dst_ip, std::uint8_t flags) {
    REQUIRE(a.size() == 14 + o + 40 + 32);
    CHECK(slice(a, 0, 6) == dst_mac);
    CHECK(slice(a, 6, 6) == bytes_of(masked_source_mac(kCluster.words[0], priority)));
    CHECK(slice(a, 12 + o, 2) == Bytes{0x86, 0xdd});
    std::size_t ip6 = 14 + o;
    CHECK(slice(a, ip6, 4) == Bytes{0x60, 0, 0, 0});
    CHECK(slice(a, ip6 + 4, 2) == Bytes{0, 32}); // payload length
    CHECK(a[ip6 + 6] == 58);                     // ICMPv6
    CHECK(a[ip6 + 7] == 255);                    // hop limit
    CHECK(slice(a, ip6 + 8, 16) == bytes_of(kVip6));
    CHECK(slice(a, ip6 + 24, 16) == dst_ip);
    std::size_t icmp = ip6 + 40;
    CHECK(a[icmp] == 136); // neighbour advertisement
    CHECK(a[icmp + 1] == 0);
    CHECK(a[icmp + 4] == flags);
    CHECK(slice(a, icmp + 5, 3) == Bytes{0, 0, 0});
    CHECK(slice(a, icmp + 8, 16) == bytes_of(kVip6)); // target
    CHECK(a[icmp + 24] == 2);                         // target link-layer address
    CHECK(a[icmp + 25] == 1);                         // 8 bytes
    CHECK(slice(a, icmp + 26, 6) == bytes_of(cluster_mac(kCluster.words[0], ClusterMode::unicast)));
    // the checksum, over the pseudo-header and the message, as a receiver checks it
    Bytes pseudo = slice(a, ip6 + 8, 32);
    pseudo.insert(pseudo.end(), {0, 0, 0, 32, 0, 0, 0, 58});
    Bytes msg = slice(a, icmp, 32);
    pseudo.insert(pseudo.end(), msg.begin(), msg.end());
    CHECK(inet_checksum(pseudo.data(), pseudo.size()) == 0);
    CHECK((a[icmp + 2] | a[icmp + 3]) != 0);
}

} // namespace

TEST_CASE("neighbour solicitations for a VIP are answered with the cluster MAC") {
    auto priority = GENERATE(as<std::uint8_t>{}, 1, 5);
    CAPTURE(int(priority));
    Host h(priority);
    const IpAddress solicitor = ip("2001:db8::7");

    SECTION("with the source link-layer option: same size") {
        Bytes ns = build_neighbor_solicitation(kRequester, solicitor, kVip6, true);
        REQUIRE(ns.size() == 14 + 40 + 32);
        RunResult r = h.dp.run(ns);
        REQUIRE(r.action == XDP_TX);
        check_na(r.out, 0, priority, bytes_of(kRequester), bytes_of(solicitor), 0x60);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).nd_replied == 1);
    }
    SECTION("without the option: the frame grows by 8 bytes") {
        Bytes ns = build_neighbor_solicitation(kRequester, solicitor, kVip6, false);
        REQUIRE(ns.size() == 14 + 40 + 24);
        RunResult r = h.dp.run(ns);
        REQUIRE(r.action == XDP_TX);
        CHECK(r.out.size() == ns.size() + 8);
        check_na(r.out, 0, priority, bytes_of(kRequester), bytes_of(solicitor), 0x60);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).nd_replied == 1);
    }
    SECTION("inside a VLAN tag, the tag kept") {
        Bytes ns = with_vlan(build_neighbor_solicitation(kRequester, solicitor, kVip6, true), 7);
        RunResult r = h.dp.run(ns);
        REQUIRE(r.action == XDP_TX);
        CHECK(slice(r.out, 12, 4) == Bytes{0x81, 0x00, 0x00, 0x07});
        check_na(r.out, 4, priority, bytes_of(kRequester), bytes_of(solicitor), 0x60);
    }
    SECTION("duplicate address detection (source ::): to all nodes, not solicited") {
        Bytes ns = build_neighbor_solicitation(kRequester, ip("::"), kVip6, false);
        RunResult r = h.dp.run(ns);
        REQUIRE(r.action == XDP_TX);
        check_na(r.out, 0, priority, Bytes{0x33, 0x33, 0, 0, 0, 1}, bytes_of(ip("ff02::1")), 0x20);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).nd_replied == 1);
    }
    SECTION("not for us: passed untouched") {
        Bytes other = build_neighbor_solicitation(kRequester, solicitor, ip("2001:db8::11"));
        Bytes hop = build_neighbor_solicitation(kRequester, solicitor, kVip6);
        hop[14 + 7] = 64; // not hop limit 255: not a valid solicitation (RFC 4861 §7.1.1)
        Bytes code = build_neighbor_solicitation(kRequester, solicitor, kVip6);
        code[14 + 40 + 1] = 1;
        for (const Bytes& f : {other, hop, code}) {
            RunResult r = h.dp.run(f);
            CHECK(r.action == XDP_PASS);
            CHECK(r.out == f);
        }
        h.dp.maps().state().config.flags = 0;
        Bytes ns = build_neighbor_solicitation(kRequester, solicitor, kVip6);
        RunResult r = h.dp.run(ns);
        CHECK(r.action == XDP_PASS);
        CHECK(r.out == ns);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).nd_replied == 0);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).malformed == 0);
    }
}
