// BatchReader's linger on real loopback UDP sockets: datagrams that come often are read in
// batches without waking the reading thread for each (counted as the thread's voluntary
// context switches, which is what a wakeup costs), datagrams that come rarely are read at
// once without a second turn, an idle socket costs nothing, and none is lost or reordered.
// Each turn's datagrams end with one batch end (on_batch_end), which may destroy the reader.
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
#include <memory>
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
    std::uint64_t turns = 0;         // the reader's turns until the last datagram was handled
    long wakeups = 0;                // the thread's voluntary context switches meanwhile
    std::chrono::nanoseconds took{}; // from the first send to the last datagram handled
    std::uint64_t idle_turns = 0;    // turns in the `idle` after it
};

// Reads `p.rx` with `linger` while `count` datagrams come `gap` apart, until every one is
// handled (5 s at most), then `idle` more. Bounds in the tests count in lingers of `took`, so
// that a machine that stretches the sender's gaps stretches them too.
Run read_while_sending(Pair& p, std::chrono::nanoseconds linger, int count,
                       std::chrono::milliseconds gap, std::chrono::milliseconds idle) {
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
    const auto t0 = std::chrono::steady_clock::now();
    const auto deadline = t0 + 5s;
    std::thread sender = send_spaced(p.tx, count, gap);
    while (r.got.size() < static_cast<std::size_t>(count) &&
           std::chrono::steady_clock::now() < deadline)
        io.run_one_until(deadline);
    r.took = std::chrono::steady_clock::now() - t0;
    r.wakeups = thread_wakeups() - before;
    r.turns = reader.wakeups();
    io.run_for(idle);
    r.idle_turns = reader.wakeups() - r.turns;
    sender.join();
    reader.stop();
    return r;
}

std::uint64_t lingers_in(std::chrono::nanoseconds took, std::chrono::nanoseconds linger) {
    return static_cast<std::uint64_t>(took / linger);
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
    // 60 datagrams 2 ms apart (120 ms), a 20 ms linger: a turn a linger and a few around
    // them; each datagram on its own would wake the thread 60 times.
    const Run r = read_while_sending(p, 20ms, 60, 2ms, 100ms);
    CHECK(r.got == numbers(60));
    const std::uint64_t lingers = lingers_in(r.took, 20ms);
    INFO("took " << r.took.count() / 1000000 << " ms, turns " << r.turns << ", thread wakeups "
                 << r.wakeups);
    CHECK(r.turns <= lingers + 6);
    // The datagrams that come while the reader lingers wake nobody: the descriptor is out of
    // the io_context's epoll meanwhile.
    CHECK(static_cast<std::uint64_t>(r.wakeups) <= lingers + 10);
    CHECK(r.idle_turns <= 1); // the last linger's turn, which finds nothing
}

TEST_CASE("without a linger every datagram is read at once") {
    Pair p;
    const Run r = read_while_sending(p, 0ms, 20, 10ms, 50ms);
    CHECK(r.got == numbers(20));
    // One turn a datagram, unless the machine held the reader while two came.
    CHECK(r.turns >= 10);
    CHECK(r.turns <= 20);
    CHECK(r.idle_turns == 0);
}

TEST_CASE("datagrams that come rarely cost one turn each, and an idle socket none") {
    Pair p;
    // 8 datagrams 80 ms apart against a 10 ms linger: none comes within a linger of the last
    // wakeup, so none is followed by a turn of the timer (a reader that kept polling every
    // linger would take about 56 turns); after the last, 300 ms of silence.
    const Run r = read_while_sending(p, 10ms, 8, 80ms, 300ms);
    CHECK(r.got == numbers(8));
    INFO("took " << r.took.count() / 1000000 << " ms, turns " << r.turns);
    // Each pair the machine bunched within a linger costs one turn more.
    CHECK(r.turns <= 8 + 3);
    CHECK(r.idle_turns <= 1);
}

TEST_CASE("a reader stopped while it lingers handles nothing more") {
    Pair p;
    boost::asio::io_context io;
    int handled = 0;
    {
        BatchReader reader;
        reader.set_linger(10s); // lingers for the rest of the test once it starts to
        reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t>) { ++handled; });
        std::uint32_t v = 1;
        REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
        io.run_for(20ms);
        REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
        io.run_for(20ms); // the second came within a linger of the first: the reader lingers
        REQUIRE(handled == 2);
        REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
        io.run_for(50ms);
        REQUIRE(handled == 2); // lingering: the third waits for the linger's end
        reader.stop();
    }
    io.run_for(100ms); // the cancelled timer's handler runs after the reader is gone
    CHECK(handled == 2);
    // The descriptor was released, not closed: it still reads.
    std::uint32_t v = 0;
    CHECK(::recv(p.rx, &v, sizeof(v), MSG_DONTWAIT) == sizeof(v));
}

TEST_CASE("each turn's datagrams are followed by one batch end, a full batch's too") {
    Pair p;
    boost::asio::io_context io;
    BatchReader reader;
    std::size_t in_batch = 0, handled = 0;
    std::vector<std::size_t> batches;
    reader.on_batch_end([&] {
        batches.push_back(in_batch);
        in_batch = 0;
    });
    // 150 queued before the reader starts: two full batches of kBatch, then the rest.
    for (std::uint32_t i = 0; i < 150; ++i)
        REQUIRE(::send(p.tx, &i, sizeof(i), 0) == sizeof(i));
    reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t>) {
        ++in_batch;
        ++handled;
    });
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (handled < 150 && std::chrono::steady_clock::now() < deadline)
        io.run_one_until(deadline);
    REQUIRE(handled == 150);
    CHECK(in_batch == 0); // every datagram's batch has ended
    CHECK(batches == std::vector<std::size_t>{BatchReader::kBatch, BatchReader::kBatch,
                                              150 - 2 * BatchReader::kBatch});
    // A turn that finds nothing ends no batch; the next datagram ends its own.
    io.run_for(50ms);
    CHECK(batches.size() == 3);
    std::uint32_t v = 7;
    REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
    io.run_for(50ms);
    CHECK(batches == std::vector<std::size_t>{BatchReader::kBatch, BatchReader::kBatch,
                                              150 - 2 * BatchReader::kBatch, 1});
    reader.stop();
}

TEST_CASE("a drain reads what waits at once, as one batch, and leaves the reader's turns "
          "as they were") {
    // The agent drains its heartbeat sockets before the engine's tick, so that the tick does
    // not count peers dead whose frames wait there (a lingering reader holds them up to a
    // linger; a held-up agent, longer).
    Pair p;
    boost::asio::io_context io;
    BatchReader reader;
    std::vector<std::uint32_t> got;
    std::vector<std::size_t> batches;
    std::size_t in_batch = 0;
    reader.on_batch_end([&] {
        batches.push_back(in_batch);
        in_batch = 0;
    });
    reader.set_linger(10s); // once it lingers, only a drain reads before the test ends
    reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t> d) {
        std::uint32_t v = 0;
        if (d.size() == sizeof(v))
            std::memcpy(&v, d.data(), sizeof(v));
        got.push_back(v);
        ++in_batch;
    });
    CHECK(reader.drain(8)); // nothing queued: no batch, and it found the socket empty
    CHECK(batches.empty());
    std::uint32_t v = 0;
    REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
    io.run_for(20ms);
    v = 1;
    REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
    io.run_for(20ms); // within a linger of the first: the reader lingers from now on
    REQUIRE(got == numbers(2));
    for (v = 2; v < 12; ++v)
        REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
    io.run_for(30ms);
    CHECK(got.size() == 2); // lingering
    const auto turns = reader.wakeups();
    CHECK_FALSE(reader.drain(4)); // at most four, and more may wait
    CHECK(got == numbers(6));
    CHECK(reader.drain(100)); // the rest, one batch, and then the socket is empty
    CHECK(got == numbers(12));
    CHECK(batches == std::vector<std::size_t>{1, 1, 4, 6});
    CHECK(reader.wakeups() == turns); // the reader's own turns are untouched
    CHECK(reader.received() == 12);
    reader.stop();
}

TEST_CASE("a drain between the reader's turns loses and repeats nothing") {
    Pair p;
    boost::asio::io_context io;
    BatchReader reader;
    std::vector<std::uint32_t> got;
    reader.set_linger(5ms);
    reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t> d) {
        std::uint32_t v = 0;
        if (d.size() == sizeof(v))
            std::memcpy(&v, d.data(), sizeof(v));
        got.push_back(v);
    });
    // 200 datagrams 1 ms apart while the test drains every 3 ms or so between turns: every
    // one read once, in order, whoever reads it.
    std::thread sender = send_spaced(p.tx, 200, 1ms);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (got.size() < 200 && std::chrono::steady_clock::now() < deadline) {
        io.run_for(3ms);
        reader.drain(16);
    }
    sender.join();
    io.run_for(20ms);
    CHECK(got == numbers(200));
    reader.stop();
}

TEST_CASE("a batch end may destroy its reader") {
    Pair p;
    boost::asio::io_context io;
    auto reader = std::make_unique<BatchReader>();
    int handled = 0, ended = 0;
    reader->on_batch_end([&] {
        ++ended;
        reader.reset();
    });
    reader->start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t>) { ++handled; });
    for (std::uint32_t i = 0; i < 3; ++i)
        REQUIRE(::send(p.tx, &i, sizeof(i), 0) == sizeof(i));
    io.run_for(50ms);
    CHECK(handled == 3);
    CHECK(ended == 1);
    CHECK(!reader);
    std::uint32_t v = 9;
    REQUIRE(::send(p.tx, &v, sizeof(v), 0) == sizeof(v));
    io.run_for(50ms);
    CHECK(handled == 3);
    CHECK(ended == 1);
}

TEST_CASE("datagrams read in one call keep their own sender and length") {
    // Two senders, datagrams of lengths that differ, all queued before the reader starts, so
    // they come in one system call; one is longer than kDatagram and is cut to it.
    Pair p;
    Pair other; // only its sending socket is used, pointed at p's receiver
    sockaddr_in to{};
    socklen_t len = sizeof(to);
    REQUIRE(::getsockname(p.rx, reinterpret_cast<sockaddr*>(&to), &len) == 0);
    REQUIRE(::connect(other.tx, reinterpret_cast<sockaddr*>(&to), len) == 0);
    auto port_of = [](int fd) {
        sockaddr_in a{};
        socklen_t l = sizeof(a);
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
        return ntohs(a.sin_port);
    };
    const std::vector<std::size_t> sizes{1, 700, BatchReader::kDatagram + 100, 3, 1400};
    std::vector<std::uint16_t> want_ports;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        const int fd = i % 2 ? other.tx : p.tx;
        const std::vector<std::uint8_t> d(sizes[i], static_cast<std::uint8_t>(i + 1));
        REQUIRE(::send(fd, d.data(), d.size(), 0) == static_cast<ssize_t>(d.size()));
        want_ports.push_back(port_of(fd));
    }
    boost::asio::io_context io;
    BatchReader reader;
    std::vector<std::size_t> got_sizes;
    std::vector<std::uint16_t> got_ports;
    bool filled = true;
    reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t> d) {
        const std::uint8_t mark = static_cast<std::uint8_t>(got_sizes.size() + 1);
        for (std::uint8_t b : d)
            filled = filled && b == mark;
        got_sizes.push_back(d.size());
        const auto& s = reinterpret_cast<const sockaddr_in&>(reader.source());
        got_ports.push_back(s.sin_family == AF_INET ? ntohs(s.sin_port) : 0);
    });
    io.run_for(50ms);
    reader.stop();
    CHECK(reader.wakeups() == 1);
    CHECK(got_sizes == std::vector<std::size_t>{1, 700, BatchReader::kDatagram, 3, 1400});
    CHECK(got_ports == want_ports);
    CHECK(filled);
}

TEST_CASE("each datagram comes with the time it came, not the time it is read") {
    // What queued up while the process did not run (a stall) must be known for its age: the
    // kernel's receive timestamp, carried over to the steady clock. The reader is started
    // (which asks for the stamps) before anything is sent, but runs only after both came.
    Pair p;
    boost::asio::io_context io;
    BatchReader reader;
    std::vector<std::uint32_t> got;
    std::vector<std::chrono::steady_clock::time_point> arrivals, reads;
    reader.start(io.get_executor(), p.rx, [&](std::span<const std::uint8_t> d) {
        std::uint32_t v = 0;
        if (d.size() == sizeof(v))
            std::memcpy(&v, d.data(), sizeof(v));
        got.push_back(v);
        arrivals.push_back(reader.arrival());
        reads.push_back(std::chrono::steady_clock::now());
    });
    // The kernel turns stamping on shortly after the first socket asks (a deferred work): a
    // datagram that comes before is stamped when it is read. Probes until one, read 20 ms
    // after it was sent, shows its age (2 s at most).
    const std::uint32_t probe = 0;
    bool stamping = false;
    for (int i = 0; i < 100 && !stamping; ++i) {
        REQUIRE(::send(p.tx, &probe, sizeof(probe), 0) == sizeof(probe));
        std::this_thread::sleep_for(20ms);
        io.run_for(5ms);
        stamping = !reads.empty() && reads.back() - arrivals.back() >= 15ms;
    }
    REQUIRE(stamping);
    got.clear();
    arrivals.clear();
    reads.clear();
    const std::uint32_t first = 1, second = 2;
    const auto sent_first = std::chrono::steady_clock::now();
    REQUIRE(::send(p.tx, &first, sizeof(first), 0) == sizeof(first));
    std::this_thread::sleep_for(300ms);
    const auto sent_second = std::chrono::steady_clock::now();
    REQUIRE(::send(p.tx, &second, sizeof(second), 0) == sizeof(second));
    std::this_thread::sleep_for(200ms);
    io.run_for(50ms);
    reader.stop();
    REQUIRE(got == std::vector<std::uint32_t>{1, 2});
    // Loopback delivers at once: each stamp lies between its send and the next step.
    CHECK(arrivals[0] >= sent_first - 5ms);
    CHECK(arrivals[0] <= sent_second);
    CHECK(arrivals[1] >= sent_second - 5ms);
    CHECK(arrivals[1] <= sent_second + 150ms);
    CHECK(reads[0] - arrivals[0] >= 450ms);
    CHECK(reads[1] - arrivals[1] >= 150ms);
}

TEST_CASE("a receive stamp is dated by the steady clock unless the wall clock was set since") {
    using Clocks = BatchReader::Clocks;
    using steady = std::chrono::steady_clock;
    // The wall clock 1,000 s ahead of the steady one; the socket last empty at steady 50 s.
    const auto at = [](std::chrono::milliseconds ms) { return steady::time_point(ms); };
    const Clocks empty{1050s, at(50s)};
    const Clocks read{1060s, at(60s)};
    // Stamped at wall 1058 s: 2 s before the read.
    CHECK(BatchReader::steady_arrival(1058s, read, empty, at(50s)) == at(58s));
    // Not before the socket was last found empty, nor after the read.
    CHECK(BatchReader::steady_arrival(1040s, read, empty, at(50s)) == at(50s));
    CHECK(BatchReader::steady_arrival(1065s, read, empty, at(50s)) == at(60s));
    // NTP's slewing moves both clocks alike; a drift under a millisecond is reading jitter.
    CHECK(BatchReader::steady_arrival(1058s, Clocks{1060s + 900us, at(60s)}, empty, at(50s)) ==
          at(58s) - 900us);
    // The wall clock set forward 5 s (or back) since the socket was empty: a stamp taken
    // before the step would be dated 5 s early, one after it right. Which it is cannot be
    // told: it counts as read just now, as a datagram without a stamp does.
    CHECK(BatchReader::steady_arrival(1063s, Clocks{1065s, at(60s)}, empty, at(50s)) == at(60s));
    CHECK(BatchReader::steady_arrival(1053s, Clocks{1055s, at(60s)}, empty, at(50s)) == at(60s));
    // Never found empty yet: only the read bounds it.
    CHECK(BatchReader::steady_arrival(1058s, read, Clocks{}, steady::time_point{}) == at(58s));
}
