// The MAC addresses a cluster uses, derived from its cluster IP (DESIGN.md §4). One definition
// for the agent (NIC filters, config map), nlbadm ip2mac and the tests.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace nlb {

using MacAddress = std::array<std::uint8_t, 6>;

enum class ClusterMode { unicast, multicast, igmp };

std::optional<ClusterMode> parse_cluster_mode(const std::string& text);
const char* to_string(ClusterMode mode);

// cluster_ip is a.b.c.d in network byte order.
// unicast 02-BF-a-b-c-d, multicast 03-BF-a-b-c-d, igmp 01-00-5E-7F-c-d.
MacAddress cluster_mac(std::uint32_t cluster_ip, ClusterMode mode);
// Ethernet source of ARP/ND answers: 02-h-a-b-c-d with h the host priority, a MAC no host
// owns, so no switch ever learns where the cluster MAC lives.
MacAddress masked_source_mac(std::uint32_t cluster_ip, std::uint8_t host_priority);
// Multicast group joined in igmp mode: 239.255.c.d (network byte order).
std::uint32_t igmp_group(std::uint32_t cluster_ip);

std::string to_string(const MacAddress& mac); // "02:bf:c0:00:02:64"

} // namespace nlb
