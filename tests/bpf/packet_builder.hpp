// Builds test frames byte by byte: Ethernet (+802.1Q), IPv4 (+options, fragments), IPv6
// (+extension headers, fragment header), TCP, UDP, ICMP/ICMPv6, ARP and neighbour
// solicitations. IPv4 header checksums are valid, so the frames also survive a real stack.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane_tables.hpp"

namespace nlb::test {

using Bytes = std::vector<std::uint8_t>;
using Mac = std::array<std::uint8_t, 6>;

inline constexpr std::uint8_t kTcp = 6, kUdp = 17, kIcmp = 1, kIcmp6 = 58;
inline constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
// A tag that carries a priority (1) and no VLAN (id 0): an untagged cluster's frame, parsed on
// the general path as any tagged frame is.
inline constexpr std::uint16_t kPriorityTag = 0x2000;

IpAddress ip(const std::string& text); // throws on a bad literal

struct PacketSpec {
    Mac src_mac{0x02, 0, 0, 0, 0, 0xc1};
    Mac dst_mac{0x02, 0xbf, 10, 0, 0, 100};
    std::optional<std::uint16_t> vlan;
    IpAddress src;
    IpAddress dst;
    std::uint8_t proto = kTcp;
    std::uint16_t sport = 40000; // host byte order
    std::uint16_t dport = 80;
    std::uint8_t tcp_flags = kAck;
    // TCP sequence number; by default 1000 for a SYN and 1001 after it, so that a SYN and the
    // packets that follow it in a test are one connection's (bpf/conntrack.h checks).
    std::optional<std::uint32_t> seq;
    std::size_t payload = 0;
    std::size_t ipv4_options = 0;         // bytes, a multiple of 4 (NOPs)
    std::vector<std::uint8_t> ipv6_ext;   // extension header types before the fragment/L4
    bool fragment = false;                // part of a fragmented datagram
    std::uint16_t frag_offset = 0;        // in 8-byte units; 0 = first fragment
    bool more_fragments = false;
    std::uint32_t frag_id = 0x1234;       // IPv4: the low 16 bits; IPv6: the fragment header's
    std::uint8_t icmp_type = 8;           // for ICMP/ICMPv6 packets
    Bytes icmp_body;                      // bytes after the 8-byte ICMP header
};

Bytes build(const PacketSpec& spec);
// ICMP (v4 or v6 by the addresses) error of `type` quoting the start of `quoted`'s IP packet.
Bytes build_icmp_error(const PacketSpec& outer, const Bytes& quoted, std::uint8_t type);
Bytes build_arp_request(const Mac& sender_mac, const IpAddress& sender, const IpAddress& target,
                        std::optional<std::uint16_t> vlan = std::nullopt);
Bytes build_neighbor_solicitation(const Mac& sender_mac, const IpAddress& sender,
                                  const IpAddress& target, bool with_source_lladdr = true);

// Internet checksum of a buffer (ones' complement of the ones' complement sum).
std::uint16_t inet_checksum(const std::uint8_t* data, std::size_t len, std::uint32_t sum = 0);

} // namespace nlb::test
