#include "socket_table.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace nlb {

namespace {

[[noreturn]] void fail(const char* what) {
    throw std::system_error(errno, std::generic_category(), std::string("socket table: ") + what);
}

// TCP states that carry a connection this host still answers for; TIME_WAIT has no socket
// left to answer.
constexpr std::uint32_t kStates = (1u << TCP_ESTABLISHED) | (1u << TCP_FIN_WAIT1) |
                                  (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSE_WAIT) |
                                  (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING);

bool v4_mapped(const __u32* a) { return a[0] == 0 && a[1] == 0 && a[2] == htonl(0xffff); }

struct Fd {
    int fd;
    ~Fd() { close(fd); }
};

void dump(int fd, std::uint8_t af, const std::vector<IpAddress>& vips, std::uint32_t states,
          std::vector<nlb_tuple>& out) {
    struct {
        nlmsghdr nlh;
        inet_diag_req_v2 req;
    } msg{};
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.nlh.nlmsg_seq = af;
    msg.req.sdiag_family = af;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = states;
    if (send(fd, &msg, sizeof(msg), 0) != static_cast<ssize_t>(sizeof(msg)))
        fail("send the dump request");
    const std::uint8_t family = af == AF_INET ? NLB_FAMILY_V4 : NLB_FAMILY_V6;
    alignas(nlmsghdr) static thread_local char buf[64 * 1024];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("read the dump");
        }
        auto len = static_cast<unsigned>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE)
                return;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                errno =
                    h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) && e->error ? -e->error : EPROTO;
                fail("dump");
            }
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
                continue;
            const auto* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
            nlb_tuple t{};
            t.family = family;
            const std::size_t words = family == NLB_FAMILY_V4 ? 1 : 4;
            std::memcpy(t.daddr, d->id.idiag_src, words * 4); // local: the VIP
            std::memcpy(t.saddr, d->id.idiag_dst, words * 4); // remote: the client
            if (family == NLB_FAMILY_V6 && v4_mapped(t.daddr)) {
                // an IPv4 client of a dual-stack socket: its packets are IPv4
                t.family = NLB_FAMILY_V4;
                t.daddr[0] = t.daddr[3];
                t.saddr[0] = t.saddr[3];
                t.daddr[1] = t.daddr[2] = t.daddr[3] = 0;
                t.saddr[1] = t.saddr[2] = t.saddr[3] = 0;
            }
            t.dport = d->id.idiag_sport;
            t.sport = d->id.idiag_dport;
            const bool to_vip = std::any_of(vips.begin(), vips.end(), [&](const IpAddress& v) {
                return v.family == t.family &&
                       std::memcmp(v.words.data(), t.daddr, sizeof(t.daddr)) == 0;
            });
            if (to_vip)
                out.push_back(t);
        }
    }
}

} // namespace

std::vector<nlb_tuple> vip_connections(const std::vector<IpAddress>& vips, bool handshakes) {
    // SYN_RECV is a full socket under TCP Fast Open: the child made at the SYN, which the
    // socket program records then and which stays SYN_RECV until the client's ACK (left out
    // of an orphan check, its live record was ended). Asked for, the kernel also lists the
    // handshakes in the listeners' queues (request sockets, as SYN_RECV): they only spare
    // records in an orphan check, but must not be seeded as established connections.
    const std::uint32_t states = kStates | (handshakes ? 1u << TCP_SYN_RECV : 0u);
    std::vector<nlb_tuple> out;
    Fd s{socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
    if (s.fd < 0)
        fail("open a sock_diag socket");
    bool v4 = false, v6 = false;
    for (const auto& v : vips)
        (v.family == NLB_FAMILY_V4 ? v4 : v6) = true;
    if (v4)
        dump(s.fd, AF_INET, vips, states, out);
    if (v4 || v6) // IPv4 clients of dual-stack sockets are in the IPv6 table
        dump(s.fd, AF_INET6, vips, states, out);
    return out;
}

} // namespace nlb
