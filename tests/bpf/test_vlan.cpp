// cluster.vlan (issue 11, defect 10): a cluster on VLAN 100 of a trunk balances the frames
// tagged 100 exactly as an untagged cluster balances untagged ones, keeps their tag, answers
// ARP and neighbour solicitations inside the tag, and passes every frame of another VLAN (or
// untagged) untouched: never dropped, never answered, counted nowhere. An untagged cluster
// leaves tagged frames alone the same way. Heartbeats: test_heartbeat_rate.cpp.
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <nlb/limits.h>

#include "bpf_test_util.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_vlan {

namespace {

const IpAddress kVip4 = ip("10.0.0.100");
const IpAddress kVip6 = ip("2001:db8::100");
const Mac kRequester{0x02, 0, 0, 0, 0, 0x77};
constexpr std::uint16_t kVlan = 100;

// Two hosts of a cluster on VLAN `vlan` (0: untagged), every bucket split by half().
struct VlanHosts : TwoHosts {
    explicit VlanHosts(std::uint16_t vlan)
        : TwoHosts({kVip4, kVip6}, {rule_ports(std::nullopt, 0, 65535, Protocol::both,
                                               NLB_MODE_MULTIPLE, NLB_AFFINITY_NONE)}) {
        // as the agent writes it
        for (DataplaneFixture* h : {&h1, &h2}) {
            nlb_config cfg = h->maps().state().config;
            cfg.vlan = vlan;
            h->maps().write_config(cfg);
        }
    }
};

PacketSpec to_vip(const IpAddress& src, std::uint16_t sport, std::uint8_t proto,
                  std::optional<std::uint16_t> tci) {
    PacketSpec s;
    s.src = src;
    s.dst = src.family == NLB_FAMILY_V4 ? kVip4 : kVip6;
    s.sport = sport;
    s.proto = proto;
    s.payload = 10;
    s.vlan = tci;
    return s;
}

// The frame with its 802.1Q TPID replaced by 802.1ad's (a service tag).
Bytes as_service_tag(Bytes f) {
    f[12] = 0x88;
    f[13] = 0xa8;
    return f;
}

// The frame with a second (inner) tag of `tci` behind its first.
Bytes with_inner_tag(Bytes f, std::uint16_t tci) {
    f.insert(f.begin() + 16,
             {0x81, 0x00, static_cast<std::uint8_t>(tci >> 8), static_cast<std::uint8_t>(tci)});
    return f;
}

// Every counter of every slot still zero: the frame was nobody's business.
bool nothing_counted(DataplaneFixture& dp) {
    nlb_stats z{};
    nlb_stats t = total_stats(dp);
    return std::memcmp(&t, &z, sizeof(t)) == 0;
}

} // namespace

TEST_CASE("VLAN cluster: frames of its VLAN are balanced, each by one host, the tag kept") {
    VlanHosts hosts(kVlan);
    std::mt19937 rng(11);
    int accepted = 0;
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6})
        for (int i = 0; i < 32; ++i) {
            IpAddress src = random_address(rng, family);
            auto sport = static_cast<std::uint16_t>(1024 + rng() % 60000);
            std::uint8_t owner = half(bucket_of(src, sport, NLB_AFFINITY_NONE));
            for (std::uint8_t proto : {kTcp, kUdp}) {
                // priority bits in the tag do not matter, the VLAN id does
                for (std::uint16_t tci : {kVlan, static_cast<std::uint16_t>(0xa000 | kVlan)}) {
                    Bytes tagged = build(to_vip(src, sport, proto, tci));
                    for (const Bytes& f : {tagged, as_service_tag(tagged)}) {
                        CAPTURE(src.to_string(), sport, int(proto), tci, int(f[13]));
                        Verdict v1 = verdict(hosts.h1, f); // classify: only the MAC changed
                        Verdict v2 = verdict(hosts.h2, f);
                        CHECK(v1 == (owner == 1 ? Verdict::accepted : Verdict::dropped));
                        CHECK(v2 == (owner == 2 ? Verdict::accepted : Verdict::dropped));
                        accepted += (v1 == Verdict::accepted) + (v2 == Verdict::accepted);
                    }
                }
            }
        }
    CHECK(accepted == 2 * 32 * 2 * 2 * 2);
    nlb_stats s1 = stats(hosts.h1, 0), s2 = stats(hosts.h2, 0);
    CHECK(s1.accepted + s2.accepted == static_cast<std::uint64_t>(accepted));
    CHECK(s1.dropped_not_owner + s2.dropped_not_owner == static_cast<std::uint64_t>(accepted));
}

TEST_CASE("VLAN cluster: a tagged SYN is tracked as an untagged one is") {
    VlanHosts hosts(kVlan);
    std::mt19937 rng(12);
    Source src = source_where(rng, NLB_FAMILY_V4, NLB_AFFINITY_NONE,
                              [](std::uint16_t b) { return half(b) == 1; });
    PacketSpec syn = to_vip(src.addr, src.port, kTcp, kVlan);
    syn.tcp_flags = kSyn;
    CHECK(verdict(hosts.h1, build(syn)) == Verdict::accepted);
    CHECK(conn_of(hosts.h1, syn).has_value());
    CHECK(verdict(hosts.h2, build(syn)) == Verdict::dropped);
    CHECK_FALSE(conn_of(hosts.h2, syn).has_value());
}

TEST_CASE("VLAN cluster: frames of other VLANs, untagged ones and double tags pass untouched") {
    VlanHosts hosts(kVlan);
    std::mt19937 rng(13);
    std::vector<std::pair<const char*, Bytes>> frames;
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6})
        for (std::uint8_t proto : {kTcp, kUdp}) {
            IpAddress src = random_address(rng, family);
            frames.push_back({"VLAN 200", build(to_vip(src, 4000, proto, 200))});
            frames.push_back(
                {"VLAN 200, service tag", as_service_tag(build(to_vip(src, 4000, proto, 200)))});
            frames.push_back({"untagged", build(to_vip(src, 4000, proto, std::nullopt))});
            PacketSpec later = to_vip(src, 4000, proto, std::nullopt); // IPv4: its short path
            later.fragment = later.more_fragments = true;
            later.frag_offset = 5;
            frames.push_back({"untagged later fragment", build(later)});
            frames.push_back(
                {"priority tag (no VLAN)", build(to_vip(src, 4000, proto, kPriorityTag))});
            frames.push_back(
                {"VLAN 100 inside service VLAN 100",
                 with_inner_tag(as_service_tag(build(to_vip(src, 4000, proto, kVlan))), kVlan)});
        }
    frames.push_back(
        {"ARP for the VIP, VLAN 200", build_arp_request(kRequester, ip("10.0.0.7"), kVip4, 200)});
    frames.push_back(
        {"ARP for the VIP, untagged", build_arp_request(kRequester, ip("10.0.0.7"), kVip4)});
    Bytes ns = build_neighbor_solicitation(kRequester, ip("2001:db8::7"), kVip6, true);
    frames.push_back({"neighbour solicitation for the VIP, untagged", ns});
    Bytes hb = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2,   0,    0,
                0,    0,    9,    0x81, 0x00, 0,    200, 0x88, 0x6f};
    hb.resize(120, 0x11);
    frames.push_back({"heartbeat, VLAN 200", hb});
    for (const auto& [name, f] : frames) {
        CAPTURE(name);
        for (DataplaneFixture* dp : {&hosts.h1, &hosts.h2}) {
            RunResult r = dp->run(f);
            CHECK(r.action == XDP_PASS);
            CHECK(r.out == f);
            CHECK(nothing_counted(*dp));
        }
    }
}

// The kernel strips any number of priority tags (VLAN id 0) and takes what is inside as the
// frame: under two of them, a heartbeat must still pay its budget, and IP to a VIP, or ARP
// for one, must still be decided, not passed to every host's stack.
TEST_CASE("stacked priority tags are read through, as the kernel reads them") {
    for (std::uint16_t vlan : {std::uint16_t{0}, kVlan}) {
        CAPTURE(vlan);
        VlanHosts hosts(vlan);
        std::mt19937 rng(15 + vlan);
        IpAddress src = random_address(rng, NLB_FAMILY_V4);
        const std::uint8_t owner = half(bucket_of(src, 5000, NLB_AFFINITY_NONE));
        // the frame's own tag (or a priority tag), then one or two priority tags inside
        Bytes once = build(to_vip(src, 5000, kUdp, vlan ? vlan : kPriorityTag));
        for (const Bytes& f :
             {with_inner_tag(once, 0), with_inner_tag(with_inner_tag(once, 0), 0)}) {
            CHECK(verdict(hosts.host(owner), f) == Verdict::accepted);
            CHECK(verdict(hosts.host(owner == 1 ? 2 : 1), f) == Verdict::dropped);
        }
        // ARP for the VIP: answered in its tags, never passed to the kernel
        Bytes arp = with_inner_tag(
            build_arp_request(kRequester, ip("10.0.0.7"), kVip4, vlan ? vlan : kPriorityTag), 0);
        for (DataplaneFixture* dp : {&hosts.h1, &hosts.h2}) {
            RunResult r = dp->run(arp);
            CHECK_FALSE((r.action == XDP_PASS && r.out == arp));
        }
        // more tags than are read: malformed, not passed
        Bytes deep = once;
        for (int i = 0; i < NLB_MAX_TAGS; ++i)
            deep = with_inner_tag(deep, 0);
        const auto before = total_stats(hosts.h1).malformed;
        CHECK(hosts.h1.run(deep).action == XDP_DROP);
        CHECK(total_stats(hosts.h1).malformed == before + 1);
    }
}

TEST_CASE("untagged cluster: tagged frames are another VLAN's, priority tags its own") {
    VlanHosts hosts(0);
    std::mt19937 rng(14);
    IpAddress src = random_address(rng, NLB_FAMILY_V4);
    std::uint8_t owner = half(bucket_of(src, 5000, NLB_AFFINITY_NONE));
    Bytes tagged = build(to_vip(src, 5000, kTcp, kVlan));
    Bytes arp = build_arp_request(kRequester, ip("10.0.0.7"), kVip4, kVlan);
    for (DataplaneFixture* dp : {&hosts.h1, &hosts.h2})
        for (const Bytes& f : {tagged, arp}) {
            RunResult r = dp->run(f);
            CHECK(r.action == XDP_PASS);
            CHECK(r.out == f);
            CHECK(nothing_counted(*dp));
        }
    Bytes priority = build(to_vip(src, 5000, kTcp, kPriorityTag));
    CHECK(verdict(hosts.host(owner), priority) == Verdict::accepted);
    CHECK(verdict(hosts.host(owner == 1 ? 2 : 1), priority) == Verdict::dropped);
}

TEST_CASE("VLAN cluster: ARP and neighbour solicitations for a VIP are answered in the tag") {
    VlanHosts hosts(kVlan);
    const std::uint16_t tci = 0x6000 | kVlan; // priority 3: the answer keeps it too
    const IpAddress requester = ip("10.0.0.7");
    Bytes req = build_arp_request(kRequester, requester, kVip4, tci);
    const Bytes cmac = {0x02, 0xbf, 10, 0, 0, 100};
    for (std::uint8_t me : {1, 2}) {
        RunResult r = hosts.host(me).run(req);
        REQUIRE(r.action == XDP_TX);
        const Bytes& a = r.out;
        REQUIRE(a.size() == req.size());
        CHECK(Bytes(a.begin(), a.begin() + 6) == Bytes(kRequester.begin(), kRequester.end()));
        CHECK(Bytes(a.begin() + 6, a.begin() + 12) == Bytes{0x02, me, 10, 0, 0, 100});
        CHECK(Bytes(a.begin() + 12, a.begin() + 18) == Bytes{0x81, 0x00, 0x60, 100, 0x08, 0x06});
        CHECK(Bytes(a.begin() + 18 + 6, a.begin() + 18 + 8) == Bytes{0x00, 0x02}); // a reply
        CHECK(Bytes(a.begin() + 18 + 8, a.begin() + 18 + 14) == cmac);             // sender MAC
        CHECK(Bytes(a.begin() + 18 + 14, a.begin() + 18 + 18) == Bytes{10, 0, 0, 100});
        CHECK(stats(hosts.host(me), NLB_STATS_GLOBAL).arp_replied == 1);
    }

    Bytes ns = build_neighbor_solicitation(kRequester, ip("2001:db8::7"), kVip6, true);
    ns.insert(ns.begin() + 12,
              {0x81, 0x00, static_cast<std::uint8_t>(tci >> 8), static_cast<std::uint8_t>(tci)});
    RunResult r = hosts.h1.run(ns);
    REQUIRE(r.action == XDP_TX);
    CHECK(Bytes(r.out.begin() + 12, r.out.begin() + 18) ==
          Bytes{0x81, 0x00, 0x60, 100, 0x86, 0xdd});
    CHECK(r.out[18 + 40] == 136); // an advertisement
    CHECK(Bytes(r.out.begin() + 18 + 40 + 26, r.out.begin() + 18 + 40 + 32) == cmac); // its MAC
    CHECK(stats(hosts.h1, NLB_STATS_GLOBAL).nd_replied == 1);
}

} // namespace test_vlan
