#include "host_interface.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "errstr.hpp"
#include "netlink.hpp"

namespace nlb {

namespace {

std::string arp_announce_path(const std::string& ifname) {
    return "/proc/sys/net/ipv4/conf/" + ifname + "/arp_announce";
}

// SIOCADDMULTI/SIOCDELMULTI act on the device's global multicast list: adding twice is one
// entry, so a restarted agent adding it again changes nothing.
int multicast_filter(unsigned long request, const std::string& ifname, const MacAddress& mac) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ifreq req{};
    std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    req.ifr_hwaddr.sa_family = AF_UNSPEC;
    std::memcpy(req.ifr_hwaddr.sa_data, mac.data(), mac.size());
    int rc = ioctl(fd, request, &req) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

std::uint16_t checksum(const std::vector<std::uint8_t>& b, std::uint32_t sum) {
    for (std::size_t i = 0; i + 1 < b.size(); i += 2)
        sum += static_cast<std::uint32_t>(b[i] << 8 | b[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

void append(std::vector<std::uint8_t>& b, const void* p, std::size_t n) {
    auto* c = static_cast<const std::uint8_t*>(p);
    b.insert(b.end(), c, c + n);
}

std::vector<std::uint8_t> gratuitous_arp(const MacAddress& src, const MacAddress& cmac,
                                         const IpAddress& vip) {
    std::vector<std::uint8_t> f(6, 0xff);
    append(f, src.data(), 6);
    f.insert(f.end(), {0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02});
    append(f, cmac.data(), 6);
    append(f, vip.words.data(), 4);
    f.insert(f.end(), 6, 0xff);
    append(f, vip.words.data(), 4);
    f.resize(60, 0);
    return f;
}

std::vector<std::uint8_t> unsolicited_na(const MacAddress& src, const MacAddress& cmac,
                                         const IpAddress& vip) {
    const std::uint8_t all_nodes[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::vector<std::uint8_t> icmp{136, 0, 0, 0, 0x20 /* override */, 0, 0, 0};
    append(icmp, vip.words.data(), 16);
    icmp.insert(icmp.end(), {2, 1});
    append(icmp, cmac.data(), 6);
    std::vector<std::uint8_t> pseudo;
    append(pseudo, vip.words.data(), 16);
    append(pseudo, all_nodes, 16);
    pseudo.insert(pseudo.end(), {0, 0, 0, static_cast<std::uint8_t>(icmp.size()), 0, 0, 0, 58});
    append(pseudo, icmp.data(), icmp.size());
    std::uint16_t c = checksum(pseudo, 0);
    icmp[2] = static_cast<std::uint8_t>(c >> 8);
    icmp[3] = static_cast<std::uint8_t>(c);

    std::vector<std::uint8_t> f{0x33, 0x33, 0, 0, 0, 1};
    append(f, src.data(), 6);
    f.insert(f.end(), {0x86, 0xdd, 0x60, 0, 0, 0, 0, static_cast<std::uint8_t>(icmp.size()), 58,
                       255});
    append(f, vip.words.data(), 16);
    append(f, all_nodes, 16);
    append(f, icmp.data(), icmp.size());
    return f;
}

} // namespace

MacAddress interface_mac(const std::string& ifname) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq req{};
    std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &req) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        throw std::runtime_error("attach " + ifname + ": read its MAC: " + errstr(err));
    }
    close(fd);
    MacAddress mac;
    std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
    return mac;
}

HostInterface::HostInterface(InterfacePlan plan) : plan_(std::move(plan)) {
    ifindex_ = static_cast<int>(if_nametoindex(plan_.ifname.c_str()));
    if (!ifindex_)
        throw std::runtime_error("attach " + plan_.ifname + ": no such interface");
    try {
        apply();
    } catch (...) {
        undo();
        throw;
    }
}

void HostInterface::apply() {
    std::string what = "attach " + plan_.ifname + ": ";
    MacAddress cmac = cluster_mac(plan_.cluster_ip, plan_.mode);

    std::ifstream in(arp_announce_path(plan_.ifname));
    std::getline(in, saved_arp_announce_);
    if (!plan_.saved_settings.empty()) {
        // Kept by the agent that attached first, "IFNAME VALUE": what it found is the
        // operator's value, and what this one reads may be that agent's 2. Another
        // interface's is no business of this attach.
        std::ifstream kept(plan_.saved_settings);
        std::string name, before;
        if (kept >> name >> before && name == plan_.ifname)
            saved_arp_announce_ = before;
        else
            std::ofstream(plan_.saved_settings)
                << plan_.ifname << " " << saved_arp_announce_ << "\n";
    }
    std::ofstream(arp_announce_path(plan_.ifname)) << "2\n";

    int rc = 0;
    switch (plan_.mode) {
    case ClusterMode::unicast:
        rc = netlink::add_unicast_filter(ifindex_, cmac);
        break;
    case ClusterMode::multicast:
        rc = multicast_filter(SIOCADDMULTI, plan_.ifname, cmac);
        break;
    case ClusterMode::igmp:
        // Not a socket's membership: one dies with the agent (kill -9, --keep-dataplane), and
        // the NIC and the snooping switches would stop delivering to the pinned dataplane.
        // "eth0:nlb": an alias of the interface to ifconfig; IFNAMSIZ holds 15 bytes.
        rc = netlink::add_group_address(ifindex_, igmp_group(plan_.cluster_ip),
                                        plan_.ifname.substr(0, 11) + ":nlb");
        if (rc)
            throw std::runtime_error(what + "join group " + group_name() + " (cluster MAC " +
                                     to_string(cmac) + "): " + errstr(rc));
        break;
    }
    if (rc && rc != -EEXIST)
        throw std::runtime_error(what + "add cluster MAC " + to_string(cmac) + " (" +
                                 to_string(plan_.mode) + "): " + errstr(rc));

    add_missing_vips(what);
}

std::vector<IpAddress> HostInterface::add_missing_vips(const std::string& what) {
    std::vector<IpAddress> added;
    for (const auto& vip : plan_.vips) {
        const int rc = netlink::add_address(ifindex_, vip);
        if (rc && rc != -EEXIST)
            throw std::runtime_error(what + "add VIP " + vip.to_string() + ": " + errstr(rc));
        if (rc == 0)
            added.push_back(vip);
    }
    return added;
}

std::vector<std::string> HostInterface::restore() {
    const std::string what = "restore " + plan_.ifname + ": ";
    std::vector<std::string> restored;
    const MacAddress cmac = cluster_mac(plan_.cluster_ip, plan_.mode);
    int rc = 0;
    bool created = false;
    switch (plan_.mode) {
    case ClusterMode::unicast:
        rc = netlink::add_unicast_filter(ifindex_, cmac);
        created = rc == 0;
        break;
    case ClusterMode::multicast:
        break; // SIOCADDMULTI counts references: no asking twice (and down/up keeps the list)
    case ClusterMode::igmp:
        rc = netlink::add_group_address(ifindex_, igmp_group(plan_.cluster_ip),
                                        plan_.ifname.substr(0, 11) + ":nlb", &created);
        break;
    }
    if (rc && rc != -EEXIST)
        throw std::runtime_error(what + "cluster MAC " + to_string(cmac) + ": " + errstr(rc));
    if (created)
        restored.push_back(plan_.mode == ClusterMode::igmp ? "group " + group_name()
                                                           : "cluster MAC " + to_string(cmac));
    for (const auto& vip : add_missing_vips(what))
        restored.push_back("VIP " + vip.to_string());
    return restored;
}

std::string HostInterface::group_name() const {
    IpAddress group{};
    group.family = NLB_FAMILY_V4;
    group.words[0] = igmp_group(plan_.cluster_ip);
    return group.to_string();
}

std::vector<IpAddress> HostInterface::remove_vips(const std::string& ifname,
                                                  const std::vector<IpAddress>& from,
                                                  const std::vector<IpAddress>& keep) {
    const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    std::vector<IpAddress> removed;
    for (const auto& vip : from) {
        if (std::find(keep.begin(), keep.end(), vip) != keep.end())
            continue;
        const int rc = netlink::delete_address(ifindex, vip);
        if (rc && rc != -EADDRNOTAVAIL && rc != -ENOENT)
            throw std::runtime_error("remove VIP " + vip.to_string() + " from " + ifname + ": " +
                                     errstr(rc));
        if (rc == 0)
            removed.push_back(vip);
    }
    return removed;
}

void HostInterface::remove_vips_except(const std::vector<IpAddress>& next) {
    remove_vips(plan_.ifname, plan_.vips, next);
    std::erase_if(plan_.vips, [&](const IpAddress& vip) {
        return std::find(next.begin(), next.end(), vip) == next.end();
    });
}

std::vector<IpAddress> HostInterface::add_vips(const std::vector<IpAddress>& next) {
    std::vector<IpAddress> added;
    for (const auto& vip : next) {
        if (std::find(plan_.vips.begin(), plan_.vips.end(), vip) != plan_.vips.end())
            continue;
        const int rc = netlink::add_address(ifindex_, vip);
        if (rc && rc != -EEXIST)
            throw std::runtime_error("add VIP " + vip.to_string() + " to " + plan_.ifname + ": " +
                                     errstr(rc));
        plan_.vips.push_back(vip); // undo() takes it away again
        added.push_back(vip);
    }
    return added;
}

void HostInterface::announce(const std::vector<IpAddress>& vips) const {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw std::runtime_error("announce VIPs on " + plan_.ifname + ": " + errstr(errno));
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex_;
    to.sll_halen = 6;
    MacAddress src = masked_source_mac(plan_.cluster_ip, plan_.host_priority);
    MacAddress cmac = cluster_mac(plan_.cluster_ip, plan_.mode);
    for (const auto& vip : vips) {
        auto frame = vip.family == NLB_FAMILY_V4 ? gratuitous_arp(src, cmac, vip)
                                                 : unsolicited_na(src, cmac, vip);
        std::memcpy(to.sll_addr, frame.data(), 6);
        if (sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to),
                   sizeof(to)) < 0) {
            int err = errno;
            close(fd);
            throw std::runtime_error("announce " + vip.to_string() + " on " + plan_.ifname +
                                     ": " + errstr(err));
        }
    }
    close(fd);
}

void HostInterface::undo() {
    remove(plan_, ifindex_, saved_arp_announce_);
}

void HostInterface::take_down(const InterfacePlan& plan) {
    const int ifindex = static_cast<int>(if_nametoindex(plan.ifname.c_str()));
    if (!ifindex)
        return; // gone, and what it held with it
    std::string before;
    InterfacePlan what = plan;
    if (!plan.saved_settings.empty()) {
        std::ifstream kept(plan.saved_settings);
        std::string name;
        if (!(kept >> name >> before) || name != plan.ifname) {
            // Another interface's, or none: not this take-down's to use up.
            before.clear();
            what.saved_settings.clear();
        }
    }
    remove(what, ifindex, before);
}

void HostInterface::remove_cluster_mac(const InterfacePlan& plan) {
    if (const int ifindex = static_cast<int>(if_nametoindex(plan.ifname.c_str())))
        remove_cluster_mac(plan, ifindex);
}

void HostInterface::remove_cluster_mac(const InterfacePlan& plan, int ifindex) {
    MacAddress cmac = cluster_mac(plan.cluster_ip, plan.mode);
    if (plan.mode == ClusterMode::unicast)
        netlink::delete_unicast_filter(ifindex, cmac);
    else if (plan.mode == ClusterMode::multicast)
        multicast_filter(SIOCDELMULTI, plan.ifname, cmac);
    else
        netlink::delete_group_address(ifindex, igmp_group(plan.cluster_ip));
}

void HostInterface::remove(const InterfacePlan& plan, int ifindex,
                           const std::string& arp_announce) {
    for (const auto& vip : plan.vips)
        netlink::delete_address(ifindex, vip);
    remove_cluster_mac(plan, ifindex);
    if (!arp_announce.empty())
        std::ofstream(arp_announce_path(plan.ifname)) << arp_announce << "\n";
    if (!plan.saved_settings.empty())
        ::unlink(plan.saved_settings.c_str());
}

} // namespace nlb
