// The checks for real: loopback listeners for tcp and http, child processes for exec (a
// hanging one killed at its timeout, the user dropped to when root), and the monitor turning
// them into a rule mask. Every wait is bounded by io_context::run_for.
#include <catch2/catch.hpp>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "config.hpp"
#include "health_monitor.hpp"
#include "probe_cgroup.hpp"
#include "probe_check.hpp"

using namespace nlb;
namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

CheckResult check_once(asio::io_context& io, const ProbeTarget& t) {
    std::optional<CheckResult> got;
    auto c = ProbeCheck::start(io, t, [&](const CheckResult& r) { got = r; });
    for (int i = 0; i < 100 && !got; ++i) {
        io.restart(); // a run that ran out of work leaves the context stopped
        io.run_for(50ms);
    }
    REQUIRE(got);
    return *got;
}

ProbeTarget socket_target(ProbeType type, std::uint16_t port) {
    ProbeTarget t;
    t.type = type;
    t.endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
    t.http_host = "127.0.0.1:" + std::to_string(port);
    t.http_path = "/healthz";
    t.timeout = 500ms;
    return t;
}

ProbeTarget exec_target(std::vector<std::string> argv, std::chrono::milliseconds timeout = 1000ms) {
    ProbeTarget t;
    t.type = ProbeType::exec;
    t.command = std::move(argv);
    t.uid = ::geteuid();
    t.gid = ::getegid();
    t.timeout = timeout;
    return t;
}

// Answers every connection with `reply` once it read the request head.
struct HttpServer {
    asio::io_context& io;
    tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    std::string reply;
    std::string last_request;
    bool silent = false; // accept, never answer
    explicit HttpServer(asio::io_context& i, std::string r) : io(i), reply(std::move(r)) {
        accept();
    }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    void accept() {
        acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
            if (ec)
                return;
            auto sock = std::make_shared<tcp::socket>(std::move(s));
            auto buf = std::make_shared<asio::streambuf>();
            if (!silent)
                asio::async_read_until(
                    *sock, *buf, "\r\n\r\n",
                    [this, sock, buf](const boost::system::error_code& e, std::size_t) {
                        if (e)
                            return;
                        last_request.assign(asio::buffers_begin(buf->data()),
                                            asio::buffers_end(buf->data()));
                        asio::async_write(*sock, asio::buffer(reply), [sock](auto, auto) {});
                    });
            else
                held.push_back(sock);
            accept();
        });
    }
    std::vector<std::shared_ptr<tcp::socket>> held;
};

std::uint16_t closed_port(asio::io_context& io) {
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port(); // closed again when `a` goes
}

} // namespace

TEST_CASE("tcp: a listener passes, a closed port fails at once") {
    asio::io_context io;
    HttpServer server(io, "");
    CHECK(check_once(io, socket_target(ProbeType::tcp, server.port())).outcome ==
          CheckResult::Outcome::passed);
    const auto r = check_once(io, socket_target(ProbeType::tcp, closed_port(io)));
    CHECK(r.outcome == CheckResult::Outcome::failed);
    CHECK(r.latency < 400ms);
}

TEST_CASE("http: the expected status passes, another fails, silence times out") {
    asio::io_context io;
    HttpServer ok(io, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    auto r = check_once(io, socket_target(ProbeType::http, ok.port()));
    CHECK(r.outcome == CheckResult::Outcome::passed);
    CHECK(r.detail == "status 200");
    CHECK(ok.last_request.rfind("GET /healthz HTTP/1.0\r\n", 0) == 0);
    CHECK(ok.last_request.find("Host: 127.0.0.1:") != std::string::npos);

    HttpServer bad(io, "HTTP/1.0 503 Service Unavailable\r\n\r\n");
    r = check_once(io, socket_target(ProbeType::http, bad.port()));
    CHECK(r.outcome == CheckResult::Outcome::failed);
    CHECK(r.detail == "status 503");

    HttpServer junk(io, "SSH-2.0-OpenSSH\r\n");
    CHECK(check_once(io, socket_target(ProbeType::http, junk.port())).outcome ==
          CheckResult::Outcome::failed);

    HttpServer silent(io, "");
    silent.silent = true;
    auto t = socket_target(ProbeType::http, silent.port());
    t.timeout = 200ms;
    const auto start = std::chrono::steady_clock::now();
    r = check_once(io, t);
    CHECK(r.outcome == CheckResult::Outcome::timeout);
    CHECK(std::chrono::steady_clock::now() - start < 1s);
}

// The status code is three digits, then a space (or the line's end): a longer number, or
// digits run into the reason, is not the status expected (2001 passed as 200).
TEST_CASE("http: a status code of more than three digits is no status 200") {
    asio::io_context io;
    for (const char* reply : {"HTTP/1.1 2001 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
                              "HTTP/1.1 2000\r\n\r\n", "HTTP/1.x 200 OK\r\n\r\n"}) {
        HttpServer server(io, reply);
        const auto r = check_once(io, socket_target(ProbeType::http, server.port()));
        CAPTURE(reply, r.detail);
        CHECK(r.outcome == CheckResult::Outcome::failed);
    }
    for (const char* reply : {"HTTP/1.1 200\r\n\r\n", "HTTP/1.0 200\n\n", "HTTP/1.1 200 \r\n"}) {
        HttpServer server(io, reply);
        const auto r = check_once(io, socket_target(ProbeType::http, server.port()));
        CAPTURE(reply, r.detail);
        CHECK(r.outcome == CheckResult::Outcome::passed);
    }
}

TEST_CASE("exec: exit 0 passes, anything else fails, no shell") {
    asio::io_context io;
    CHECK(check_once(io, exec_target({"/bin/true"})).outcome == CheckResult::Outcome::passed);
    auto r = check_once(io, exec_target({"/bin/false"}));
    CHECK(r.outcome == CheckResult::Outcome::failed);
    CHECK(r.detail == "exit 1");
    r = check_once(io, exec_target({"/bin/sh", "-c", "exit 7"}));
    CHECK(r.detail == "exit 7");
    // No shell: a shell word is an argument like any other.
    r = check_once(io, exec_target({"/bin/test", "a", "=", "a", "&&", "false"}));
    CHECK(r.outcome == CheckResult::Outcome::failed); // test: too many arguments
    r = check_once(io, exec_target({"/nonexistent/probe"}));
    CHECK(r.detail == "exit 127");
}

// Whether a process runs (not a zombie) with exactly this command line.
bool sleeping(const std::string& pattern) {
    return std::system(("pgrep -f '^" + pattern + "$' >/dev/null").c_str()) == 0;
}

TEST_CASE("exec: a hanging command is killed at its timeout, with what it started") {
    asio::io_context io;
    const auto start = std::chrono::steady_clock::now();
    // The child shell starts a grandchild in the same process group; both must go.
    auto r = check_once(io, exec_target({"/bin/sh", "-c", "sleep 37.125 & sleep 37.125"}, 200ms));
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(r.outcome == CheckResult::Outcome::timeout);
    CHECK(took < 1s);
    io.restart();
    io.run_for(300ms); // the reap after the kill
    // No process of ours still sleeps.
    CHECK_FALSE(sleeping("sleep 37.125"));
}

// What leaves the process group (setsid, a daemon) is still in the command's cgroup:
// killed with the rest, when the command ends and at its timeout. Before, such a process
// outlived every check, one more per interval for the agent's life.
TEST_CASE("exec: what a command starts outside its process group ends with it (cgroup2)") {
    asio::io_context io;
    // Whether this machine has cgroups for commands is decided here, not by the check below:
    // a check that made none would otherwise leave nothing tried and the test skipped.
    ProbeCgroup::prepare();
    if (ProbeCgroup::directory())
        CHECK(check_once(
                  io, exec_target({"/bin/sh", "-c",
                                   "grep -q '^0::.*/nlb-probe-[0-9]*-[0-9]*$' /proc/self/cgroup"}))
                  .outcome == CheckResult::Outcome::passed);
    auto r = check_once(io, exec_target({"/bin/sh", "-c", "setsid sleep 43.5 & exit 0"}));
    if (!ProbeCgroup::directory()) {
        WARN("no writable cgroup2 here (" << ProbeCgroup::isolation() << "): not tested");
        [[maybe_unused]] const int killed = std::system("pkill -f '^sleep 43.5$'");
        return;
    }
    CHECK(r.outcome == CheckResult::Outcome::passed);
    for (int i = 0; i < 40 && sleeping("sleep 43.5"); ++i)
        std::this_thread::sleep_for(25ms);
    CHECK_FALSE(sleeping("sleep 43.5"));
    r = check_once(io, exec_target({"/bin/sh", "-c", "setsid sleep 43.75 & sleep 43.75"}, 200ms));
    CHECK(r.outcome == CheckResult::Outcome::timeout);
    io.restart();
    io.run_for(300ms); // the reap after the kill
    for (int i = 0; i < 40 && sleeping("sleep 43.75"); ++i)
        std::this_thread::sleep_for(25ms);
    CHECK_FALSE(sleeping("sleep 43.75"));
    [[maybe_unused]] const int killed = std::system("pkill -f '^sleep 43.(5|75)$'");
}

// A load-feedback command prints its number first; left in the pipe, the rest of a long
// output (more than a pipe's 64 KB) blocked the command until its timeout, every time.
TEST_CASE("exec: a command printing more than a pipe holds finishes, its start kept") {
    asio::io_context io;
    auto t =
        exec_target({"/bin/sh", "-c", "echo 42; head -c 300000 /dev/zero | tr '\\0' x"}, 5000ms);
    t.capture_output = true;
    const auto start = std::chrono::steady_clock::now();
    const auto r = check_once(io, t);
    CHECK(r.outcome == CheckResult::Outcome::passed);
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(r.output.size() == 256);
    CHECK(r.output.rfind("42\nxxx", 0) == 0);
}

TEST_CASE("exec: runs as the probe's user (root only)") {
    if (::geteuid() != 0)
        return; // dropping to another user needs root
    asio::io_context io;
    auto t =
        exec_target({"/bin/sh", "-c", "test \"$(id -u)\" = 65534 && test \"$(id -G)\" = 65534"});
    t.uid = 65534;
    t.gid = 65534;
    CHECK(check_once(io, t).outcome == CheckResult::Outcome::passed);
    ProbeConfig c;
    c.type = ProbeType::exec;
    c.command = {"/bin/true"};
    c.user = "no-such-user-nlb";
    CHECK_THROWS_WITH(resolve_probe(c, {}, "health.probes[0]"),
                      "health.probes[0].user: no such user \"no-such-user-nlb\"");
    c.user = "nobody";
    CHECK(resolve_probe(c, {}, "health.probes[0]").uid == 65534);
}

// The parent-death signal is cleared by a change of user (prctl(2)): asked for before it, a
// probe running as `nobody` (the default user) outlived an agent that was killed.
TEST_CASE("exec: a command running as another user dies with the agent (root only)") {
    if (::geteuid() != 0)
        return;
    const std::string pidfile = "/tmp/nlb-test-probe-pid-" + std::to_string(::getpid());
    std::remove(pidfile.c_str());
    const pid_t agent = ::fork();
    REQUIRE(agent >= 0);
    if (agent == 0) { // the "agent": starts the check, then dies without a word
        asio::io_context io;
        auto t =
            exec_target({"/bin/sh", "-c", "echo $$ > " + pidfile + "; exec sleep 41.25"}, 30000ms);
        t.uid = 65534;
        t.gid = 65534;
        auto check = ProbeCheck::start(io, t, [](const CheckResult&) {});
        io.run_for(500ms);
        ::kill(::getpid(), SIGKILL);
    }
    int status = 0;
    REQUIRE(::waitpid(agent, &status, 0) == agent);
    // The dead agent's cgroup for the command goes at the next agent's start.
    ProbeCgroup::sweep_stale();
    if (const auto dir = ProbeCgroup::directory()) {
        const std::string left = *dir + "/nlb-probe-" + std::to_string(agent) + "-";
        auto any_left = [&] {
            return std::system(("ls -d " + left + "* >/dev/null 2>&1").c_str()) == 0;
        };
        for (int i = 0; i < 20 && any_left(); ++i) {
            ProbeCgroup::sweep_stale();
            std::this_thread::sleep_for(50ms);
        }
        CHECK_FALSE(any_left());
    }
    long pid = 0;
    if (std::FILE* f = std::fopen(pidfile.c_str(), "r")) {
        if (std::fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        std::fclose(f);
    }
    std::remove(pidfile.c_str());
    REQUIRE(pid > 0);
    // Gone, or a zombie waiting for whoever adopted it: not sleeping on.
    auto running = [&] {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        if (!std::getline(stat, line))
            return false;
        const auto close = line.rfind(')');
        return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
    };
    for (int i = 0; i < 20 && running(); ++i)
        std::this_thread::sleep_for(50ms);
    CHECK_FALSE(running());
    if (running())
        ::kill(static_cast<pid_t>(pid), SIGKILL);
}

namespace {

// CAP_KILL in or out of the effective set (it stays permitted: it can come back).
bool set_cap_kill(bool on) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0)
        return false;
    if (on)
        data[0].effective |= 1U << CAP_KILL;
    else
        data[0].effective &= ~(1U << CAP_KILL);
    return ::syscall(SYS_capset, &header, data) == 0;
}

long read_pid(const std::string& path) {
    long pid = 0;
    if (std::FILE* f = std::fopen(path.c_str(), "r")) {
        if (std::fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        std::fclose(f);
    }
    return pid;
}

// Whether /proc still lists the process: running, or a zombie nobody reaped.
bool listed(long pid) {
    return ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0;
}

} // namespace

// An agent without CAP_KILL cannot kill a command running as another user: cancelled (the
// monitor's end) or outlived by its check (the io_context gone), the command ran on, and
// once it exited nobody reaped it: a zombie for the agent's life.
TEST_CASE("exec: a command the agent may not kill is still reaped once it exits (root only)") {
    if (::geteuid() != 0)
        return;
    const std::string pidfile = "/tmp/nlb-test-probe-unkillable-" + std::to_string(::getpid());
    auto target = [&] {
        auto t = exec_target({"/bin/sh", "-c",
                              "echo $$ > " + pidfile + ".new; mv " + pidfile + ".new " + pidfile +
                                  "; exec sleep 0.5"},
                             200ms);
        t.uid = 65534;
        t.gid = 65534;
        return t;
    };
    auto started = [&](asio::io_context& io) {
        long pid = 0;
        for (int i = 0; i < 40 && !(pid = read_pid(pidfile)); ++i) {
            io.restart();
            io.run_for(25ms);
        }
        std::remove(pidfile.c_str());
        return pid;
    };
    auto gone = [&](long pid) {
        for (int i = 0; i < 60 && listed(pid); ++i)
            std::this_thread::sleep_for(50ms);
        return !listed(pid);
    };
    std::remove(pidfile.c_str());
    REQUIRE(set_cap_kill(false));
    long cancelled = 0, outlived = 0;
    {
        asio::io_context io;
        auto check = ProbeCheck::start(io, target(), [](const CheckResult&) {});
        cancelled = started(io);
        check->cancel(); // the kill is refused: the command sleeps on
    }
    {
        asio::io_context io;
        std::optional<CheckResult> got;
        ProbeCheck::start(io, target(), [&](const CheckResult& r) { got = r; });
        outlived = started(io);
        for (int i = 0; i < 20 && !got; ++i) {
            io.restart();
            io.run_for(25ms);
        }
        CHECK((got && got->outcome == CheckResult::Outcome::timeout));
    } // the io_context goes with the check's wait for the command
    REQUIRE(set_cap_kill(true));
    REQUIRE(cancelled > 0);
    REQUIRE(outlived > 0);
    CHECK(gone(cancelled));
    CHECK(gone(outlived));
}

// An agent without CAP_KILL cannot kill a hung command running as another user at its
// deadline: the monitor started the next check beside it all the same, one more hung command
// every interval without end (30 after 3 s at 100 ms).
TEST_CASE("the monitor: a command whose kill is refused is not joined by another (root only)") {
    if (::geteuid() != 0)
        return;
    auto ours = [] {
        return std::system("test \"$(pgrep -u nobody -f '^/bin/sleep 39.125$' | wc -l)\" -le 1") ==
               0;
    };
    asio::io_context io;
    const Config config = parse_config(R"({"cluster": {"ip": "10.0.0.1"},
        "host": {"priority": 1, "dedicated_ip": "127.0.0.1"},
        "port_rules": [{"ports": [80, 80]}],
        "health": {"probes": [{"name": "hangs", "type": "exec", "user": "nobody",
           "command": ["/bin/sleep", "39.125"], "interval_ms": 100, "timeout_ms": 100}]}})");
    REQUIRE(set_cap_kill(false));
    bool few = true;
    std::uint64_t timeouts = 0;
    {
        HealthMonitor monitor(io, config, [](std::size_t, bool, const CheckResult&) {});
        monitor.start();
        io.run_for(1500ms);
        few = ours();
        timeouts = monitor.stats()[0]["checks"]["timeout"].get<std::uint64_t>();
    }
    REQUIRE(set_cap_kill(true));
    CHECK(std::system("for p in $(pgrep -u nobody -f '^/bin/sleep 39.125$'); do kill -9 $p; "
                      "done") == 0);
    io.restart();
    io.run_for(200ms); // reaped
    CHECK(few);
    CHECK(timeouts >= 10); // every interval still counts a timeout
}

TEST_CASE("the monitor: probes start down, rise makes them up, fall down; rules follow") {
    if (::geteuid() != 0)
        return; // the exec probe runs as root: only root may name that user
    asio::io_context io;
    HttpServer server(io, "HTTP/1.0 200 OK\r\n\r\n");
    const std::string json = R"({"cluster": {"ip": "10.0.0.1"},
        "host": {"priority": 1, "dedicated_ip": "127.0.0.1"},
        "port_rules": [{"ports": [80, 80]}, {"ports": [443, 443]}, {"ports": [1000, 2000]}],
        "health": {"probes": [
          {"name": "web", "type": "http", "url": "http://127.0.0.1:)" +
                             std::to_string(server.port()) + R"(/", "interval_ms": 100,
           "timeout_ms": 100, "rise": 2, "fall": 2, "ports": [80, 443]},
          {"name": "script", "type": "exec", "command": ["/bin/true"], "user": "root",
           "interval_ms": 100, "timeout_ms": 100, "rise": 1, "ports": [1500]}]}})";
    const Config config = parse_config(json);
    std::vector<std::pair<std::size_t, bool>> changes;
    HealthMonitor monitor(io, config, [&](std::size_t p, bool up, const CheckResult&) {
        changes.emplace_back(p, up);
    });
    CHECK(monitor.guarded() == 0b111);
    CHECK(monitor.down_rules() == 0b111); // nothing passed yet
    monitor.start();
    for (int i = 0; i < 40 && monitor.down_rules() != 0; ++i)
        io.run_for(50ms);
    CHECK(monitor.down_rules() == 0);
    CHECK(changes.size() == 2);
    server.acceptor.close(); // the web service dies
    for (int i = 0; i < 40 && monitor.down_rules() == 0; ++i)
        io.run_for(50ms);
    CHECK(monitor.down_rules() == 0b011);
    const auto status = monitor.status();
    CHECK(status[0]["verdict"] == "down");
    CHECK(status[0]["last_result"] == "failed");
    CHECK(status[0]["rules"] == nlohmann::json::array({0, 1}));
    CHECK(status[1]["verdict"] == "up");
    const auto stats = monitor.stats();
    CHECK(stats[0]["checks"]["passed"].get<int>() >= 2);
    CHECK(stats[0]["checks"]["failed"].get<int>() >= 2);
    CHECK(stats[0]["latency"]["count"].get<int>() >=
          stats[0]["checks"]["passed"].get<int>() + stats[0]["checks"]["failed"].get<int>());
}

// timeout_ms equal to interval_ms (the default at intervals of 500 ms and less): the next
// check comes a moment before a hung check's deadline. It used to cancel that check
// unrecorded, so a backend that hangs never went down.
TEST_CASE("the monitor: a check that hangs for a whole interval counts as a timeout") {
    if (::geteuid() != 0)
        return; // the exec probe runs as root: only root may name that user
    asio::io_context io;
    const std::string ok = "/tmp/nlb-test-probe-ok-" + std::to_string(::getpid());
    std::FILE* f = std::fopen(ok.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
    const std::string json = R"({"cluster": {"ip": "10.0.0.1"},
        "host": {"priority": 1, "dedicated_ip": "127.0.0.1"},
        "port_rules": [{"ports": [80, 80]}],
        "health": {"probes": [
          {"name": "hangs", "type": "exec", "user": "root",
           "command": ["/bin/sh", "-c", "test -e )" +
                             ok + R"( || exec sleep 10"],
           "interval_ms": 100, "timeout_ms": 100, "rise": 1, "fall": 2, "ports": [80]}]}})";
    const Config config = parse_config(json);
    HealthMonitor monitor(io, config, [](std::size_t, bool, const CheckResult&) {});
    monitor.start();
    for (int i = 0; i < 40 && monitor.down_rules() != 0; ++i)
        io.run_for(50ms);
    REQUIRE(monitor.down_rules() == 0);
    std::remove(ok.c_str()); // from now on every check hangs
    for (int i = 0; i < 40 && monitor.down_rules() == 0; ++i)
        io.run_for(50ms);
    CHECK(monitor.down_rules() == 1);
    CHECK(monitor.status()[0]["last_result"] == "timeout");
    CHECK(monitor.stats()[0]["checks"]["timeout"].get<int>() >= 2);
}

namespace {
int count_fds() {
    return static_cast<int>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                          std::filesystem::directory_iterator{}));
}
int probe_dirs() {
    const auto dir = ProbeCgroup::directory();
    if (!dir)
        return -1;
    int n = 0;
    const std::string prefix = "nlb-probe-" + std::to_string(::getpid()) + "-";
    for (const auto& e : std::filesystem::directory_iterator(*dir))
        n += e.path().filename().string().rfind(prefix, 0) == 0;
    return n;
}
} // namespace

// A probe runs every few seconds for the agent's life: each run's descriptors, cgroup and
// strays must go with it, whether it ends by itself or at its timeout, one at a time or many.
TEST_CASE("exec: many runs leave no descriptors, cgroups or processes") {
    asio::io_context io;
    check_once(io, exec_target({"/bin/true"}));
    if (!ProbeCgroup::directory())
        return;
    const int fds = count_fds();
    for (int i = 0; i < 300; ++i)
        CHECK(
            check_once(io, exec_target({"/bin/sh", "-c", "setsid sleep 47.5 & exit 0"})).outcome ==
            CheckResult::Outcome::passed);
    std::this_thread::sleep_for(200ms);
    check_once(io, exec_target({"/bin/true"})); // retries what was pending
    CHECK(count_fds() == fds);
    CHECK(probe_dirs() <= 1);
    CHECK_FALSE(sleeping("sleep 47.5"));
}

TEST_CASE("exec: many at once, timed out, leave nothing") {
    asio::io_context io;
    check_once(io, exec_target({"/bin/true"}));
    if (!ProbeCgroup::directory())
        return;
    std::vector<std::shared_ptr<ProbeCheck>> checks;
    int done = 0;
    for (int i = 0; i < 100; ++i)
        checks.push_back(ProbeCheck::start(
            io, exec_target({"/bin/sh", "-c", "setsid sleep 47.75 & sleep 47.75"}, 300ms),
            [&](const CheckResult&) { ++done; }));
    for (int i = 0; i < 100 && done < 100; ++i) {
        io.restart();
        io.run_for(50ms);
    }
    CHECK(done == 100);
    io.restart();
    io.run_for(500ms);
    checks.clear();
    std::this_thread::sleep_for(300ms);
    check_once(io, exec_target({"/bin/true"}));
    CHECK_FALSE(sleeping("sleep 47.75"));
    CHECK(probe_dirs() <= 1);
}

// A command running as root may make cgroups of its own below its run's (a container
// runtime, a nested cgroup for a helper): the run's directory must still go.
TEST_CASE("exec: a run's cgroup with a child cgroup in it is removed") {
    asio::io_context io;
    check_once(io, exec_target({"/bin/true"}));
    if (!ProbeCgroup::directory() || ::geteuid() != 0)
        return;
    const std::string dir = *ProbeCgroup::directory();
    auto r = check_once(
        io, exec_target({"/bin/sh", "-c",
                         "d=" + dir +
                             "/$(basename $(sed -n 's/^0:://p' /proc/self/cgroup)); "
                             "mkdir $d/sub && sh -c \"echo \\$\\$ > $d/sub/cgroup.procs; exec "
                             "setsid sleep 47.25\" & sleep 0.2; exit 0"}));
    CHECK(r.outcome == CheckResult::Outcome::passed);
    std::this_thread::sleep_for(200ms);
    for (int i = 0; i < 3; ++i)
        check_once(io, exec_target({"/bin/true"}));
    CHECK_FALSE(sleeping("sleep 47.25"));
    CHECK(probe_dirs() == 0);
    [[maybe_unused]] const int rc =
        std::system(("for d in " + dir + "/nlb-probe-" + std::to_string(::getpid()) +
                     "-*/sub; do rmdir $d; done 2>/dev/null")
                        .c_str());
}
