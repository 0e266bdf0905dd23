// What the agent asks the kernel about a network interface before attaching to it: its driver
// (which XDP hook works there) and its VLAN relations (which interface carries a VLAN, and
// whether the NIC strips tags before XDP could see them); and while it runs, whether the link
// is up and its MTU. Read-only ioctls, no netlink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace nlb {

// The driver's name as `ethtool -i` shows it ("veth", "mlx5_core"); empty when the interface
// does not say (no ethtool support).
std::string link_driver(const std::string& ifname);

// Whether the NIC takes VLAN tags out of received frames (rx-vlan-offload): the tag then
// travels beside the frame, where no XDP program on kernels before 6.8 can read it.
bool link_strips_vlan_tags(const std::string& ifname);

// `ifname` as a VLAN interface: the interface it sits on and its VLAN id.
struct VlanLink {
    std::string lower;
    std::uint16_t id = 0;
};
std::optional<VlanLink> vlan_link(const std::string& ifname);

// What the agent asks of an interface while it runs, through a socket kept open (it asks
// every tick): whether it is up and has its carrier (IFF_UP and IFF_RUNNING: its operational
// state up, or unknown for a driver that reports none), and its MTU. nullopt when it cannot
// be asked (no such interface).
class LinkProbe {
  public:
    LinkProbe();
    ~LinkProbe();
    LinkProbe(const LinkProbe&) = delete;
    LinkProbe& operator=(const LinkProbe&) = delete;
    std::optional<bool> up(const std::string& ifname) const;
    std::optional<std::size_t> mtu(const std::string& ifname) const;

  private:
    int fd_;
};

// The VLAN interface for VLAN `id` on `lower` ("eth0.100" for 100 on eth0, whatever its name).
std::optional<std::string> vlan_interface(const std::string& lower, std::uint16_t id);

// The interface the host's stack meets the cluster on: `ifname` itself for an untagged
// cluster (vlan 0); for cluster.vlan V, the VLAN V interface on `ifname`, the dataplane being
// on the trunk beneath it. Refuses what would attach and then serve nothing: a VLAN
// interface as the trunk, a NIC that strips tags before XDP, no interface for the VLAN.
// `named`: the operator's choice (host.vlan_interface), taken instead of the search; it must
// exist. Throws std::runtime_error "attach eth0: cluster.vlan 100: <why>".
std::string cluster_interface(const std::string& ifname, std::uint16_t vlan,
                              const std::optional<std::string>& named = std::nullopt);

} // namespace nlb
