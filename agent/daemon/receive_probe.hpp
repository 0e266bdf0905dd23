// Proof that the host still receives, asked of the segment when nothing else gives it: an ARP
// request (IPv4) or a neighbour solicitation (IPv6) to the gateways of the routes through the
// cluster interface, in the family of the host's dedicated IP, whose answers (and any other
// station's ARP frame, or IPv6 frame) count as received. The watch for a link that fails one way
// (ReceiveWatch) asks for it once every peer has been silent for a period and no client's
// frame came: a gateway that answers tells a receive path that works (the peers crashed, the
// segment is quiet) from one that failed, which nothing a host hears without asking can, in a
// cluster of two (docs/convergence.md, "A link that fails one way"). The socket is open only
// while the watch asks; what it reads is bounded per call and counted, never kept.
#pragma once

#include <linux/if_packet.h>

#include <array>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "cluster_mac.hpp"
#include "dataplane_tables.hpp"

namespace nlb {

// The gateways (network byte order) of the IPv4 routes through `ifname` in /proc/net/route's
// text, the default route's first; at most kMaxGateways, each once.
inline constexpr std::size_t kMaxGateways = 4;
std::vector<std::uint32_t> route_gateways(std::istream& proc_net_route, const std::string& ifname);

// The same of /proc/net/ipv6_route's text: the IPv6 gateways.
using Ipv6Bytes = std::array<std::uint8_t, 16>;
std::vector<Ipv6Bytes> route6_gateways(std::istream& proc_net_ipv6_route,
                                       const std::string& ifname);

// The ARP request "who has `target`, tell `sender`" from `mac` (RFC 826), as an AF_PACKET
// SOCK_DGRAM socket sends it (the kernel adds the Ethernet header).
std::vector<std::uint8_t> arp_request(const MacAddress& mac, std::uint32_t sender,
                                      std::uint32_t target);

// Where an AF_PACKET SOCK_DGRAM socket sends an ARP frame on `ifindex`: to every station.
sockaddr_ll arp_broadcast(int ifindex);

// The neighbour solicitation for `target` from `sender` at `mac` (RFC 4861 4.3, with the
// source link-layer option, so the answer comes back without a solicitation of its own): the
// IPv6 header and the ICMPv6 message, to the target's solicited-node group.
std::vector<std::uint8_t> neighbour_solicitation(const MacAddress& mac, const Ipv6Bytes& sender,
                                                 const Ipv6Bytes& target);

// Where that solicitation goes on `ifindex`: the group's MAC, 33:33:ff and the target's last
// three bytes (RFC 2464 7).
sockaddr_ll solicited_node(int ifindex, const Ipv6Bytes& target);

class ReceiveProbe {
  public:
    // `sender`: the host's dedicated IP, which the requests come from; its family is the one
    // asked. No family: no probe.
    ReceiveProbe(std::string ifname, int ifindex, const MacAddress& mac, const IpAddress& sender);
    ~ReceiveProbe() { close(); }
    ReceiveProbe(const ReceiveProbe&) = delete;
    ReceiveProbe& operator=(const ReceiveProbe&) = delete;

    // Reads the routing table again (the agent does so once a second): whether there is a
    // gateway to ask. `table`: where (a test's own file; else the sender's family's).
    void refresh_gateways(const char* table = nullptr);
    bool can_probe() const { return !gateways_.empty(); }
    const std::vector<IpAddress>& gateways() const { return gateways_; }
    // One request to each gateway, the socket opened first if it is not; failures counted.
    void send();
    // ARP frames (IPv6 frames) other stations sent that reached this host while the socket
    // was open, in all (the socket drained first, at most kDrain frames a call).
    std::uint64_t heard();
    // The watch no longer asks: the socket goes, and what it would read with it.
    void close();

    std::uint64_t sent() const { return sent_; }
    std::uint64_t send_errors() const { return send_errors_; }

  private:
    static constexpr int kDrain = 64;
    bool open();
    bool v6() const { return sender_.family == NLB_FAMILY_V6; }
    std::vector<std::uint8_t> request(const IpAddress& gateway) const;
    bool from_self(const std::uint8_t* frame, std::size_t length) const;

    std::string ifname_;
    int ifindex_;
    MacAddress mac_;
    IpAddress sender_;
    std::vector<IpAddress> gateways_;
    int fd_ = -1;
    std::uint64_t heard_ = 0;
    std::uint64_t sent_ = 0;
    std::uint64_t send_errors_ = 0;
};

} // namespace nlb
