#include "receive_probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nlb {

namespace {

constexpr unsigned kRouteUp = 0x1;      // RTF_UP
constexpr unsigned kRouteGateway = 0x2; // RTF_GATEWAY
// A host that balances is no router holding the Internet's table: this many lines of the
// main table (all /proc/net/route lists) are read, no more.
constexpr std::size_t kMaxRouteLines = 65536;

bool hex32(std::string_view field, std::uint32_t& out) {
    const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out, 16);
    return ec == std::errc() && end == field.data() + field.size();
}

} // namespace

std::vector<std::uint32_t> route_gateways(std::istream& in, const std::string& ifname) {
    std::vector<std::uint32_t> defaults, others;
    std::string text;
    for (std::size_t n = 0; n < kMaxRouteLines && std::getline(in, text); ++n) {
        // Read once a second on the agent's loop: the other interfaces' lines (most of a long
        // table) are passed over before a stream is built for them, 65,536 lines in 1.4 ms
        // where it took 24.
        if (text.size() <= ifname.size() || text.compare(0, ifname.size(), ifname) != 0 ||
            (text[ifname.size()] != '\t' && text[ifname.size()] != ' '))
            continue;
        std::istringstream line(text);
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...: addresses as the kernel
        // holds them (network byte order), printed as one hexadecimal number.
        std::string iface, dest, gateway, flags, refcnt, use, metric, mask;
        if (!(line >> iface >> dest >> gateway >> flags >> refcnt >> use >> metric >> mask) ||
            iface != ifname)
            continue;
        std::uint32_t d = 0, g = 0, f = 0, m = 0;
        if (!hex32(dest, d) || !hex32(gateway, g) || !hex32(flags, f) || !hex32(mask, m) ||
            (f & (kRouteUp | kRouteGateway)) != (kRouteUp | kRouteGateway) || g == 0)
            continue;
        (d == 0 && m == 0 ? defaults : others).push_back(g);
    }
    std::vector<std::uint32_t> out;
    for (const auto* list : {&defaults, &others})
        for (std::uint32_t g : *list)
            if (out.size() < kMaxGateways && std::find(out.begin(), out.end(), g) == out.end())
                out.push_back(g);
    return out;
}

std::vector<std::uint8_t> arp_request(const MacAddress& mac, std::uint32_t sender,
                                      std::uint32_t target) {
    // Ethernet, IPv4, hardware 6 and protocol 4 bytes long, a request.
    std::vector<std::uint8_t> f{0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01};
    f.insert(f.end(), mac.begin(), mac.end());
    const auto* s = reinterpret_cast<const std::uint8_t*>(&sender);
    f.insert(f.end(), s, s + 4);
    f.insert(f.end(), 6, 0x00);
    const auto* t = reinterpret_cast<const std::uint8_t*>(&target);
    f.insert(f.end(), t, t + 4);
    return f;
}

sockaddr_ll arp_broadcast(int ifindex) {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_ARP);
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    std::memset(to.sll_addr, 0xff, 6);
    return to;
}

ReceiveProbe::ReceiveProbe(std::string ifname, int ifindex, const MacAddress& mac,
                           std::uint32_t sender)
    : ifname_(std::move(ifname)), ifindex_(ifindex), mac_(mac), sender_(sender) {}

void ReceiveProbe::refresh_gateways(const char* table) {
    std::ifstream in(table);
    gateways_ = route_gateways(in, ifname_);
}

bool ReceiveProbe::open() {
    if (fd_ >= 0)
        return true;
    fd_ = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ARP));
    if (fd_ < 0)
        return false;
    sockaddr_ll at{};
    at.sll_family = AF_PACKET;
    at.sll_protocol = htons(ETH_P_ARP);
    at.sll_ifindex = ifindex_;
    // Little room: one frame read proves as much as a thousand, and a busy segment's ARP
    // must not queue up here.
    int size = 16 * 1024;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&at), sizeof(at)) != 0) {
        close();
        return false;
    }
    return true;
}

void ReceiveProbe::send() {
    if (!can_probe())
        return;
    if (!open()) {
        send_errors_ += gateways_.size();
        return;
    }
    const sockaddr_ll to = arp_broadcast(ifindex_);
    for (std::uint32_t gateway : gateways_) {
        const auto request = arp_request(mac_, sender_, gateway);
        if (::sendto(fd_, request.data(), request.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof(to)) < 0)
            ++send_errors_;
        else
            ++sent_;
    }
}

std::uint64_t ReceiveProbe::heard() {
    if (fd_ < 0)
        return heard_;
    std::uint8_t buffer[64];
    for (int i = 0; i < kDrain; ++i) {
        sockaddr_ll from{};
        socklen_t len = sizeof(from);
        const ssize_t n = ::recvfrom(fd_, buffer, sizeof(buffer), MSG_TRUNC,
                                     reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0)
            break;
        // This host's own requests (and its kernel's) pass the socket on their way out, and a
        // port that reflects what it gets (a hairpin, a VEPA switch) would bring them back in:
        // neither proves that the port delivers others' frames.
        const bool own = from.sll_halen == 6 && std::memcmp(from.sll_addr, mac_.data(), 6) == 0;
        if (from.sll_pkttype != PACKET_OUTGOING && !own && n >= 14 &&
            std::memcmp(buffer + 8, mac_.data(), 6) != 0)
            ++heard_;
    }
    return heard_;
}

void ReceiveProbe::close() {
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = -1;
}

} // namespace nlb
