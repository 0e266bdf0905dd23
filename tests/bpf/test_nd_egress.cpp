// The TC egress program (bpf/nd_egress.h): what it does to the packets the host sends, and
// that the agent's loader puts it on an interface only when told the cluster has an IPv6 VIP.
#include <fcntl.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "bpf_test_util.hpp"
#include "dataplane_loader.hpp"
#include "private_netns.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_nd_egress {

namespace {

const IpAddress kCluster = ip("10.0.0.100");
const IpAddress kVip6 = ip("2001:db8::100");
const IpAddress kDedicated6 = ip("2001:db8::11");
const IpAddress kClient6 = ip("2001:db8::7");
const Mac kHostMac{0x02, 0, 0, 0, 0, 0x01};

// Offsets in an untagged ND frame.
constexpr std::size_t kIcmpOff = 14 + 40;
constexpr std::size_t kOptOff = kIcmpOff + 24;

struct Host {
    DataplaneTables tables{{kCluster, kVip6}, {RuleMatch{}}};
    DataplaneFixture dp;
    Host() { dp.configure(tables, 1); }
};

Bytes cluster_mac_bytes() {
    MacAddress m = cluster_mac(kCluster.words[0], ClusterMode::unicast);
    return Bytes(m.begin(), m.end());
}

// Whether the ICMPv6 checksum of an untagged frame holds, as a receiver checks it.
bool icmp6_checksum_ok(const Bytes& f) {
    std::size_t len = static_cast<std::size_t>(f[18] << 8 | f[19]);
    Bytes pseudo(f.begin() + 22, f.begin() + 54);
    pseudo.insert(pseudo.end(), {0, 0, static_cast<std::uint8_t>(len >> 8),
                                 static_cast<std::uint8_t>(len), 0, 0, 0, 58});
    pseudo.insert(pseudo.end(), f.begin() + kIcmpOff,
                  f.begin() + static_cast<long>(kIcmpOff + len));
    return inet_checksum(pseudo.data(), pseudo.size()) == 0;
}

void fix_icmp6_checksum(Bytes& f) {
    f[kIcmpOff + 2] = 0;
    f[kIcmpOff + 3] = 0;
    std::size_t len = static_cast<std::size_t>(f[18] << 8 | f[19]);
    Bytes pseudo(f.begin() + 22, f.begin() + 54);
    pseudo.insert(pseudo.end(), {0, 0, static_cast<std::uint8_t>(len >> 8),
                                 static_cast<std::uint8_t>(len), 0, 0, 0, 58});
    pseudo.insert(pseudo.end(), f.begin() + kIcmpOff,
                  f.begin() + static_cast<long>(kIcmpOff + len));
    std::uint16_t c = inet_checksum(pseudo.data(), pseudo.size());
    f[kIcmpOff + 2] = static_cast<std::uint8_t>(c >> 8);
    f[kIcmpOff + 3] = static_cast<std::uint8_t>(c);
}

// What the kernel sends to resolve a client when it replies from `from`: a solicitation with
// the host's MAC as source link-layer address.
Bytes host_solicitation(const IpAddress& from) {
    Bytes f = build_neighbor_solicitation(kHostMac, from, kClient6, true);
    REQUIRE(icmp6_checksum_ok(f));
    return f;
}

// Its answer to a client's solicitation: an advertisement with the target link-layer option.
Bytes host_advertisement(const IpAddress& from) {
    Bytes f = build_neighbor_solicitation(kHostMac, from, from, true);
    f[kIcmpOff] = 136;
    f[kIcmpOff + 4] = 0x60; // solicited, override
    f[kOptOff] = 2;
    fix_icmp6_checksum(f);
    return f;
}

} // namespace

TEST_CASE("egress: ND the host sends from a VIP advertises the cluster MAC") {
    Host h;
    for (const Bytes& f : {host_solicitation(kVip6), host_advertisement(kVip6)}) {
        CAPTURE(static_cast<int>(f[kIcmpOff]));
        RunResult r = h.dp.run_egress(f);
        REQUIRE(r.action == TC_ACT_OK);
        REQUIRE(r.out.size() == f.size());
        CHECK(Bytes(r.out.begin() + kOptOff + 2, r.out.begin() + kOptOff + 8) ==
              cluster_mac_bytes());
        CHECK(r.out[kOptOff] == f[kOptOff]); // the option keeps its type and length
        CHECK(r.out[kOptOff + 1] == 1);
        CHECK(icmp6_checksum_ok(r.out));
        // nothing else changed
        Bytes rest_in(f.begin(), f.begin() + kIcmpOff + 2),
            rest_out(r.out.begin(), r.out.begin() + kIcmpOff + 2);
        CHECK(rest_in == rest_out);
        CHECK(Bytes(f.begin() + kIcmpOff + 4, f.begin() + kOptOff + 2) ==
              Bytes(r.out.begin() + kIcmpOff + 4, r.out.begin() + kOptOff + 2));
    }
}

TEST_CASE("egress: everything else leaves untouched") {
    Host h;
    std::vector<std::pair<std::string, Bytes>> frames;
    PacketSpec tcp;
    tcp.src = kVip6;
    tcp.dst = kClient6;
    tcp.payload = 1200;
    frames.push_back({"TCP from the VIP", build(tcp)});
    PacketSpec echo = tcp;
    echo.proto = kIcmp6;
    echo.icmp_type = 129;
    echo.payload = 0;
    echo.icmp_body = Bytes(56, 7);
    frames.push_back({"ICMPv6 echo reply from the VIP", build(echo)});
    echo.icmp_body.clear();
    frames.push_back({"short ICMPv6 from the VIP", build(echo)});
    frames.push_back({"solicitation from the dedicated IP", host_solicitation(kDedicated6)});
    frames.push_back({"advertisement from the dedicated IP", host_advertisement(kDedicated6)});
    frames.push_back({"solicitation from the VIP without an option",
                      build_neighbor_solicitation(kHostMac, kVip6, kClient6, false)});
    PacketSpec v4;
    v4.src = kCluster;
    v4.dst = ip("10.0.0.7");
    frames.push_back({"IPv4", build(v4)});
    frames.push_back({"ARP", build_arp_request(kHostMac, kCluster, ip("10.0.0.7"))});
    for (const auto& [name, f] : frames) {
        CAPTURE(name);
        RunResult r = h.dp.run_egress(f);
        CHECK(r.action == TC_ACT_OK);
        CHECK(r.out == f);
    }
}

// Every IPv6 packet the host sends passes the program: it must read what it needs without
// pulling the packet's paged data into the linear area (BPF_PROG_TEST_RUN hands it a linear
// skb, so only the program's code can show that it never asks).
TEST_CASE("egress: the program never pulls the packet") {
    Host h;
    CHECK(h.dp.egress_helper_calls(BPF_FUNC_skb_load_bytes) >= 1); // the scan itself works
    CHECK(h.dp.egress_helper_calls(BPF_FUNC_skb_pull_data) == 0);
}

TEST_CASE("egress: attached only when the agent says the cluster has an IPv6 VIP") {
    struct stat st {};
    if (stat("/sys/fs/bpf", &st) != 0) {
        WARN("no bpffs at /sys/fs/bpf: skipped");
        return;
    }
    PrivateNetns ns("egress");
    const int lo = static_cast<int>(if_nametoindex("lo"));
    REQUIRE(lo > 0);

    auto dp = Dataplane::attach("lo", ns.pin_dir, XdpMode::generic);
    CHECK_FALSE(Dataplane::nd_egress_attached(lo)); // attaching XDP alone adds no filter
    dp->set_nd_egress(false);                       // IPv4 VIPs only
    CHECK_FALSE(Dataplane::nd_egress_attached(lo));
    dp->set_nd_egress(true);
    CHECK(Dataplane::nd_egress_attached(lo));
    dp->set_nd_egress(true); // again: replaces, still one
    CHECK(Dataplane::nd_egress_attached(lo));

    // A restarted agent whose config has no IPv6 VIP any more removes it...
    dp.reset(); // the process's handles go, the pinned dataplane stays
    CHECK(Dataplane::nd_egress_attached(lo));
    dp = Dataplane::adopt(ns.pin_dir);
    REQUIRE(dp);
    CHECK(Dataplane::nd_egress_attached(lo)); // adoption alone keeps what it found
    dp->set_nd_egress(false);
    CHECK_FALSE(Dataplane::nd_egress_attached(lo));

    // ...and one whose config gained one puts it back.
    dp.reset();
    dp = Dataplane::adopt(ns.pin_dir);
    REQUIRE(dp);
    CHECK_FALSE(Dataplane::nd_egress_attached(lo));
    dp->set_nd_egress(true);
    CHECK(Dataplane::nd_egress_attached(lo));

    dp->detach();
    CHECK_FALSE(Dataplane::nd_egress_attached(lo));
    CHECK(stat(ns.pin_dir.c_str(), &st) != 0);
}

} // namespace test_nd_egress
