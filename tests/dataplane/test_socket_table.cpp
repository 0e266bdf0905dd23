// The socket table (sock_diag) lists this namespace's TCP connections to the VIPs, with the
// client as the source, as the dataplane keys them; IPv4 clients of dual-stack sockets as IPv4.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <catch2/catch.hpp>

#include "socket_table.hpp"

using namespace nlb;

namespace {

struct Socket {
    int fd;
    explicit Socket(int family) : fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd >= 0);
    }
    ~Socket() { close(fd); }
};

// A listener on `family`'s loopback (IPv6: dual-stack, ::), a client from 127.0.0.1, the
// accepted socket; returns the client's port and the listener's, host order.
std::pair<std::uint16_t, std::uint16_t> connect_loopback(int family, Socket& listener,
                                                         Socket& client, int& accepted) {
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        int off = 0;
        setsockopt(listener.fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
        len = sizeof(*a);
    }
    REQUIRE(bind(listener.fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
    REQUIRE(listen(listener.fd, 4) == 0);
    REQUIRE(getsockname(listener.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    const std::uint16_t port = ntohs(family == AF_INET
                                         ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                         : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    REQUIRE(connect(client.fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0);
    accepted = accept(listener.fd, nullptr, nullptr);
    REQUIRE(accepted >= 0);
    sockaddr_in from{};
    socklen_t flen = sizeof(from);
    REQUIRE(getsockname(client.fd, reinterpret_cast<sockaddr*>(&from), &flen) == 0);
    return {ntohs(from.sin_port), port};
}

} // namespace

TEST_CASE("the socket table lists connections to the VIPs, keyed as the dataplane keys them") {
    const int family = GENERATE(AF_INET, AF_INET6);
    CAPTURE(family);
    Socket listener(family), client(AF_INET);
    int accepted = -1;
    // not a structured binding: clang 14 cannot capture one in a lambda
    const auto ports = connect_loopback(family, listener, client, accepted);
    const std::uint16_t client_port = ports.first, port = ports.second;
    IpAddress loopback{};
    loopback.family = NLB_FAMILY_V4;
    loopback.words[0] = htonl(INADDR_LOOPBACK);

    const auto listed = vip_connections({loopback});
    const auto found = std::find_if(listed.begin(), listed.end(), [&](const nlb_tuple& t) {
        return t.family == NLB_FAMILY_V4 && t.dport == htons(port) &&
               t.sport == htons(client_port) && t.daddr[0] == htonl(INADDR_LOOPBACK) &&
               t.saddr[0] == htonl(INADDR_LOOPBACK);
    });
    CHECK(found != listed.end());
    // the client's own socket (local port = client_port) is to the VIP too, but from the
    // other side: listed with the listener's port as the client's
    IpAddress other = loopback;
    other.words[0] = htonl(0x7f000002);
    CHECK(vip_connections({other}).empty());
    close(accepted);
}
