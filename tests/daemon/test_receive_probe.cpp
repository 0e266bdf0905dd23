// The watch's question to the segment (agent/daemon/receive_probe.*): which gateways it asks,
// the request it sends, and its socket counting what comes back (on loopback, where a frame
// sent comes back in as received).
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "receive_probe.hpp"

using namespace nlb;

// Named: the clang tree builds the daemon's tests eight files to a unit, where another file's
// helpers share the anonymous namespace.
namespace test_receive_probe {

namespace {

std::uint32_t ip(const char* text) {
    in_addr a{};
    REQUIRE(::inet_pton(AF_INET, text, &a) == 1);
    return a.s_addr;
}

std::vector<std::uint32_t> gateways(const std::string& table, const std::string& ifname) {
    std::istringstream in(table);
    return route_gateways(in, ifname);
}

// As the kernel prints it on this (little-endian) machine: the address's bytes in network
// order, read as one number.
const char* kTable =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth1\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "eth0\t0000A8C0\t FE00000A\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t00000000\t0100000A\t0003\t0\t0\t50\t00000000\t0\t0\t0\n"
    "eth0\t0000AC10\t0200000A\t0002\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    "eth0.100\t00000000\t0164A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth\t00000000\t0165A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\tnonsense\n"
    "eth0\n";

} // namespace

TEST_CASE("receive probe: the gateways of the routes through the interface, the default's first") {
    const auto eth0 = gateways(kTable, "eth0");
    // 10.0.0.1 (default, twice: once), 10.0.0.254; not the route without a gateway, nor the
    // one that is down (flags 0x2 without 0x1), nor eth1's, nor those of interfaces whose
    // names begin or end where eth0's does (eth0.100, eth).
    REQUIRE(eth0.size() == 2);
    CHECK(eth0[0] == ip("10.0.0.1"));
    CHECK(eth0[1] == ip("10.0.0.254"));
    CHECK(gateways(kTable, "eth1") == std::vector<std::uint32_t>{ip("192.168.1.1")});
    CHECK(gateways(kTable, "eth0.100") == std::vector<std::uint32_t>{ip("192.168.100.1")});
    CHECK(gateways(kTable, "eth") == std::vector<std::uint32_t>{ip("192.168.101.1")});
    CHECK(gateways(kTable, "eth2").empty());
    CHECK(gateways("", "eth0").empty());
}

TEST_CASE("receive probe: at most four gateways") {
    std::string table = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n";
    for (int i = 1; i <= 9; ++i)
        table += "eth0\t0000" + std::to_string(10 + i) + "0A\t0" + std::to_string(i) +
                 "00000A\t0003\t0\t0\t0\t0000FFFF\n";
    CHECK(gateways(table, "eth0").size() == kMaxGateways);
}

TEST_CASE("receive probe: the ARP request asks who has the gateway, telling the host's address") {
    const MacAddress mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    const auto f = arp_request(mac, ip("10.0.0.7"), ip("10.0.0.1"));
    const std::vector<std::uint8_t> want = {
        0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x01,        // Ethernet/IPv4, request
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 10,   0,    0, 7,  // sender
        0,    0,    0,    0,    0,    0,    10,   0,    0, 1}; // target
    CHECK(f == want);
}

TEST_CASE("receive probe: no sender address or no gateway, nothing asked") {
    const MacAddress mac{};
    ReceiveProbe no_sender("lo", 1, mac, 0);
    CHECK_FALSE(no_sender.can_probe());
    no_sender.send();
    CHECK(no_sender.sent() == 0);
    ReceiveProbe no_gateway("lo", 1, mac, ip("127.0.0.1"));
    no_gateway.refresh_gateways(); // loopback has no route through a gateway
    CHECK_FALSE(no_gateway.can_probe());
}

namespace {

// Another station's ARP frame, sent on `ifindex` from `mac` (loopback hands it back in).
void send_arp_from(int ifindex, const MacAddress& mac) {
    const int fd = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    REQUIRE(fd >= 0);
    const sockaddr_ll to = arp_broadcast(ifindex);
    auto frame = arp_request(mac, ip("127.0.0.2"), ip("127.0.0.1"));
    frame[7] = 2; // a reply
    CHECK(::sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof(to)) == static_cast<ssize_t>(frame.size()));
    ::close(fd);
}

std::uint64_t heard_after(ReceiveProbe& probe, std::uint64_t want) {
    std::uint64_t heard = 0;
    for (int i = 0; i < 100 && heard < want; ++i) {
        heard = probe.heard();
        if (heard < want)
            ::usleep(1000);
    }
    return heard;
}

} // namespace

// Loopback hands back in what is sent on it, as a port that reflects does: the probe's own
// requests come back and count for nothing (they prove no delivery of others' frames); another
// station's ARP frame counts, while the socket is open (from the first request on).
TEST_CASE("receive probe: its socket counts other stations' ARP frames, not its own") {
    const int lo = static_cast<int>(::if_nametoindex("lo"));
    REQUIRE(lo > 0);
    char path[] = "/tmp/nlb-route-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    std::ofstream(path) << "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
                        << "lo\t00000000\t0200007F\t0003\t0\t0\t0\t00000000\n";
    const MacAddress own = {0x02, 0, 0, 0, 0, 0x01}, other = {0x02, 0, 0, 0, 0, 0x02};
    ReceiveProbe probe("lo", lo, own, ip("127.0.0.1"));
    probe.refresh_gateways(path);
    ::unlink(path);
    REQUIRE(probe.can_probe());
    send_arp_from(lo, other); // the socket is not open yet: not seen
    CHECK(probe.heard() == 0);
    probe.send();
    CHECK(probe.sent() == 1);
    CHECK(probe.send_errors() == 0);
    ::usleep(20000);
    CHECK(probe.heard() == 0); // its own request, back in
    send_arp_from(lo, other);
    CHECK(heard_after(probe, 1) == 1);
    probe.close();
    send_arp_from(lo, other); // closed again
    probe.send();
    send_arp_from(lo, other);
    CHECK(heard_after(probe, 2) == 2);
}

} // namespace test_receive_probe
