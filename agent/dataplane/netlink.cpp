#include "netlink.hpp"

#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nlb::netlink {

namespace {

struct Request {
    alignas(NLMSG_ALIGNTO) char buf[512] = {};
    nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf); }

    Request(std::uint16_t type, std::uint16_t flags, const void* body, std::size_t len) {
        hdr()->nlmsg_len = static_cast<std::uint32_t>(NLMSG_LENGTH(len));
        hdr()->nlmsg_type = type;
        hdr()->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
        hdr()->nlmsg_seq = 1;
        std::memcpy(NLMSG_DATA(hdr()), body, len);
    }

    void attr(std::uint16_t type, const void* data, std::size_t len) {
        auto* rta = reinterpret_cast<rtattr*>(buf + NLMSG_ALIGN(hdr()->nlmsg_len));
        rta->rta_type = type;
        rta->rta_len = static_cast<std::uint16_t>(RTA_LENGTH(len));
        std::memcpy(RTA_DATA(rta), data, len);
        hdr()->nlmsg_len = static_cast<std::uint32_t>(NLMSG_ALIGN(hdr()->nlmsg_len) +
                                                      RTA_ALIGN(rta->rta_len));
    }
};

int transact(Request& req) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    int result = 0;
    if (sendto(fd, req.buf, req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
        result = -errno;
    } else {
        alignas(NLMSG_ALIGNTO) char reply[1024];
        ssize_t n = recv(fd, reply, sizeof(reply), 0);
        auto* h = reinterpret_cast<nlmsghdr*>(reply);
        if (n < 0)
            result = -errno;
        else if (NLMSG_OK(h, static_cast<unsigned>(n)) && h->nlmsg_type == NLMSG_ERROR)
            result = static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
        else
            result = -EPROTO;
    }
    close(fd);
    return result;
}

int address(std::uint16_t type, std::uint16_t flags, int ifindex, const IpAddress& addr) {
    bool v4 = addr.family == NLB_FAMILY_V4;
    ifaddrmsg msg{};
    msg.ifa_family = v4 ? AF_INET : AF_INET6;
    msg.ifa_prefixlen = v4 ? 32 : 128;
    msg.ifa_scope = RT_SCOPE_UNIVERSE;
    msg.ifa_index = static_cast<std::uint32_t>(ifindex);
    Request req(type, flags, &msg, sizeof(msg));
    std::size_t len = v4 ? 4 : 16;
    req.attr(IFA_LOCAL, addr.words.data(), len);
    req.attr(IFA_ADDRESS, addr.words.data(), len);
    // Every host holds the VIP: duplicate address detection would fail it everywhere.
    std::uint32_t ifa_flags = IFA_F_NODAD | IFA_F_NOPREFIXROUTE;
    req.attr(IFA_FLAGS, &ifa_flags, sizeof(ifa_flags));
    return transact(req);
}

int unicast_filter(std::uint16_t type, std::uint16_t flags, int ifindex, const MacAddress& mac) {
    ndmsg msg{};
    msg.ndm_family = AF_BRIDGE;
    msg.ndm_ifindex = ifindex;
    msg.ndm_state = NUD_PERMANENT;
    msg.ndm_flags = NTF_SELF;
    Request req(type, flags, &msg, sizeof(msg));
    req.attr(NDA_LLADDR, mac.data(), mac.size());
    return transact(req);
}

} // namespace

int add_address(int ifindex, const IpAddress& addr) {
    return address(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, addr);
}

int delete_address(int ifindex, const IpAddress& addr) {
    return address(RTM_DELADDR, 0, ifindex, addr);
}

int add_unicast_filter(int ifindex, const MacAddress& mac) {
    return unicast_filter(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, ifindex, mac);
}

int delete_unicast_filter(int ifindex, const MacAddress& mac) {
    return unicast_filter(RTM_DELNEIGH, 0, ifindex, mac);
}

} // namespace nlb::netlink
