#include "cluster_mac.hpp"

#include <cstdio>
#include <cstring>

namespace nlb {

namespace {

std::array<std::uint8_t, 4> octets(std::uint32_t ip) {
    std::array<std::uint8_t, 4> o;
    std::memcpy(o.data(), &ip, 4);
    return o;
}

} // namespace

std::optional<ClusterMode> parse_cluster_mode(const std::string& text) {
    if (text == "unicast")
        return ClusterMode::unicast;
    if (text == "multicast")
        return ClusterMode::multicast;
    if (text == "igmp")
        return ClusterMode::igmp;
    return std::nullopt;
}

const char* to_string(ClusterMode mode) {
    switch (mode) {
    case ClusterMode::unicast:
        return "unicast";
    case ClusterMode::multicast:
        return "multicast";
    case ClusterMode::igmp:
        return "igmp";
    }
    return "?";
}

MacAddress cluster_mac(std::uint32_t cluster_ip, ClusterMode mode) {
    auto o = octets(cluster_ip);
    switch (mode) {
    case ClusterMode::multicast:
        return {0x03, 0xbf, o[0], o[1], o[2], o[3]};
    case ClusterMode::igmp:
        return {0x01, 0x00, 0x5e, 0x7f, o[2], o[3]};
    case ClusterMode::unicast:
        break;
    }
    return {0x02, 0xbf, o[0], o[1], o[2], o[3]};
}

MacAddress masked_source_mac(std::uint32_t cluster_ip, std::uint8_t host_priority) {
    auto o = octets(cluster_ip);
    return {0x02, host_priority, o[0], o[1], o[2], o[3]};
}

std::uint32_t igmp_group(std::uint32_t cluster_ip) {
    auto o = octets(cluster_ip);
    std::array<std::uint8_t, 4> g{239, 255, o[2], o[3]};
    std::uint32_t out;
    std::memcpy(&out, g.data(), 4);
    return out;
}

std::string to_string(const MacAddress& mac) {
    char buf[18];
    std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
                  mac[3], mac[4], mac[5]);
    return buf;
}

} // namespace nlb
