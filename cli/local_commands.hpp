// The commands nlbadm answers itself, without an agent: ip2mac and keygen.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster_mac.hpp"
#include "dataplane_tables.hpp"

namespace nlb::cli {

// {"ip": "192.0.2.100", "mode": "unicast", "mac": "02:bf:c0:00:02:64"}, plus "igmp_group"
// in igmp mode. cluster_ip must be IPv4.
nlohmann::json ip2mac(const IpAddress& cluster_ip, ClusterMode mode);
// "02:bf:c0:00:02:64", or "01:00:5e:7f:02:64 (IGMP group 239.255.2.100)".
std::string render_ip2mac(const nlohmann::json& result);

// Bytes of a cluster key.
inline constexpr std::size_t kClusterKeyBytes = 32;
// 32 bytes from getrandom(2) as 64 lowercase hex digits. Throws std::system_error.
std::string new_cluster_key();
std::string to_hex(std::span<const std::uint8_t> bytes);

} // namespace nlb::cli
