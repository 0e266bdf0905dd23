#include "local_commands.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace nlb::cli {

nlohmann::json ip2mac(const IpAddress& cluster_ip, ClusterMode mode) {
    std::uint32_t ip = cluster_ip.words[0]; // network byte order, as cluster_mac() wants
    nlohmann::json out = {{"ip", cluster_ip.to_string()},
                          {"mode", to_string(mode)},
                          {"mac", to_string(cluster_mac(ip, mode))}};
    if (mode == ClusterMode::igmp) {
        IpAddress group;
        group.family = NLB_FAMILY_V4;
        group.words[0] = igmp_group(ip);
        out["igmp_group"] = group.to_string();
    }
    return out;
}

std::string render_ip2mac(const nlohmann::json& result) {
    std::string line = result.at("mac").get<std::string>();
    if (result.contains("igmp_group"))
        line += " (IGMP group " + result["igmp_group"].get<std::string>() + ")";
    return line + "\n";
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (std::uint8_t b : bytes) {
        out += kDigits[b >> 4];
        out += kDigits[b & 0xf];
    }
    return out;
}

std::string new_cluster_key() {
    std::array<std::uint8_t, kClusterKeyBytes> key{};
    for (std::size_t got = 0; got < key.size();) {
        // Blocks only until the kernel's pool is initialised at boot, which is what a key
        // needs; never returns weak bytes.
        ssize_t n = ::getrandom(key.data() + got, key.size() - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw std::system_error(errno, std::generic_category(), "getrandom");
        got += static_cast<std::size_t>(n);
    }
    return to_hex(key);
}

} // namespace nlb::cli
