// The second path's socket on real loopback UDP: its buffer holds the burst of copies a
// convergence brings while the agent is busy (a default buffer holds under a hundred), and
// what it cannot hold is counted, so that every datagram sent is either read or counted.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "contact_socket.hpp"

using namespace nlb;
using namespace std::chrono_literals;

namespace {

// A loopback port nobody holds right now (bound and released: the test binds it at once).
std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error(std::string("loopback port: ") + std::strerror(errno));
    ::close(fd);
    return ntohs(a.sin_port);
}

// `count` datagrams of `size` bytes to 127.0.0.1:port; how many the kernel took.
int send_burst(std::uint16_t port, int count, std::size_t size) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    const std::vector<std::uint8_t> d(size, 0x5a);
    int sent = 0;
    for (int i = 0; i < count; ++i)
        if (::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
            static_cast<ssize_t>(d.size()))
            ++sent;
    ::close(fd);
    return sent;
}

} // namespace

TEST_CASE("the second path holds a convergence's burst and counts what it cannot hold") {
    if (::geteuid() != 0) {
        WARN("not root: the buffer is clamped to net.core.rmem_max; skipped");
        return;
    }
    const std::uint16_t port = free_port();
    ContactAddress local;
    local.family = 4;
    local.address = {127, 0, 0, 1};
    local.port = port;
    boost::asio::io_context io;
    ContactSocket socket(io, local);
    // 64 hosts at 100 ms send 630 copies a second during a convergence: a second of them,
    // a heartbeat's size each, queued while nobody reads.
    const int burst = send_burst(port, 630, 1000);
    REQUIRE(burst == 630);
    CHECK(socket.socket_dropped() == 0);
    // Far more than any buffer should hold: the rest is counted, not lost unseen.
    const int flood = send_burst(port, 20000, 1000);
    const std::uint64_t dropped = socket.socket_dropped();
    CHECK(dropped > 0);

    std::uint64_t read = 0, whole = 0;
    socket.start([&](std::span<const std::uint8_t> d) {
        ++read;
        whole += d.size() == 1000;
    });
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (read + dropped < static_cast<std::uint64_t>(burst + flood) &&
           std::chrono::steady_clock::now() < deadline)
        io.run_one_until(deadline);
    io.run_for(20ms); // nothing more comes
    CHECK(read + dropped == static_cast<std::uint64_t>(burst + flood));
    CHECK(whole == read);
    CHECK(read >= 630);
    CHECK(socket.socket_dropped() == dropped);
    socket.close();
}

TEST_CASE("no other socket can take the second path's address and port while the agent holds it") {
    // With SO_REUSEADDR on the agent's socket, another process's socket (any user's) that set
    // it too bound the same address and port and took the peers' datagrams: the agent heard
    // nobody on the second path and, deaf on the segment, went on alone beside the cluster.
    const std::uint16_t port = free_port();
    ContactAddress local;
    local.family = 4;
    local.address = {127, 0, 0, 1};
    local.port = port;
    boost::asio::io_context io;
    ContactSocket socket(io, local);
    for (const in_addr_t address : {htonl(INADDR_LOOPBACK), htonl(INADDR_ANY)}) {
        const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        const int one = 1;
        REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = address;
        a.sin_port = htons(port);
        const int bound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
        const int err = errno;
        ::close(fd);
        CHECK(bound != 0);
        CHECK(err == EADDRINUSE);
    }
    // The peers' datagrams all come to the agent's socket.
    std::uint64_t read = 0;
    socket.start([&](std::span<const std::uint8_t>) { ++read; });
    REQUIRE(send_burst(port, 10, 100) == 10);
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (read < 10 && std::chrono::steady_clock::now() < deadline)
        io.run_one_until(deadline);
    CHECK(read == 10);
    socket.close();
}
