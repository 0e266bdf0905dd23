// ARP and IPv6 neighbour answers for VIPs, checked byte by byte.
#include <cstring>
#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_neighbour {

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

// The same IPv6 frame (untagged) with one 8-byte extension header (hop-by-hop by default)
// between the IPv6 header and what followed it.
Bytes with_extension_header(Bytes f, std::uint8_t type = 0) {
    const std::size_t ip6 = 14;
    Bytes ext{f[ip6 + 6], 0, 1, 4, 0, 0, 0, 0}; // next header, length 0, PadN
    f[ip6 + 6] = type;
    std::size_t len = static_cast<std::size_t>(f[ip6 + 4] << 8 | f[ip6 + 5]) + ext.size();
    f[ip6 + 4] = static_cast<std::uint8_t>(len >> 8);
    f[ip6 + 5] = static_cast<std::uint8_t>(len);
    f.insert(f.begin() + ip6 + 40, ext.begin(), ext.end());
    return f;
}

struct Host {
    DataplaneTables tables{{kCluster, kVip4b, kVip6}, {RuleMatch{}}};
    DataplaneFixture dp;
    // vlan: the cluster's (cluster.vlan); a tagged frame of another VLAN is not its business.
    explicit Host(std::uint8_t priority, std::uint16_t vlan = 0) {
        dp.configure(tables, priority);
        dp.maps().state().config.vlan = vlan;
    }
};

} // namespace

TEST_CASE("ARP requests for a VIP are answered with the cluster MAC") {
    auto priority = GENERATE(as<std::uint8_t>{}, 1, 5);
    auto vlan = GENERATE(false, true);
    CAPTURE(int(priority), vlan);
    Host h(priority, vlan ? 0x2a : 0);
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

    // not for a VIP: the stack's business, whatever the request looks like
    const IpAddress dedicated = ip("10.0.0.11");
    Bytes plain = build_arp_request(kRequester, requester_ip, dedicated);
    Bytes ieee802 = plain;
    ieee802[15] = 6;
    for (Bytes f : {plain, ieee802}) {
        if (vlan)
            f = with_vlan(f, 0x2a);
        RunResult r = h.dp.run(f);
        CHECK(r.action == XDP_PASS);
        CHECK(r.out == f);
    }
    // answering switched off: this host answers nothing, and its kernel hears nothing either
    h.dp.maps().state().config.flags &= static_cast<std::uint8_t>(~NLB_CFG_ANSWER_NEIGH);
    Bytes req = build_arp_request(kRequester, requester_ip, kCluster);
    if (vlan)
        req = with_vlan(req, 0x2a);
    RunResult r = h.dp.run(req);
    CHECK(r.action == XDP_DROP);
    Bytes for_dedicated = vlan ? with_vlan(plain, 0x2a) : plain;
    CHECK(h.dp.run(for_dedicated).action == XDP_PASS);
    CHECK(stats(h.dp, NLB_STATS_GLOBAL).arp_replied == 2);
    CHECK(stats(h.dp, NLB_STATS_GLOBAL).neigh_dropped == 1);
    CHECK(stats(h.dp, NLB_STATS_GLOBAL).malformed == 0);
}

// The kernel answers ARP for every address on the interface, VIPs included, with the host's
// own MAC (arp_ignore is left alone for the dedicated IP): whatever ARP about a VIP the
// dataplane does not answer must never reach it.
TEST_CASE("ARP about a VIP that the dataplane does not answer never reaches the kernel") {
    auto vlan = GENERATE(false, true);
    CAPTURE(vlan);
    Host h(2, vlan ? 0x2a : 0);
    const IpAddress requester_ip = ip("10.0.0.7");
    const IpAddress dedicated = ip("10.0.0.11");
    // Offsets in the ARP body of an untagged frame (the VLAN tag is inserted afterwards).
    constexpr std::size_t htype = 14, ptype = 16, hlen = 18, plen = 19, op = 21, spa = 28;

    struct Variant {
        const char* name;
        std::function<void(Bytes&)> change;
    };
    const std::vector<Variant> variants{
        {"hardware type 6 (IEEE 802), which the kernel answers",
         [](Bytes& f) { f[htype + 1] = 6; }},
        {"hardware type 257", [](Bytes& f) { f[htype] = 1; }},
        {"protocol other than IPv4", [](Bytes& f) { f[ptype] = 0x86; }},
        {"hardware address length 8", [](Bytes& f) { f[hlen] = 8; }},
        {"protocol address length 16", [](Bytes& f) { f[plen] = 16; }},
        {"a reply", [](Bytes& f) { f[op] = 2; }},
        {"operation 8 (InARP)", [](Bytes& f) { f[op] = 8; }},
        {"gratuitous reply (another host's announcement)",
         [](Bytes& f) {
             f[op] = 2;
             std::memcpy(&f[spa], &f[spa + 10], 4);
             std::memset(&f[spa + 4], 0xff, 6);
         }},
    };
    std::uint64_t dropped = 0;
    for (const Variant& v : variants) {
        CAPTURE(v.name);
        for (const IpAddress& target : {kCluster, kVip4b}) {
            Bytes f = build_arp_request(kRequester, requester_ip, target);
            v.change(f);
            if (vlan)
                f = with_vlan(f, 0x2a);
            RunResult r = h.dp.run(f);
            CHECK(r.action == XDP_DROP);
            CHECK(stats(h.dp, NLB_STATS_GLOBAL).neigh_dropped == ++dropped);
        }
        // the same about the dedicated IP: untouched, the kernel answers for it
        Bytes f = build_arp_request(kRequester, requester_ip, dedicated);
        v.change(f);
        if (vlan)
            f = with_vlan(f, 0x2a);
        RunResult r = h.dp.run(f);
        CHECK(r.action == XDP_PASS);
        CHECK(r.out == f);
    }
    // a gratuitous request (a node probing the VIP as its own) is a request: answered
    Bytes probe = build_arp_request(kRequester, kCluster, kCluster);
    if (vlan)
        probe = with_vlan(probe, 0x2a);
    CHECK(h.dp.run(probe).action == XDP_TX);
    nlb_stats g = stats(h.dp, NLB_STATS_GLOBAL);
    CHECK(g.neigh_dropped == dropped);
    CHECK(g.arp_replied == 1);
    CHECK(g.malformed == 0);
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
        h.dp.maps().state().config.vlan = 7;
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
    SECTION("for another address: passed untouched") {
        Bytes other = build_neighbor_solicitation(kRequester, solicitor, ip("2001:db8::11"));
        Bytes hop = other;
        hop[14 + 7] = 64;
        for (const Bytes& f : {other, hop, with_extension_header(other)}) {
            RunResult r = h.dp.run(f);
            CHECK(r.action == XDP_PASS);
            CHECK(r.out == f);
        }
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).neigh_dropped == 0);
    }
    SECTION("invalid (RFC 4861 §7.1.1), or answering off: dropped, not passed") {
        Bytes hop = build_neighbor_solicitation(kRequester, solicitor, kVip6);
        hop[14 + 7] = 64;
        Bytes code = build_neighbor_solicitation(kRequester, solicitor, kVip6);
        code[14 + 40 + 1] = 1;
        for (const Bytes& f : {hop, code})
            CHECK(h.dp.run(f).action == XDP_DROP);
        h.dp.maps().state().config.flags = 0;
        Bytes ns = build_neighbor_solicitation(kRequester, solicitor, kVip6);
        CHECK(h.dp.run(ns).action == XDP_DROP);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).nd_replied == 0);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).neigh_dropped == 3);
        CHECK(stats(h.dp, NLB_STATS_GLOBAL).malformed == 0);
    }
}

// The kernel answers solicitations for every address on the interface with the host's own
// MAC, those behind extension headers too: ND about a VIP that the dataplane does not answer
// never reaches it, and neither do other hosts' advertisements of a VIP.
TEST_CASE("ND about a VIP that the dataplane does not answer never reaches the kernel") {
    Host h(3);
    const IpAddress solicitor = ip("2001:db8::7");
    Bytes ns = build_neighbor_solicitation(kRequester, solicitor, kVip6, true);
    Bytes unicast = ns; // neighbour unreachability detection: to the VIP itself
    std::memcpy(&unicast[14 + 24], kVip6.words.data(), 16);
    Bytes na = ns; // another host's announcement: unsolicited, to all nodes
    na[14 + 40] = 136;
    na[14 + 40 + 4] = 0x20;
    na[14 + 40 + 24] = 2;
    const std::uint8_t all_nodes[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::memcpy(&na[14 + 24], all_nodes, 16);

    for (const auto& [name, f] : std::vector<std::pair<const char*, Bytes>>{
             {"behind a hop-by-hop header", with_extension_header(ns)},
             {"to the VIP, behind a destination-options header",
              with_extension_header(unicast, 60)},
             {"advertisement of the VIP", na},
             {"advertisement of the VIP behind a hop-by-hop header", with_extension_header(na)},
             {"advertisement of the VIP, in the cluster's VLAN", with_vlan(na, 7)}}) {
        CAPTURE(name);
        h.dp.maps().state().config.vlan = f[12] == 0x81 ? 7 : 0;
        CHECK(h.dp.run(f).action == XDP_DROP);
    }
    h.dp.maps().state().config.vlan = 0;
    nlb_stats g = stats(h.dp, NLB_STATS_GLOBAL);
    CHECK(g.neigh_dropped == 5);
    CHECK(g.nd_replied == 0);
    CHECK(g.malformed == 0);
    // answered as usual without the extension header, to the VIP too
    CHECK(h.dp.run(ns).action == XDP_TX);
    CHECK(h.dp.run(unicast).action == XDP_TX);
    CHECK(stats(h.dp, NLB_STATS_GLOBAL).nd_replied == 2);
}

} // namespace test_neighbour

namespace test_neighbour {

TEST_CASE("another machine claiming a VIP is counted and noted for the agent") {
    Host h(2);
    const Mac intruder = kRequester;
    const Mac ours = cluster_mac(kCluster.words[0], ClusterMode::unicast);
    auto claims = [&] { return stats(h.dp, NLB_STATS_GLOBAL).vip_claims; };
    auto noted = [&](const IpAddress& vip) {
        const nlb_claim& c = h.dp.maps().state().claim;
        CHECK(c.family == vip.family);
        CHECK(std::memcmp(c.addr, vip.words.data(), 16) == 0);
        CHECK(Bytes(c.mac, c.mac + 6) == bytes_of(intruder));
    };

    // Neither a client's request nor this cluster's own announcement is a claim.
    CHECK(h.dp.run(build_arp_request(intruder, ip("10.0.0.7"), kCluster)).action == XDP_TX);
    CHECK(h.dp.run(build_arp_request(ours, kCluster, kCluster)).action == XDP_TX);
    CHECK(claims() == 0);
    CHECK(h.dp.maps().state().claim.family == 0);

    // A gratuitous ARP of the VIP from another machine: still answered (a request), claimed.
    CHECK(h.dp.run(build_arp_request(intruder, kCluster, kCluster)).action == XDP_TX);
    CHECK(claims() == 1);
    noted(kCluster);
    // Asking for something else with a VIP as its own address: passed on, claimed.
    Bytes asking = build_arp_request(intruder, kVip4b, ip("10.0.0.1"));
    RunResult r = h.dp.run(asking);
    CHECK(r.action == XDP_PASS);
    CHECK(r.out == asking);
    CHECK(claims() == 2);
    noted(kVip4b);

    // A neighbour advertisement of the IPv6 VIP with another machine's link-layer address.
    Bytes na = build_neighbor_solicitation(intruder, ip("2001:db8::7"), kVip6, true);
    na[14 + 40] = 136; // advertisement
    na[14 + 40 + 4] = 0x20;
    na[14 + 40 + 24] = 2; // target link-layer address (the intruder's, from the solicitation)
    CHECK(h.dp.run(na).action == XDP_DROP);
    CHECK(claims() == 3);
    noted(kVip6);
    // ... and with the cluster MAC, as every host of the cluster advertises it: no claim.
    std::memcpy(&na[14 + 40 + 26], ours.data(), 6);
    CHECK(h.dp.run(na).action == XDP_DROP);
    CHECK(claims() == 3);
}

} // namespace test_neighbour
