// BatchReader's linger on real loopback UDP sockets: datagrams that come often are read in
// batches without waking the reading thread for each (counted as the thread's voluntary
// context switches, which is what a wakeup costs), datagrams that come rarely are read at
// once without a second turn, an idle socket costs nothing, and none is lost or reordered.
// The io_context runs on the test's thread; a second thread sends.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "batch_reader.hpp"

using namespace nlb;
using namespace std::chrono_literals;

namespace {

// A receiving socket on 127.0.0.1 (a bare descriptor, as the heartbeat socket's) and a
// sending one connected to it.
struct Pair {
    int rx = -1;
    int tx = -1;
    Pair() {
        rx = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        tx = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(a);
        if (rx < 0 || tx < 0 || ::bind(rx, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
            ::connect(tx, reinterpret_cast<sockaddr*>(&a), len) != 0)
            throw std::runtime_error(std::string("loopback sockets: ") + std::strerror(errno));
    }
    ~Pair() {
        ::close(rx);
        ::close(tx);
    }
};

// `count` datagrams numbered 0.., `gap` apart, from a thread of their own.
std::thread send_spaced(int fd, int count, std::chrono::milliseconds gap) {
    return std::thread([=] {
        for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(count); ++i) {
            if (i)
                std::this_thread::sleep_for(gap);
            if (::send(fd, &i, sizeof(i), 0) != sizeof(i))
                return;
        }
    });
}

long thread_wakeups() {
    rusage u{};
    ::getrusage(RUSAGE_THREAD, &u);
    return u.ru_nvcsw;
}

struct Run {
    std::vector<std::uint32_t> got;
    std::uint64_t turns = 0;
    long wakeups = 0;
};

// Reads `p.rx` with `linger` while `count` datagrams come `gap` apart, for `run_for`.
Run read_while_sending(Pair& p, std::chrono::nanoseconds linger, int count,
                       std::chrono::milliseconds gap, std::chrono::milliseconds run_for) {
    boost::asio::io_context io;
    BatchReader reader;
    Run r;
    reader.set_linger(linger);
    reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t> d) {
        std::uint32_t v = 0;
        if (d.size() == sizeof(v))
            std::memcpy(&v, d.data(), sizeof(v));
        r.got.push_back(v);
    });
    const long before = thread_wakeups();
    std::thread sender = send_spaced(p.tx, count, gap);
    io.run_for(run_for);
    r.wakeups = thread_wakeups() - before;
    r.turns = reader.wakeups();
    sender.join();
    reader.stop();
    return r;
}

std::vector<std::uint32_t> numbers(int count) {
    std::vector<std::uint32_t> v;
    for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(count); ++i)
        v.push_back(i);
    return v;
}

} // namespace

TEST_CASE("datagrams that come often are read a linger at a time, every one, in order") {
    Pair p;
    // 60 datagrams 2 ms apart (120 ms), a 20 ms linger: about 7 turns; each datagram on its
    // own would wake the thread 60 times.
    const Run r = read_while_sending(p, 20ms, 60, 2ms, 600ms);
    CHECK(r.got == numbers(60));
    INFO("turns " << r.turns << ", thread wakeups " << r.wakeups);
    CHECK(r.turns <= 20);
    // The datagrams that come while the reader lingers wake nobody: the descriptor is out of
    // the io_context's epoll meanwhile.
    CHECK(r.wakeups <= 25);
}

TEST_CASE("without a linger every datagram is read at once") {
    Pair p;
    const Run r = read_while_sending(p, 0ms, 20, 10ms, 500ms);
    CHECK(r.got == numbers(20));
    // One turn a datagram, unless the machine held the reader while two came.
    CHECK(r.turns >= 10);
    CHECK(r.turns <= 20);
}

TEST_CASE("datagrams that come rarely cost one turn each, and an idle socket none") {
    Pair p;
    // 8 datagrams 80 ms apart against a 10 ms linger: none comes within a linger of the last
    // wakeup, so none is followed by a turn of the timer; after the last, 300 ms of silence.
    const Run r = read_while_sending(p, 10ms, 8, 80ms, 860ms);
    CHECK(r.got == numbers(8));
    INFO("turns " << r.turns << ", thread wakeups " << r.wakeups);
    // A reader that kept polling every linger would take about 86 turns.
    CHECK(r.turns <= 8 + 3);
}

TEST_CASE("a reader stopped while it lingers handles nothing more") {
    Pair p;
    boost::asio::io_context io;
    int handled = 0;
    {
        BatchReader reader;
        reader.set_linger(50ms);
        reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t>) { ++handled; });
        std::uint32_t v = 1;
        REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
        io.run_for(20ms);
        REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
        io.run_for(20ms); // the second came within a linger: the reader now lingers
        REQUIRE(handled == 2);
        REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
        reader.stop();
    }
    io.run_for(100ms); // the cancelled timer's handler runs after the reader is gone
    CHECK(handled == 2);
    // The descriptor was released, not closed: it still reads.
    std::uint32_t v = 0;
    CHECK(::recv(p.rx, &v, sizeof(v), MSG_DONTWAIT) == sizeof(v));
}
