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
#include <memory>
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

TEST_CASE("event log: a message that is not UTF-8 is logged, not thrown") {
    for (const auto format : {LogFormat::json, LogFormat::text}) {
        Pipe p;
        {
            EventLog log(format, p.w);
            REQUIRE_NOTHROW(log.error("reload: caf\xE9"));
            REQUIRE_NOTHROW(log.event("list", {{"names", {"caf\xE9"}}}));
        }
        const auto lines =
            lines_of(p.read_until([](const std::string& s) { return lines_of(s).size() >= 2; }));
        REQUIRE(lines.size() == 2);
        if (format == LogFormat::json) {
            CHECK(nlohmann::json::parse(lines[0])["message"] == "reload: caf\xEF\xBF\xBD");
            CHECK(nlohmann::json::parse(lines[1])["names"][0] == "caf\xEF\xBF\xBD");
        }
    }
}

TEST_CASE("event log: a text line's values cannot start a line of their own") {
    Pipe p;
    {
        EventLog log(LogFormat::text, p.w);
        // What a remote-control command or a config value could carry: a second event.
        log.event("remote_command",
                  {{"command", "x\ninfo remote_command command=drainstop from=10.0.0.9"},
                   {"from", "10.0.0.1"}});
        log.error("reload: a\rb\x1b[2Jc\\n");
    }
    const auto lines =
        lines_of(p.read_until([](const std::string& s) { return lines_of(s).size() >= 2; }));
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "info remote_command "
                      "command=x\\ninfo remote_command command=drainstop from=10.0.0.9 "
                      "from=10.0.0.1");
    CHECK(lines[1] == "error error message=reload: a\\rb\\x1b[2Jc\\\\n");
    CHECK(EventLog::escape_text("tab\there\x7f") == "tab\\there\\x7f");
    CHECK(EventLog::escape_text("caf\xC3\xA9") == "caf\xC3\xA9"); // UTF-8 left as it is
}

TEST_CASE("event log: a sink that takes nothing holds nobody up; what overflows is counted") {
    Pipe p;
    p.fill();
    EventLog log(LogFormat::text, p.w, 1000);
    // Each line is about 40 bytes: the queue holds some 25 of the 100, and the writer the
    // batch it took before the queue filled, blocked in its write. A log that waited for the
    // sink would never return.
    // Logged on a thread of its own, so that a log that blocked fails the test rather than
    // hanging it (the thread is then left behind).
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> logged = done->get_future();
    std::thread([&log, done] {
        for (int i = 0; i < 100; ++i)
            log.event("tick", {{"i", i}, {"pad", "0123456789"}});
        done->set_value();
    }).detach();
    REQUIRE(logged.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    const std::uint64_t dropped = log.dropped();
    CHECK(dropped > 0);
    CHECK(dropped < 100);
    CHECK_FALSE(log.flush(std::chrono::milliseconds(100))); // the sink still takes nothing

    // The sink takes lines again: every line not counted comes, in order.
    auto ticks = [](const std::string& text) {
        std::vector<int> seen;
        for (const std::string& l : lines_of(text))
            if (l.rfind("info tick", 0) == 0)
                seen.push_back(std::stoi(l.substr(l.find("i=") + 2)));
        return seen;
    };
    const std::string got =
        p.read_until([&](const std::string& s) { return ticks(s).size() >= 100 - dropped; });
    const std::vector<int> seen = ticks(got);
    REQUIRE(seen.size() == 100 - dropped);
    CHECK(seen.front() == 0);
    for (std::size_t k = 1; k < seen.size(); ++k)
        CHECK(seen[k] > seen[k - 1]);
    CHECK(log.flush(std::chrono::seconds(5)));

    // A report of the drops comes in their place, before the first line that found room
    // again; the ones after the last such line come before the next line logged.
    log.event("after");
    const std::string all = got + p.read_until([](const std::string& s) {
        return s.find("info after") != std::string::npos;
    });
    const auto lines = lines_of(all);
    REQUIRE_FALSE(lines.empty());
    CHECK(lines.back() == "info after");
    std::uint64_t reported = 0;
    for (std::size_t k = 0; k < lines.size(); ++k) {
        const std::string& l = lines[k];
        if (l.rfind("warning log_lines_dropped", 0) != 0)
            continue;
        reported += std::stoull(l.substr(l.find("count=") + 6));
        REQUIRE(k + 1 < lines.size());
        CHECK(lines[k + 1].rfind("warning", 0) != 0); // a line that found room follows it
    }
    CHECK(reported == dropped);
    CHECK(log.dropped() == dropped);
}

TEST_CASE("event log: a flush for what was logged since a mark waits for nothing older") {
    // A command's reply waits for the lines the command logged, not for those a stalled sink
    // holds from before: a query (it logs nothing) answered behind a stopped journald held
    // the agent's loop up for the whole limit, every time.
    using namespace std::chrono_literals;
    Pipe p;
    p.fill();
    EventLog log(LogFormat::text, p.w);
    log.event("before"); // the writer takes it and blocks in its write
    const std::uint64_t mark = log.lines();
    auto t0 = std::chrono::steady_clock::now();
    CHECK(log.flush_since(mark, 300ms)); // nothing logged since the mark
    CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
    CHECK_FALSE(log.flush(100ms)); // "before" is still not written

    log.event("after");
    CHECK(log.lines() == mark + 1);
    t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(log.flush_since(mark, 200ms)); // "after" waits behind the stalled sink
    CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
    p.read_until([](const std::string& s) { return s.find("info after") != std::string::npos; });
    CHECK(log.flush_since(mark, 5s));
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
