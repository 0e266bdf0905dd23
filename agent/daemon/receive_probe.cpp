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

// An address as /proc/net/ipv6_route prints it: 32 hexadecimal digits, its bytes in order.
bool hex128(std::string_view field, Ipv6Bytes& out) {
    if (field.size() != 32)
        return false;
    for (std::size_t i = 0; i < 16; ++i) {
        const auto [end, ec] =
            std::from_chars(field.data() + 2 * i, field.data() + 2 * i + 2, out[i], 16);
        if (ec != std::errc() || end != field.data() + 2 * i + 2)
            return false;
    }
    return true;
}

// Whether `text` is a line of `ifname`'s: the name as a whole field, where the table puts it
// (first in /proc/net/route, last in /proc/net/ipv6_route). Checked before a stream is built
// for the line: the agent reads the table once a second, and a long table is mostly the other
// interfaces' (65,536 lines in 1.4 ms where building a stream for each took 24).
bool names_first(const std::string& text, const std::string& ifname) {
    return text.size() > ifname.size() && text.compare(0, ifname.size(), ifname) == 0 &&
           (text[ifname.size()] == '\t' || text[ifname.size()] == ' ');
}

bool names_last(const std::string& text, const std::string& ifname) {
    return text.size() > ifname.size() &&
           text.compare(text.size() - ifname.size(), ifname.size(), ifname) == 0 &&
           text[text.size() - ifname.size() - 1] == ' ';
}

// The default routes' gateways first, then the others', each once, at most kMaxGateways.
template <typename Address>
std::vector<Address> first_gateways(const std::vector<Address>& defaults,
                                    const std::vector<Address>& others) {
    std::vector<Address> out;
    for (const auto* list : {&defaults, &others})
        for (const Address& g : *list)
            if (out.size() < kMaxGateways && std::find(out.begin(), out.end(), g) == out.end())
                out.push_back(g);
    return out;
}

// The one's complement sum of RFC 1071 over `data`, added to `sum`.
std::uint32_t ones_sum(const std::uint8_t* data, std::size_t length, std::uint32_t sum) {
    for (std::size_t i = 0; i + 1 < length; i += 2)
        sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (length & 1)
        sum += static_cast<std::uint32_t>(data[length - 1] << 8);
    return sum;
}

// Where an AF_PACKET SOCK_DGRAM socket sends a frame of `ethertype` on `ifindex`: to `mac`.
sockaddr_ll link_destination(int ifindex, std::uint16_t ethertype, const std::uint8_t (&mac)[6]) {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ethertype);
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    std::memcpy(to.sll_addr, mac, 6);
    return to;
}

Ipv6Bytes bytes_of(const IpAddress& a) {
    Ipv6Bytes b{};
    std::memcpy(b.data(), a.words.data(), b.size());
    return b;
}

} // namespace

std::vector<std::uint32_t> route_gateways(std::istream& in, const std::string& ifname) {
    std::vector<std::uint32_t> defaults, others;
    std::string text;
    for (std::size_t n = 0; n < kMaxRouteLines && std::getline(in, text); ++n) {
        if (!names_first(text, ifname))
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
    return first_gateways(defaults, others);
}

std::vector<Ipv6Bytes> route6_gateways(std::istream& in, const std::string& ifname) {
    std::vector<Ipv6Bytes> defaults, others;
    std::string text;
    for (std::size_t n = 0; n < kMaxRouteLines && std::getline(in, text); ++n) {
        if (!names_last(text, ifname))
            continue;
        std::istringstream line(text);
        // Destination, its prefix length, source, its prefix length, next hop, metric, refcnt,
        // use, flags, interface; addresses as 32 hexadecimal digits, the rest hexadecimal.
        std::string dest, dest_len, src, src_len, hop, metric, refcnt, use, flags, iface;
        if (!(line >> dest >> dest_len >> src >> src_len >> hop >> metric >> refcnt >> use >>
              flags >> iface) ||
            iface != ifname)
            continue;
        Ipv6Bytes g{};
        std::uint32_t len = 0, f = 0;
        if (!hex128(hop, g) || !hex32(dest_len, len) || !hex32(flags, f) ||
            (f & (kRouteUp | kRouteGateway)) != (kRouteUp | kRouteGateway) || g == Ipv6Bytes{})
            continue;
        (len == 0 ? defaults : others).push_back(g);
    }
    return first_gateways(defaults, others);
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
    const std::uint8_t every[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    return link_destination(ifindex, ETH_P_ARP, every);
}

std::vector<std::uint8_t> neighbour_solicitation(const MacAddress& mac, const Ipv6Bytes& sender,
                                                 const Ipv6Bytes& target) {
    Ipv6Bytes group = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
    std::copy(target.begin() + 13, target.end(), group.begin() + 13);
    constexpr std::uint8_t kIcmp6 = 58, kLength = 32; // header, target, one 8-byte option
    // Version 6, payload length, ICMPv6, hop limit 255 (a receiver drops ND with any other).
    std::vector<std::uint8_t> f{0x60, 0, 0, 0, 0, kLength, kIcmp6, 255};
    f.insert(f.end(), sender.begin(), sender.end());
    f.insert(f.end(), group.begin(), group.end());
    const std::size_t icmp = f.size();
    f.insert(f.end(), {135, 0, 0, 0, 0, 0, 0, 0}); // solicitation, code, checksum, reserved
    f.insert(f.end(), target.begin(), target.end());
    f.insert(f.end(), {1, 1}); // source link-layer address, 8 bytes
    f.insert(f.end(), mac.begin(), mac.end());
    // Over the pseudo-header (source, destination, length, next header) and the message.
    std::uint32_t sum = ones_sum(f.data() + 8, 32, kLength + kIcmp6);
    sum = ones_sum(f.data() + icmp, kLength, sum);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    const auto check = static_cast<std::uint16_t>(~sum);
    f[icmp + 2] = static_cast<std::uint8_t>(check >> 8);
    f[icmp + 3] = static_cast<std::uint8_t>(check);
    return f;
}

sockaddr_ll solicited_node(int ifindex, const Ipv6Bytes& target) {
    const std::uint8_t group[6] = {0x33, 0x33, 0xff, target[13], target[14], target[15]};
    return link_destination(ifindex, ETH_P_IPV6, group);
}

ReceiveProbe::ReceiveProbe(std::string ifname, int ifindex, const MacAddress& mac,
                           const IpAddress& sender)
    : ifname_(std::move(ifname)), ifindex_(ifindex), mac_(mac), sender_(sender) {}

void ReceiveProbe::refresh_gateways(const char* table) {
    gateways_.clear();
    if (sender_.family == NLB_FAMILY_V4) {
        std::ifstream in(table ? table : "/proc/net/route");
        for (std::uint32_t g : route_gateways(in, ifname_))
            gateways_.push_back(IpAddress{NLB_FAMILY_V4, {g}});
    } else if (v6()) {
        std::ifstream in(table ? table : "/proc/net/ipv6_route");
        for (const Ipv6Bytes& g : route6_gateways(in, ifname_)) {
            IpAddress a{NLB_FAMILY_V6, {}};
            std::memcpy(a.words.data(), g.data(), g.size());
            gateways_.push_back(a);
        }
    }
}

std::vector<std::uint8_t> ReceiveProbe::request(const IpAddress& gateway) const {
    if (v6())
        return neighbour_solicitation(mac_, bytes_of(sender_), bytes_of(gateway));
    return arp_request(mac_, sender_.words[0], gateway.words[0]);
}

// This host's own requests (and its kernel's) pass the socket on their way out, and a port that
// reflects what it gets (a hairpin, a VEPA switch) would bring them back in: neither proves that
// the port delivers others' frames. Those carry the host's MAC as the ARP sender, or its
// address as the IPv6 source.
bool ReceiveProbe::from_self(const std::uint8_t* frame, std::size_t length) const {
    if (v6())
        return length < 40 || (frame[0] >> 4) != 6 ||
               std::memcmp(frame + 8, sender_.words.data(), 16) == 0;
    return length < 14 || std::memcmp(frame + 8, mac_.data(), 6) == 0;
}

bool ReceiveProbe::open() {
    if (fd_ >= 0)
        return true;
    // Made for no protocol, it takes nothing until bound: made for one, it took every
    // interface's frames of it until the bind, and a busy loopback or a second NIC proved in
    // that moment a receive path that delivers nothing.
    const std::uint16_t protocol = htons(v6() ? ETH_P_IPV6 : ETH_P_ARP);
    fd_ = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0)
        return false;
    sockaddr_ll at{};
    at.sll_family = AF_PACKET;
    at.sll_protocol = protocol;
    at.sll_ifindex = ifindex_;
    // Little room: one frame read proves as much as a thousand, and a busy segment's ARP (or
    // the IPv6 traffic the dataplane passes) must not queue up here.
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
    for (const IpAddress& gateway : gateways_) {
        const sockaddr_ll to =
            v6() ? solicited_node(ifindex_, bytes_of(gateway)) : arp_broadcast(ifindex_);
        const auto frame = request(gateway);
        if (::sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<const sockaddr*>(&to),
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
        // Received from the wire, not on their way out nor looped back by the host's own stack
        // (the IPv6 multicast it sends, looped back before it has an Ethernet header), and on
        // this interface (the bind sees to that; checked all the same).
        const bool in = from.sll_pkttype == PACKET_HOST || from.sll_pkttype == PACKET_BROADCAST ||
                        from.sll_pkttype == PACKET_MULTICAST ||
                        from.sll_pkttype == PACKET_OTHERHOST;
        const bool own = from.sll_halen == 6 && std::memcmp(from.sll_addr, mac_.data(), 6) == 0;
        if (in && !own && from.sll_ifindex == ifindex_ &&
            !from_self(buffer, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof(buffer))))
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
