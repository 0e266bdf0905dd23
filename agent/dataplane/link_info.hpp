// What the agent asks the kernel about a network interface before attaching to it: its driver
// (which XDP hook works there). Read-only ioctls, no netlink.
#pragma once

#include <string>

namespace nlb {

// The driver's name as `ethtool -i` shows it ("veth", "mlx5_core"); empty when the interface
// does not say (no ethtool support).
std::string link_driver(const std::string& ifname);

} // namespace nlb
