#include "netlink.hpp"

#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

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

int address(std::uint16_t type, std::uint16_t flags, int ifindex, const IpAddress& addr,
            std::uint8_t scope = RT_SCOPE_UNIVERSE, std::uint32_t extra_flags = 0,
            const std::string& label = "") {
    bool v4 = addr.family == NLB_FAMILY_V4;
    ifaddrmsg msg{};
    msg.ifa_family = v4 ? AF_INET : AF_INET6;
    msg.ifa_prefixlen = v4 ? 32 : 128;
    msg.ifa_scope = scope;
    msg.ifa_index = static_cast<std::uint32_t>(ifindex);
    Request req(type, flags, &msg, sizeof(msg));
    std::size_t len = v4 ? 4 : 16;
    req.attr(IFA_LOCAL, addr.words.data(), len);
    req.attr(IFA_ADDRESS, addr.words.data(), len);
    // Every host holds the VIP: duplicate address detection would fail it everywhere.
    std::uint32_t ifa_flags = IFA_F_NODAD | IFA_F_NOPREFIXROUTE | extra_flags;
    req.attr(IFA_FLAGS, &ifa_flags, sizeof(ifa_flags));
    if (!label.empty())
        req.attr(IFA_LABEL, label.c_str(), label.size() + 1);
    return transact(req);
}

IpAddress ipv4(std::uint32_t addr) {
    IpAddress a{};
    a.family = NLB_FAMILY_V4;
    a.words[0] = addr;
    return a;
}

// Sends the dump request and hands each message of `type` (at least `min_len` bytes of body)
// to `each`. 0 once the dump is read to its end (NLMSG_DONE) within a bounded number of
// datagrams, every message checked against its length; a negative errno otherwise.
template <typename Each>
int dump(Request& req, std::uint16_t type, std::size_t min_len, Each each) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    req.hdr()->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, req.buf, req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    int result = -EPROTO; // until NLMSG_DONE: an answer cut short is no answer
    bool done = false;
    alignas(NLMSG_ALIGNTO) char reply[32768];
    // Thousands of addresses or filters fit in this many datagrams.
    for (int datagrams = 0; datagrams < 4096 && !done; ++datagrams) {
        ssize_t n = recv(fd, reply, sizeof(reply), 0);
        if (n < 0) {
            result = -errno;
            break;
        }
        auto len = static_cast<unsigned>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(h, len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                result = 0;
                done = true;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                result = h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) && e->error < 0 ? e->error
                                                                                        : -EIO;
                done = true;
                break;
            }
            if (h->nlmsg_type == type && h->nlmsg_len >= NLMSG_LENGTH(min_len))
                each(h);
        }
    }
    close(fd);
    return result;
}

// The flags of the IPv4 /32 address `addr` on the interface: 0 and *flags set when present,
// -ENOENT when not, another negative errno when the dump fails.
int ipv4_address_flags(int ifindex, std::uint32_t addr, std::uint32_t* flags) {
    ifaddrmsg msg{};
    msg.ifa_family = AF_INET;
    Request req(RTM_GETADDR, 0, &msg, sizeof(msg));
    bool found = false;
    const int err = dump(req, RTM_NEWADDR, sizeof(ifaddrmsg), [&](nlmsghdr* h) {
        const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
        if (ifa->ifa_family != AF_INET || ifa->ifa_index != static_cast<unsigned>(ifindex) ||
            ifa->ifa_prefixlen != 32)
            return;
        bool match = false;
        std::uint32_t ifa_flags = ifa->ifa_flags;
        auto attrs = static_cast<unsigned>(IFA_PAYLOAD(h));
        for (auto* rta = IFA_RTA(ifa); RTA_OK(rta, attrs); rta = RTA_NEXT(rta, attrs)) {
            if (rta->rta_type == IFA_LOCAL && RTA_PAYLOAD(rta) == 4)
                match = std::memcmp(RTA_DATA(rta), &addr, 4) == 0;
            else if (rta->rta_type == IFA_FLAGS && RTA_PAYLOAD(rta) == 4)
                std::memcpy(&ifa_flags, RTA_DATA(rta), 4); // all of them, not the u8 copy
        }
        if (match) {
            found = true;
            *flags = ifa_flags;
        }
    });
    return err ? err : found ? 0 : -ENOENT;
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

int add_group_address(int ifindex, std::uint32_t group, const std::string& label, bool* created) {
    const std::uint8_t scope = RT_SCOPE_HOST;
    int rc = address(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, ipv4(group), scope,
                     IFA_F_MCAUTOJOIN, label);
    if (created)
        *created = rc == 0;
    if (rc != -EEXIST)
        return rc;
    // A restarted agent adopts the membership its predecessor left (a replace would not
    // change the flags: the kernel keeps an existing address's).
    std::uint32_t flags = 0;
    if (int err = ipv4_address_flags(ifindex, group, &flags))
        return err == -ENOENT ? -EEXIST : err; // deleted meanwhile: say so, do not guess
    if (flags & IFA_F_MCAUTOJOIN)
        return 0;
    if (int err = address(RTM_DELADDR, 0, ifindex, ipv4(group)); err && err != -EADDRNOTAVAIL)
        return err;
    return address(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, ipv4(group), scope,
                   IFA_F_MCAUTOJOIN, label);
}

int delete_group_address(int ifindex, std::uint32_t group) {
    return address(RTM_DELADDR, 0, ifindex, ipv4(group));
}

int count_filters(int ifindex, std::uint32_t parent) {
    tcmsg msg{};
    msg.tcm_family = AF_UNSPEC;
    msg.tcm_ifindex = ifindex;
    msg.tcm_parent = parent;
    Request req(RTM_GETTFILTER, 0, &msg, sizeof(msg));
    int n = 0;
    const int err = dump(req, RTM_NEWTFILTER, sizeof(tcmsg), [&](nlmsghdr* h) {
        const auto* t = static_cast<const tcmsg*>(NLMSG_DATA(h));
        n += t->tcm_ifindex == ifindex && t->tcm_parent == parent;
    });
    return err ? err : n;
}

} // namespace nlb::netlink
