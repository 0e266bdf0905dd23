// Remote control's server (agent/daemon/remote_server.*) on loopback, as nlbadm talks to it: a
// signed request in, the handler run, a signed answer out; and a copy of a request whose answer
// was lost, which nlbadm sends while the host is missing, answered again without running again.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "event_log.hpp"
#include "private_netns.hpp"
#include "remote_server.hpp"

using namespace nlb;

namespace test_remote_server {

namespace {

const std::vector<std::uint8_t> kKeyBytes(32, 0x5a);
const std::uint32_t kLoopback = htonl(INADDR_LOOPBACK);

std::int64_t realtime_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// nlbadm's side: a UDP socket on loopback, its address the reply address.
struct Admin {
    int fd = -1;
    remote::Endpoint reply;

    Admin() {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_addr.s_addr = kLoopback;
        socklen_t len = sizeof(at);
        REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof(at)) == 0);
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len) == 0);
        reply = {kLoopback, ntohs(at.sin_port)};
    }
    ~Admin() { ::close(fd); }

    void send(const std::vector<std::uint8_t>& datagram) const {
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(remote::kPort);
        to.sin_addr.s_addr = kLoopback;
        REQUIRE(::sendto(fd, datagram.data(), datagram.size(), 0,
                         reinterpret_cast<const sockaddr*>(&to),
                         sizeof(to)) == static_cast<ssize_t>(datagram.size()));
    }

    // The next datagram on the socket, the server's io_context run meanwhile; none within
    // 300 ms: nullopt.
    std::optional<std::vector<std::uint8_t>> receive(boost::asio::io_context& io) const {
        std::vector<std::uint8_t> buffer(remote::kMaxAnswerSize + 1);
        for (int i = 0; i < 30; ++i) {
            io.restart();
            io.run_for(std::chrono::milliseconds(10));
            const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
            if (n >= 0) {
                buffer.resize(static_cast<std::size_t>(n));
                return buffer;
            }
        }
        return std::nullopt;
    }
};

} // namespace

TEST_CASE("remote server: a copy of a request already answered gets the same answer, twice at "
          "most, and runs nothing again") {
    const test::PrivateNetns netns;
    boost::asio::io_context io;
    const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(null_fd >= 0);
    EventLog log{LogFormat::text, null_fd};
    char state[] = "/tmp/nlb-replay-XXXXXX";
    const int state_fd = ::mkstemp(state);
    REQUIRE(state_fd >= 0);
    ::close(state_fd);
    ::unlink(state);
    int runs = 0;
    RemoteServer server(
        io, {kLoopback, 2, "127.0.0.2"}, {kKeyBytes, {}}, state,
        [&](const nlohmann::json&) {
            ++runs;
            return nlohmann::json{{"ok", true}, {"run", runs}};
        },
        [] {
            return std::vector<int>{1, 2};
        },
        log);

    Admin admin;
    const remote::ClusterKey key(kKeyBytes);
    remote::Header h;
    h.type = remote::Type::request;
    h.cluster_ip = kLoopback;
    h.timestamp_ms = realtime_ms() + 1; // after the replay memory's floor, the server's start
    REQUIRE(::getrandom(h.nonce.data(), h.nonce.size(), 0) == static_cast<ssize_t>(h.nonce.size()));
    h.reply = admin.reply;
    const auto request = remote::encode(h, R"({"command":"drainstop"})", key);

    admin.send(request);
    const auto first = admin.receive(io);
    REQUIRE(first);
    const auto checked = remote::check_answer(*first, kLoopback, h.nonce, admin.reply, 0, key);
    REQUIRE(checked.drop == remote::Drop::none);
    CHECK(checked.payload["run"] == 1);
    CHECK(runs == 1);

    // The answer was lost on its way: nlbadm sends the same datagram again, twice.
    for (int again = 1; again <= RemoteServer::kAnswerAgain; ++again) {
        admin.send(request);
        const auto copy = admin.receive(io);
        REQUIRE(copy);
        CHECK(*copy == *first);
    }
    CHECK(runs == 1);
    // Past that, copies (someone on the path replaying it) get nothing.
    admin.send(request);
    CHECK_FALSE(admin.receive(io));
    const nlohmann::json counters = server.counters();
    CHECK(counters["answered"] == 1);
    CHECK(counters["answered_again"] == RemoteServer::kAnswerAgain);
    CHECK(counters["dropped_replay"] == 1);

    // Another request is its own: run, answered.
    REQUIRE(::getrandom(h.nonce.data(), h.nonce.size(), 0) == static_cast<ssize_t>(h.nonce.size()));
    admin.send(remote::encode(h, R"({"command":"drainstop"})", key));
    const auto second = admin.receive(io);
    REQUIRE(second);
    CHECK(remote::check_answer(*second, kLoopback, h.nonce, admin.reply, 0, key).payload["run"] ==
          2);
    ::unlink(state);
    ::close(null_fd);
}

} // namespace test_remote_server
