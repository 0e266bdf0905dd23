// The control socket on its own io thread, against real Unix sockets: a request is answered;
// out of descriptors, connections wait in the backlog without the accept spinning the
// agent's thread, and are served once descriptors are free again; connections past the cap
// are closed unanswered.
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <catch2/catch.hpp>

#include "control_server.hpp"

using namespace nlb;

namespace {

struct Server {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        io.get_executor()};
    std::string path = "/tmp/nlb-test-control-" + std::to_string(getpid()) + ".sock";
    ControlServer server{io, path, [](const nlohmann::json&) {
                             return nlohmann::json{{"ok", true}};
                         }};
    std::thread thread{[this] { io.run(); }};

    ~Server() {
        work.reset();
        io.stop();
        thread.join();
    }
    // CPU time of the io thread so far.
    std::chrono::nanoseconds cpu() {
        clockid_t clock;
        REQUIRE(pthread_getcpuclockid(thread.native_handle(), &clock) == 0);
        timespec ts{};
        REQUIRE(clock_gettime(clock, &ts) == 0);
        return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
    }
};

int unconnected() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    return fd;
}

bool connect_to(int fd, const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    return connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

// Sends one request and waits up to `wait` for the line of the answer ("" if none).
std::string ask(int fd, std::chrono::milliseconds wait) {
    const char request[] = "{\"command\": \"query\"}\n";
    // MSG_NOSIGNAL: a connection past the cap is closed by the server, and a write to it
    // raised SIGPIPE, which ended the whole test binary (2 of 8 ctest runs).
    if (send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) !=
        static_cast<ssize_t>(sizeof(request) - 1))
        return "";
    std::string got;
    const auto until = std::chrono::steady_clock::now() + wait;
    while (got.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        char buf[256];
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

std::size_t open_descriptors() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n - 1; // the iterator's own
}

} // namespace

TEST_CASE("control socket: out of descriptors, the accept waits instead of spinning") {
    Server s;
    int first = unconnected();
    REQUIRE(connect_to(first, s.path));
    CHECK(ask(first, std::chrono::seconds(2)) == "{\"ok\":true}\n");

    // Clients' sockets made first: once the limit is down to what is open, only the agent's
    // accepts lack a descriptor, and the connections wait in its backlog.
    std::vector<int> waiting;
    for (int i = 0; i < 4; ++i)
        waiting.push_back(unconnected());
    rlimit before{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &before) == 0);
    rlimit low = before;
    low.rlim_cur = open_descriptors();
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    for (int fd : waiting)
        CHECK(connect_to(fd, s.path));
    const auto cpu0 = s.cpu();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto spent = s.cpu() - cpu0;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &before) == 0);
    INFO("io thread CPU over 1 s out of descriptors: "
         << std::chrono::duration_cast<std::chrono::milliseconds>(spent).count() << " ms");
    CHECK(spent < std::chrono::milliseconds(100));
    // Descriptors back: the waiting connections are served.
    for (int fd : waiting)
        CHECK(ask(fd, std::chrono::seconds(2)) == "{\"ok\":true}\n");
    for (int fd : waiting)
        close(fd);
    close(first);
}

TEST_CASE("control socket: connections past the cap are closed unanswered") {
    Server s;
    std::vector<int> held;
    for (std::size_t i = 0; i < 64; ++i) {
        held.push_back(unconnected());
        REQUIRE(connect_to(held.back(), s.path));
        // each one served once: the session is surely open before the next connects
        REQUIRE(ask(held.back(), std::chrono::seconds(2)) == "{\"ok\":true}\n");
    }
    int extra = unconnected();
    REQUIRE(connect_to(extra, s.path));
    CHECK(ask(extra, std::chrono::milliseconds(500)).empty());
    close(held.back());
    held.pop_back();
    // one closed: room for a new one (once the server has seen the close)
    std::string answer;
    for (int attempt = 0; attempt < 20 && answer.empty(); ++attempt) {
        int fd = unconnected();
        REQUIRE(connect_to(fd, s.path));
        answer = ask(fd, std::chrono::milliseconds(200));
        close(fd);
    }
    CHECK(answer == "{\"ok\":true}\n");
    close(extra);
    for (int fd : held)
        close(fd);
}

TEST_CASE("control socket: a file at the path that is no socket is left alone, and named") {
    // A --socket that names a file by mistake (a config, a log): the agent runs as root, and
    // replaced whatever was there with its socket.
    const std::string path = "/tmp/nlb-test-control-file-" + std::to_string(getpid());
    {
        std::ofstream file(path);
        file << "precious\n";
    }
    boost::asio::io_context io;
    std::string error;
    try {
        ControlServer server(io, path, [](const nlohmann::json&) { return nlohmann::json{}; });
    } catch (const std::runtime_error& e) {
        error = e.what();
    }
    CHECK(error == "control socket " + path + ": exists and is not a socket (nothing removed)");
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);
    CHECK(line == "precious");
    std::filesystem::remove(path);
}
