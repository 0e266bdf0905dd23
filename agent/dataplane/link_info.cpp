#include "link_info.hpp"

#include <linux/ethtool.h>
#include <linux/if_vlan.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace nlb {

namespace {

// One socket per question: these run once per attach.
class IoctlSocket {
  public:
    IoctlSocket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
    ~IoctlSocket() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    IoctlSocket(const IoctlSocket&) = delete;
    IoctlSocket& operator=(const IoctlSocket&) = delete;
    bool ethtool(const std::string& ifname, void* cmd) const {
        ifreq req{};
        std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
        req.ifr_data = static_cast<char*>(cmd);
        return fd_ >= 0 && ::ioctl(fd_, SIOCETHTOOL, &req) == 0;
    }
    bool vlan(vlan_ioctl_args& args) const {
        return fd_ >= 0 && ::ioctl(fd_, SIOCGIFVLAN, &args) == 0;
    }

  private:
    int fd_;
};

} // namespace

std::string link_driver(const std::string& ifname) {
    ethtool_drvinfo info{};
    info.cmd = ETHTOOL_GDRVINFO;
    if (!IoctlSocket().ethtool(ifname, &info))
        return {};
    return std::string(info.driver, strnlen(info.driver, sizeof(info.driver)));
}

bool link_strips_vlan_tags(const std::string& ifname) {
    ethtool_value flags{};
    flags.cmd = ETHTOOL_GFLAGS;
    return IoctlSocket().ethtool(ifname, &flags) && (flags.data & ETH_FLAG_RXVLAN);
}

std::optional<VlanLink> vlan_link(const std::string& ifname) {
    IoctlSocket sock;
    vlan_ioctl_args args{};
    std::strncpy(args.device1, ifname.c_str(), sizeof(args.device1) - 1);
    args.cmd = GET_VLAN_REALDEV_NAME_CMD;
    if (!sock.vlan(args))
        return std::nullopt; // not a VLAN interface (or no 8021q module: then none exists)
    VlanLink link;
    link.lower.assign(args.u.device2, strnlen(args.u.device2, sizeof(args.u.device2)));
    args.cmd = GET_VLAN_VID_CMD;
    if (!sock.vlan(args))
        return std::nullopt;
    link.id = static_cast<std::uint16_t>(args.u.VID);
    return link;
}

LinkProbe::LinkProbe() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}

LinkProbe::~LinkProbe() {
    if (fd_ >= 0)
        ::close(fd_);
}

std::optional<bool> LinkProbe::up(const std::string& ifname) const {
    ifreq req{};
    std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    if (fd_ < 0 || ::ioctl(fd_, SIOCGIFFLAGS, &req) != 0)
        return std::nullopt;
    return (req.ifr_flags & IFF_UP) && (req.ifr_flags & IFF_RUNNING);
}

std::optional<std::size_t> LinkProbe::mtu(const std::string& ifname) const {
    ifreq req{};
    std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    if (fd_ < 0 || ::ioctl(fd_, SIOCGIFMTU, &req) != 0 || req.ifr_mtu <= 0)
        return std::nullopt;
    return static_cast<std::size_t>(req.ifr_mtu);
}

std::optional<std::string> vlan_interface(const std::string& lower, std::uint16_t id) {
    struct if_nameindex* all = if_nameindex();
    if (!all)
        return std::nullopt;
    std::optional<std::string> found;
    for (struct if_nameindex* i = all; i->if_index != 0 && !found; ++i) {
        auto link = vlan_link(i->if_name);
        if (link && link->lower == lower && link->id == id)
            found = i->if_name;
    }
    if_freenameindex(all);
    return found;
}

std::string cluster_interface(const std::string& ifname, std::uint16_t vlan,
                              const std::optional<std::string>& named) {
    if (!vlan)
        return ifname;
    const std::string what = "attach " + ifname + ": cluster.vlan " + std::to_string(vlan) + ": ";
    const std::string id = std::to_string(vlan);
    if (auto link = vlan_link(ifname))
        throw std::runtime_error(what + ifname + " is VLAN " + std::to_string(link->id) +
                                 "'s interface on " + link->lower +
                                 ", where frames arrive untagged: attach to " + link->lower +
                                 ", or leave cluster.vlan out to attach here");
    // A veth has no hardware to strip tags: whether its frames carry theirs is up to its peer.
    if (link_driver(ifname) != "veth" && link_strips_vlan_tags(ifname))
        throw std::runtime_error(what +
                                 "the NIC takes VLAN tags out of frames before XDP sees "
                                 "them (rx-vlan-offload): ethtool -K " +
                                 ifname + " rxvlan off");
    if (named) {
        if (!if_nametoindex(named->c_str()))
            throw std::runtime_error(what + "host.vlan_interface " + *named +
                                     ": no such interface");
        return *named;
    }
    auto upper = vlan_interface(ifname, vlan);
    if (!upper)
        throw std::runtime_error(what + "no VLAN " + id + " interface on " + ifname +
                                 " for the VIPs and heartbeats (ip link add link " + ifname +
                                 " name " + ifname + "." + id + " type vlan id " + id + ")");
    return *upper;
}

} // namespace nlb
