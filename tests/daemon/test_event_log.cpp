// The event log against a real pipe as its sink: lines arrive in order; a sink that takes
// nothing never holds up the caller, and what does not fit the queue is dropped, counted and
// reported once the sink takes lines again; a closed sink drops lines without a signal.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "event_log.hpp"

using namespace nlb;

namespace {

struct Pipe {
    int r = -1, w = -1;
    Pipe() {
        int fds[2];
        REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
        r = fds[0];
        w = fds[1];
    }
    ~Pipe() {
        if (r >= 0)
            close(r);
        if (w >= 0)
            close(w);
    }
    // Shrinks the pipe to one page and fills it: a reader that stopped reading.
    void fill() {
        REQUIRE(fcntl(w, F_SETPIPE_SZ, 4096) >= 4096);
        const int flags = fcntl(w, F_GETFL);
        REQUIRE(fcntl(w, F_SETFL, flags | O_NONBLOCK) == 0);
        const std::string filler = std::string(63, 'x') + '\n';
        while (write(w, filler.data(), filler.size()) > 0) {
        }
        REQUIRE(errno == EAGAIN);
        REQUIRE(fcntl(w, F_SETFL, flags) == 0);
    }
    // Reads until `until` says the text so far is complete or 5 s passed.
    template <class Until> std::string read_until(Until until) {
        std::string got;
        const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        char buf[4096];
        while (!until(got) && std::chrono::steady_clock::now() < limit) {
            pollfd p{r, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0)
                continue;
            const ssize_t n = read(r, buf, sizeof(buf));
            if (n <= 0)
                break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        return got;
    }
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t at = 0;
    for (std::size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
        out.push_back(text.substr(at, nl - at));
    return out;
}

} // namespace

TEST_CASE("event log: lines reach the sink in order, one JSON object each") {
    Pipe p;
    {
        EventLog log(LogFormat::json, p.w);
        log.event("first", {{"n", 1}});
        log.warn("second");
        log.error("third");
    } // the destructor waits for the queue to be written
    const auto lines =
        lines_of(p.read_until([](const std::string& s) { return lines_of(s).size() >= 3; }));
    REQUIRE(lines.size() == 3);
    const auto a = nlohmann::json::parse(lines[0]);
    CHECK(a["event"] == "first");
    CHECK(a["n"] == 1);
    CHECK(a["level"] == "info");
    CHECK(a.contains("ts"));
    CHECK(nlohmann::json::parse(lines[1])["message"] == "second");
    CHECK(nlohmann::json::parse(lines[2])["level"] == "error");
}

TEST_CASE("event log: a sink that takes nothing holds nobody up; what overflows is counted") {
    Pipe p;
    p.fill();
    EventLog log(LogFormat::text, p.w, 1000);
    // Each line is about 40 bytes: the queue holds some 25 of the 100, and the writer the
    // batch it took before the queue filled, blocked in its write. A log that waited for the
    // sink would never return.
    auto logging = std::async(std::launch::async, [&log] {
        for (int i = 0; i < 100; ++i)
            log.event("tick", {{"i", i}, {"pad", "0123456789"}});
    });
    REQUIRE(logging.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    const std::uint64_t dropped = log.dropped();
    CHECK(dropped > 0);
    CHECK(dropped < 100);

    // The sink takes lines again: every line not counted comes, in order, then the report.
    const std::string got = p.read_until([](const std::string& s) {
        return s.find("log_lines_dropped") != std::string::npos && s.back() == '\n';
    });
    std::vector<int> seen;
    std::string report;
    for (const std::string& l : lines_of(got)) {
        if (l.rfind("info tick", 0) == 0)
            seen.push_back(std::stoi(l.substr(l.find("i=") + 2)));
        else if (l.find("log_lines_dropped") != std::string::npos)
            report = l;
    }
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.size() == 100 - dropped);
    for (std::size_t k = 1; k < seen.size(); ++k)
        CHECK(seen[k] > seen[k - 1]);
    CHECK(seen.front() == 0);
    CHECK(report.find("count=" + std::to_string(dropped)) != std::string::npos);
    CHECK(log.dropped() == dropped);
}

TEST_CASE("event log: a closed sink drops lines and raises no signal") {
    // As the agent runs: SIGPIPE ignored (main), a write to a pipe without reader fails.
    const auto old = std::signal(SIGPIPE, SIG_IGN);
    {
        Pipe p;
        close(p.r);
        p.r = -1;
        EventLog log(LogFormat::text, p.w);
        log.event("lost");
        const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (log.dropped() == 0 && std::chrono::steady_clock::now() < limit)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        CHECK(log.dropped() == 1);
    }
    std::signal(SIGPIPE, old);
}
