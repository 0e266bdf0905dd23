// The metrics endpoint over real loopback sockets: the answers, and the bounds a hostile
// client runs into (head size, deadline, connections at once). The server runs its own
// io_context on a thread; the test is a plain blocking client.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "metrics_server.hpp"

using namespace nlb;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const MetricsLimits kLimits{8 * 1024, 400ms, 16};

// A server on 127.0.0.1, an ephemeral port, its io_context on a thread of its own.
class Running {
  public:
    explicit Running(MetricsLimits limits = kLimits) {
        server_.emplace(
            io_, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
            [this] {
                ++scrapes;
                return std::string("nlb_test 1\n");
            },
            limits);
        port = server_->port();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~Running() {
        stop_server();
        work_.reset();
        io_.stop();
        thread_.join();
    }
    // Destroys the server on its own thread, as the agent would.
    void stop_server() {
        std::atomic<bool> done = false;
        boost::asio::post(io_, [&] {
            server_.reset();
            done = true;
        });
        while (!done)
            std::this_thread::sleep_for(1ms);
    }

    std::uint16_t port = 0;
    std::atomic<int> scrapes = 0;

  private:
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
        boost::asio::make_work_guard(io_);
    std::optional<MetricsServer> server_;
    std::thread thread_;
};

// A blocking TCP client whose every read gives up after 3 s, so no test can hang.
class Client {
  public:
    explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        REQUIRE(fd_ >= 0);
        timeval tv{3, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    }
    ~Client() { ::close(fd_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // False when the server already closed (EPIPE/ECONNRESET).
    bool send(const std::string& data) {
        return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == ssize_t(data.size());
    }

    // Everything until the server closes; `closed` false when the 3 s ran out first.
    std::string read_all(bool* closed = nullptr) {
        std::string out;
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n > 0) {
                out.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (closed)
                *closed = n == 0 || errno == ECONNRESET;
            return out;
        }
    }

  private:
    int fd_;
};

std::string request(std::uint16_t port, const std::string& head) {
    Client c(port);
    REQUIRE(c.send(head));
    bool closed = false;
    std::string answer = c.read_all(&closed);
    CHECK(closed);
    return answer;
}

} // namespace

TEST_CASE("metrics server: GET /metrics answers the page, then closes") {
    Running s;
    std::string a = request(s.port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    CHECK(a.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(a.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
          std::string::npos);
    CHECK(a.find("\r\nContent-Length: 11\r\n") != std::string::npos);
    CHECK(a.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(a.substr(a.find("\r\n\r\n") + 4) == "nlb_test 1\n");
    CHECK(s.scrapes == 1);
    // HTTP/1.0, a query string and bare line feeds are fine too.
    CHECK(request(s.port, "GET /metrics?x=1 HTTP/1.0\n\n").rfind("HTTP/1.1 200 OK", 0) == 0);
    CHECK(s.scrapes == 2);
}

TEST_CASE("metrics server: a head whose blank line comes in a later segment is answered") {
    // A client that writes its head line by line (an operator's nc, a proxy flushing per
    // header): the read that ends the head holds only the rest of the blank line.
    Running s;
    for (const auto& [first, rest] : std::vector<std::pair<std::string, std::string>>{
             {"GET /metrics HTTP/1.1\r\nHost: x\r\n", "\r\n"},
             {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r", "\n"},
             {"GET /metrics HTTP/1.0\n", "\n"}}) {
        Client c(s.port);
        REQUIRE(c.send(first));
        std::this_thread::sleep_for(50ms); // the server reads the first part on its own
        REQUIRE(c.send(rest));
        bool closed = false;
        const auto t0 = Clock::now();
        CHECK(c.read_all(&closed).rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
        CHECK(closed);
        CHECK(Clock::now() - t0 < 300ms); // answered, not closed at the 400 ms deadline
    }
    CHECK(s.scrapes == 3);
}

TEST_CASE("metrics server: other paths 404, other methods 405, nonsense 400") {
    Running s;
    CHECK(request(s.port, "GET /other HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK(request(s.port, "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK(request(s.port, "GET /metricsx HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0) == 0);
    std::string post = request(s.port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    CHECK(post.rfind("HTTP/1.1 405 ", 0) == 0);
    CHECK(post.find("\r\nAllow: GET\r\n") != std::string::npos);
    CHECK(request(s.port, "HEAD /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405 ", 0) == 0);
    CHECK(request(s.port, "hello\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(request(s.port, "GET /metrics\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(request(s.port, "GET /metrics SPDY/3\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(s.scrapes == 0);
}

TEST_CASE("metrics server: a request head over 8 KiB is closed unanswered") {
    Running s;
    Client c(s.port);
    std::string head = "GET /metrics HTTP/1.1\r\nX-Junk: " + std::string(9000, 'a') + "\r\n\r\n";
    c.send(head); // may fail part way: the server closes as soon as it has 8 KiB
    bool closed = false;
    CHECK(c.read_all(&closed).empty());
    CHECK(closed);
    CHECK(s.scrapes == 0);
    // Just under the limit is still a request.
    std::string fits = "GET /metrics HTTP/1.1\r\nX-Junk: " + std::string(8000, 'a') + "\r\n\r\n";
    CHECK(request(s.port, fits).rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("metrics server: a client that sends nothing is closed at the deadline") {
    Running s;
    Client c(s.port);
    c.send("GET /metrics HTTP/1.1\r\n"); // never finishes its head
    auto t0 = Clock::now();
    bool closed = false;
    CHECK(c.read_all(&closed).empty());
    auto took = Clock::now() - t0;
    CHECK(closed);
    CHECK(took >= 300ms);
    CHECK(took < 2s);
}

TEST_CASE("metrics server: at most 16 connections at once, more closed at once") {
    Running s(MetricsLimits{8 * 1024, 3000ms, 16}); // the idle ones outlive the test's waits
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 16; ++i)
        idle.push_back(std::make_unique<Client>(s.port));
    std::this_thread::sleep_for(100ms); // all accepted
    {
        Client extra(s.port);
        extra.send("GET /metrics HTTP/1.1\r\n\r\n");
        auto t0 = Clock::now();
        bool closed = false;
        CHECK(extra.read_all(&closed).empty());
        CHECK(closed);
        CHECK(Clock::now() - t0 < 300ms); // not at the deadline: at once
    }
    CHECK(s.scrapes == 0);
    idle.pop_back(); // one leaves: a place is free again
    std::this_thread::sleep_for(100ms);
    CHECK(request(s.port, "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("metrics server: a taken port is an error with context") {
    Running s;
    boost::asio::io_context io;
    std::string port = std::to_string(s.port);
    CHECK_THROWS_WITH(
        MetricsServer(
            io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), s.port),
            [] { return std::string(); }),
        "metrics: listen 127.0.0.1:" + port + ": Address already in use");
}

TEST_CASE("metrics server: destroying it closes open connections") {
    Running s;
    Client c(s.port);
    std::this_thread::sleep_for(50ms);
    auto t0 = Clock::now();
    s.stop_server();
    bool closed = false;
    CHECK(c.read_all(&closed).empty());
    CHECK(closed);
    CHECK(Clock::now() - t0 < 300ms);
}

TEST_CASE("http_answer: a page that throws is a 500, not a crash") {
    std::string a = http_answer("GET /metrics HTTP/1.1",
                                []() -> std::string { throw std::runtime_error("no maps"); });
    CHECK(a.rfind("HTTP/1.1 500 ", 0) == 0);
    CHECK(a.find("no maps") != std::string::npos);
}

TEST_CASE("endpoints print as listen addresses") {
    using boost::asio::ip::make_address;
    using boost::asio::ip::tcp;
    CHECK(to_string(tcp::endpoint(make_address("127.0.0.1"), 9650)) == "127.0.0.1:9650");
    CHECK(to_string(tcp::endpoint(make_address("::1"), 9650)) == "[::1]:9650");
}
